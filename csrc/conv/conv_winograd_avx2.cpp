// Winograd F(2x2, 3x3) convolution for 3x3, stride 1, dilation 1, one group (float32, AVX2).
//
// Each 2x2 block of outputs ("tile") is computed from the 4x4 input patch around it:
//   Y = A^T [ sum_c (G g_oc G^T) . (B^T d_c B) ] A            (. is element-wise, 16 products)
// so across channels the 16 element positions xi are 16 independent matrix products
//   M[xi] (O, tiles) = U[xi] (O, C) . V[xi] (C, tiles)
// with 16 multiplies per tile instead of 36: 2.25x fewer than direct convolution.
//
// Threads take chunks of tile rows of one image and run the whole pipeline (input transform,
// 16 single-threaded GEMMs, output transform) on them, so V and M stay in cache and nothing
// synchronises inside the pass. Transforms run 8 tiles at a time along a tile row (the input
// is read with stride 2 from zero-padded copies of the rows, so border tiles need no checks).
// No standard-library templates here (this file is compiled with -mavx2 -mfma).
#include <immintrin.h>

#include "common/parallel.h"
#include "common/scratch.h"
#include "conv/conv.h"
#include "gemm/gemm.h"

namespace rb {
namespace {

constexpr int64_t kTilesPerChunk = 96;  // tiles per GEMM: V and M of a chunk fit in L2 for C, O <= 128

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Lanes 0, 2, 4, ... 14 and 1, 3, ... 15 of the 16 floats at p.
inline void load_deinterleaved(const float* p, __m256* even, __m256* odd) {
  const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
  const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)), o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
  *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}

inline __m256 add(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
inline __m256 sub(__m256 a, __m256 b) { return _mm256_sub_ps(a, b); }

// B^T d B in place on the 4x4 patches of 8 tiles, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
inline void input_transform(__m256 d[4][4]) {
  for (int j = 0; j < 4; ++j) {
    const __m256 t0 = sub(d[0][j], d[2][j]), t1 = add(d[1][j], d[2][j]), t2 = sub(d[2][j], d[1][j]),
                 t3 = sub(d[1][j], d[3][j]);
    d[0][j] = t0, d[1][j] = t1, d[2][j] = t2, d[3][j] = t3;
  }
  for (int i = 0; i < 4; ++i) {
    const __m256 t0 = sub(d[i][0], d[i][2]), t1 = add(d[i][1], d[i][2]), t2 = sub(d[i][2], d[i][1]),
                 t3 = sub(d[i][1], d[i][3]);
    d[i][0] = t0, d[i][1] = t1, d[i][2] = t2, d[i][3] = t3;
  }
}

// A^T m A: the 4x4 products of 8 tiles -> their 2x2 outputs, A^T = [1 1 1 0; 0 1 -1 -1].
inline void output_transform(const __m256 m[4][4], __m256 y[2][2]) {
  __m256 s[2][4];
  for (int j = 0; j < 4; ++j) {
    s[0][j] = add(add(m[0][j], m[1][j]), m[2][j]);
    s[1][j] = sub(sub(m[1][j], m[2][j]), m[3][j]);
  }
  for (int i = 0; i < 2; ++i) {
    y[i][0] = add(add(s[i][0], s[i][1]), s[i][2]);
    y[i][1] = sub(sub(s[i][1], s[i][2]), s[i][3]);
  }
}

// U[xi][o][c] = (G g G^T)[xi] for w (O, C, 3, 3).
void weight_transform(const ConvGeometry& g, const float* w, float* U) {
  const int64_t OC = g.O * g.C;
#pragma omp parallel for schedule(static) num_threads(available_threads()) if (OC > 4096)
  for (int64_t oc = 0; oc < OC; ++oc) {
    const float* k = w + oc * 9;
    float gk[4][3], u[4][4];
    for (int j = 0; j < 3; ++j) {
      gk[0][j] = k[j];
      gk[1][j] = 0.5f * (k[j] + k[3 + j] + k[6 + j]);
      gk[2][j] = 0.5f * (k[j] - k[3 + j] + k[6 + j]);
      gk[3][j] = k[6 + j];
    }
    for (int i = 0; i < 4; ++i) {
      u[i][0] = gk[i][0];
      u[i][1] = 0.5f * (gk[i][0] + gk[i][1] + gk[i][2]);
      u[i][2] = 0.5f * (gk[i][0] - gk[i][1] + gk[i][2]);
      u[i][3] = gk[i][2];
    }
    for (int xi = 0; xi < 16; ++xi) U[xi * OC + oc] = u[xi / 4][xi % 4];
  }
}

struct Chunk {
  int64_t n, t0, t1;  // image, tile range [t0, t1) in row-major tile order
};

// Lanes [0, n) of 8 set, as a maskstore mask.
inline __m256i first_lanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Floats per zero-padded input row: every 8-tile block, the last one partial, reads inside it.
inline int64_t padded_row_width(int64_t tiles_w) { return 2 * ceil_div(tiles_w, 8) * 8 + 8; }

// V[xi][c][t - chunk.t0] for the chunk's tiles (whole tile rows), from image x (C, H, W).
// The 4 input rows under a tile row are first copied into zero-padded rows, so every tile,
// border ones included, is transformed 8 at a time without bounds checks.
void transform_input(const ConvGeometry& g, const float* x, int64_t tiles_w, const Chunk& ch, float* V, float* rows) {
  const int64_t T = ch.t1 - ch.t0, CT = g.C * T, width = padded_row_width(tiles_w);
  for (int64_t c = 0; c < g.C; ++c) {
    const float* plane = x + c * g.H * g.W;
    for (int64_t th = ch.t0 / tiles_w; th < ch.t1 / tiles_w; ++th) {
      for (int i = 0; i < 4; ++i) {  // row i of the padded strip: image row 2 th - pH + i, shifted right by pW
        float* row = rows + i * width;
        const int64_t ih = 2 * th - g.pH + i;
        if (ih < 0 || ih >= g.H) {
          for (int64_t k = 0; k < width; ++k) row[k] = 0.0f;
          continue;
        }
        const int64_t copied = g.W < width - g.pW ? g.W : width - g.pW;  // image columns that fit
        for (int64_t k = 0; k < g.pW; ++k) row[k] = 0.0f;
        __builtin_memcpy(row + g.pW, plane + ih * g.W, sizeof(float) * copied);
        for (int64_t k = g.pW + copied; k < width; ++k) row[k] = 0.0f;
      }
      float* dst = V + c * T + (th * tiles_w - ch.t0);
      for (int64_t tw = 0; tw < tiles_w; tw += 8) {
        __m256 d[4][4];
        for (int i = 0; i < 4; ++i) {
          const float* p = rows + i * width + 2 * tw;
          load_deinterleaved(p, &d[i][0], &d[i][1]);
          load_deinterleaved(p + 2, &d[i][2], &d[i][3]);
        }
        input_transform(d);
        if (tw + 8 <= tiles_w) {
          for (int xi = 0; xi < 16; ++xi) _mm256_storeu_ps(dst + xi * CT + tw, d[xi / 4][xi % 4]);
        } else {
          const __m256i mask = first_lanes(tiles_w - tw);
          for (int xi = 0; xi < 16; ++xi) _mm256_maskstore_ps(dst + xi * CT + tw, mask, d[xi / 4][xi % 4]);
        }
      }
    }
  }
}

// y (O, OH, OW) of the chunk's tiles (whole tile rows) from M[xi][o][t - chunk.t0], plus bias.
// M must have 8 floats of slack at its end: the last block of a row may read past it.
void transform_output(const ConvGeometry& g, const float* M, const float* bias, int64_t tiles_w, const Chunk& ch,
                      float* y) {
  const int64_t T = ch.t1 - ch.t0, OT = g.O * T;
  for (int64_t o = 0; o < g.O; ++o) {
    float* plane = y + o * g.OH * g.OW;
    const __m256 b = _mm256_set1_ps(bias ? bias[o] : 0.0f);
    for (int64_t th = ch.t0 / tiles_w; th < ch.t1 / tiles_w; ++th) {
      const float* src = M + o * T + (th * tiles_w - ch.t0);
      const int64_t oh = 2 * th;
      for (int64_t tw = 0; tw < tiles_w; tw += 8) {
        __m256 m[4][4], r[2][2];
        for (int xi = 0; xi < 16; ++xi) m[xi / 4][xi % 4] = _mm256_loadu_ps(src + xi * OT + tw);
        output_transform(m, r);
        const int64_t ow = 2 * tw;
        const bool full = ow + 16 <= g.OW && oh + 2 <= g.OH;
        for (int i = 0; i < 2; ++i) {
          const __m256 left = _mm256_add_ps(r[i][0], b), right = _mm256_add_ps(r[i][1], b);
          const __m256 lo = _mm256_unpacklo_ps(left, right), hi = _mm256_unpackhi_ps(left, right);
          const __m256 first = _mm256_permute2f128_ps(lo, hi, 0x20), second = _mm256_permute2f128_ps(lo, hi, 0x31);
          float* out = plane + (oh + i) * g.OW + ow;
          if (full) {
            _mm256_storeu_ps(out, first);
            _mm256_storeu_ps(out + 8, second);
          } else if (oh + i < g.OH) {  // the image's right or bottom edge: keep what lies inside
            alignas(32) float tmp[16];
            _mm256_store_ps(tmp, first);
            _mm256_store_ps(tmp + 8, second);
            for (int64_t j = 0; j < 16 && ow + j < g.OW; ++j) out[j] = tmp[j];
          }
        }
      }
    }
  }
}

}  // namespace

// x (N, C, H, W), w (O, C, 3, 3), bias (O,) or null -> y (N, O, OH, OW); needs 3x3, stride 1, dilation 1, groups 1.
void conv2d_winograd_f2x3(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const int64_t tiles_h = ceil_div(g.OH, 2), tiles_w = ceil_div(g.OW, 2);
  // Chunks: whole tile rows, about kTilesPerChunk tiles each.
  const int64_t rows_per_chunk = tiles_w >= kTilesPerChunk ? 1 : kTilesPerChunk / tiles_w;
  const int64_t chunks_per_image = ceil_div(tiles_h, rows_per_chunk);
  const int64_t max_T = rows_per_chunk * tiles_w;

  float* U = thread_scratch_of<float>(ScratchSlot::conv_aux, size_t(16 * g.O * g.C));
  weight_transform(g, w, U);

#pragma omp parallel num_threads(available_threads())
  {
    float* work =
        thread_scratch_of<float>(ScratchSlot::conv, size_t(16 * (g.C + g.O) * max_T + 8 + 4 * padded_row_width(tiles_w)));
#pragma omp for schedule(dynamic, 1)
    for (int64_t k = 0; k < g.N * chunks_per_image; ++k) {
      const int64_t n = k / chunks_per_image, r0 = (k % chunks_per_image) * rows_per_chunk;
      const int64_t r1 = r0 + rows_per_chunk < tiles_h ? r0 + rows_per_chunk : tiles_h;
      const Chunk ch{n, r0 * tiles_w, r1 * tiles_w};
      const int64_t T = ch.t1 - ch.t0;
      float* V = work;
      float* M = work + 16 * g.C * T;
      float* rows = M + 16 * g.O * T + 8;
      transform_input(g, x + n * g.C * g.H * g.W, tiles_w, ch, V, rows);
      for (int64_t xi = 0; xi < 16; ++xi)
        gemm(g.O, T, g.C, 1.0f, MatView<const float>{U + xi * g.O * g.C, g.C, 1},
             MatView<const float>{V + xi * g.C * T, T, 1}, 0.0f, MatView<float>{M + xi * g.O * T, T, 1});
      transform_output(g, M, bias, tiles_w, ch, y + n * g.O * g.OH * g.OW);
    }
  }
}

}  // namespace rb
