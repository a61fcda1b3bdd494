// Winograd F(4x4, 3x3) convolution for 3x3, stride 1, dilation 1, one group (float32, AVX2).
//
// Each 4x4 block of outputs ("tile") is computed from the 6x6 input patch around it:
//   Y = A^T [ sum_c (G g_oc G^T) . (B^T d_c B) ] A            (. is element-wise, 36 products)
// so across channels the 36 element positions xi are 36 independent matrix products
//   M[xi] (O, tiles) = U[xi] (O, C) . V[xi] (C, tiles)
// with 36 multiplies per 16 outputs instead of 144: 4x fewer than direct convolution
// (Lavin & Gray 2015; the larger transform costs about 1e-6 relative accuracy in float32).
//
// Threads take chunks of tile rows of one image and run the whole pipeline (input transform,
// 36 single-threaded GEMMs, output transform) on them, so V and M stay in cache and nothing
// synchronises inside the pass. The transforms work on 8 tiles at once: the 6 input rows under
// a tile row are copied into zero-padded rows, and a 4x4 transpose inside each 128-bit lane
// turns 32 consecutive floats into the 4 stride-4 phases of 8 tiles (in the tile order
// 0 2 4 6 1 3 5 7, which V and M keep and the output transform's transpose undoes).
// No standard-library templates here (this file is compiled with -mavx2 -mfma).
#include <immintrin.h>

#include "common/parallel.h"
#include "common/scratch.h"
#include "conv/conv.h"
#include "gemm/gemm.h"

namespace rb {
namespace {

constexpr int64_t kTilesPerChunk = 64;  // tiles per GEMM (1024 outputs): bounds the chunk's V and M

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// 4x4 transpose within each 128-bit lane of (r0, r1, r2, r3).
inline void transpose4_lanes(__m256& r0, __m256& r1, __m256& r2, __m256& r3) {
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpacklo_ps(r2, r3);
  const __m256 t2 = _mm256_unpackhi_ps(r0, r1), t3 = _mm256_unpackhi_ps(r2, r3);
  r0 = _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0));
  r1 = _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2));
  r2 = _mm256_shuffle_ps(t2, t3, _MM_SHUFFLE(1, 0, 1, 0));
  r3 = _mm256_shuffle_ps(t2, t3, _MM_SHUFFLE(3, 2, 3, 2));
}

// phase[j] lane l = p[4 t(l) + j], j < 4, for the 8 tiles whose columns start at p, p + 4, ..., p + 28
// (lane order t = 0 2 4 6 1 3 5 7).
inline void load_phases(const float* p, __m256 phase[4]) {
  phase[0] = _mm256_loadu_ps(p);
  phase[1] = _mm256_loadu_ps(p + 8);
  phase[2] = _mm256_loadu_ps(p + 16);
  phase[3] = _mm256_loadu_ps(p + 24);
  transpose4_lanes(phase[0], phase[1], phase[2], phase[3]);
}

inline __m256 mul(float k, __m256 v) { return _mm256_mul_ps(_mm256_set1_ps(k), v); }
inline __m256 fmadd(float k, __m256 v, __m256 acc) { return _mm256_fmadd_ps(_mm256_set1_ps(k), v, acc); }

// r = B^T d for 6 values d[0..5] (B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0;
// 0 2 -1 -2 1 0; 0 4 0 -5 0 1]).
inline void b_transform(const __m256 d[6], __m256 r[6]) {
  const __m256 d4_minus_4d2 = fmadd(-4.0f, d[2], d[4]), d3_minus_4d1 = fmadd(-4.0f, d[1], d[3]);
  const __m256 d4_minus_d2 = _mm256_sub_ps(d[4], d[2]), d3_minus_d1 = _mm256_sub_ps(d[3], d[1]);
  r[0] = fmadd(-5.0f, d[2], fmadd(4.0f, d[0], d[4]));
  r[1] = _mm256_add_ps(d4_minus_4d2, d3_minus_4d1);
  r[2] = _mm256_sub_ps(d4_minus_4d2, d3_minus_4d1);
  r[3] = fmadd(2.0f, d3_minus_d1, d4_minus_d2);
  r[4] = fmadd(-2.0f, d3_minus_d1, d4_minus_d2);
  r[5] = fmadd(-5.0f, d[3], fmadd(4.0f, d[1], d[5]));
}

// o = A^T m for 6 values m[0..5] (A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]).
inline void a_transform(const __m256 m[6], __m256 o[4]) {
  const __m256 s12 = _mm256_add_ps(m[1], m[2]), d12 = _mm256_sub_ps(m[1], m[2]);
  const __m256 s34 = _mm256_add_ps(m[3], m[4]), d34 = _mm256_sub_ps(m[3], m[4]);
  o[0] = _mm256_add_ps(_mm256_add_ps(m[0], s12), s34);
  o[1] = fmadd(2.0f, d34, d12);
  o[2] = fmadd(4.0f, s34, s12);
  o[3] = _mm256_add_ps(fmadd(8.0f, d34, d12), m[5]);
}

// U[xi][o][c] = (G g G^T)[xi] for w (O, C, 3, 3), G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
// 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1].
void weight_transform(const ConvGeometry& g, const float* w, float* U) {
  static const float G[6][3] = {{0.25f, 0.0f, 0.0f},
                                {-1.0f / 6, -1.0f / 6, -1.0f / 6},
                                {-1.0f / 6, 1.0f / 6, -1.0f / 6},
                                {1.0f / 24, 1.0f / 12, 1.0f / 6},
                                {1.0f / 24, -1.0f / 12, 1.0f / 6},
                                {0.0f, 0.0f, 1.0f}};
  const int64_t OC = g.O * g.C;
#pragma omp parallel for schedule(static) num_threads(available_threads()) if (OC > 1024)
  for (int64_t oc = 0; oc < OC; ++oc) {
    const float* k = w + oc * 9;
    float gk[6][3];
    for (int i = 0; i < 6; ++i)
      for (int j = 0; j < 3; ++j) gk[i][j] = G[i][0] * k[j] + G[i][1] * k[3 + j] + G[i][2] * k[6 + j];
    for (int i = 0; i < 6; ++i)
      for (int j = 0; j < 6; ++j) U[(i * 6 + j) * OC + oc] = gk[i][0] * G[j][0] + gk[i][1] * G[j][1] + gk[i][2] * G[j][2];
  }
}

struct Chunk {
  int64_t n, t0, t1;  // image, tile range [t0, t1) in row-major tile order (whole tile rows)
};

// Lanes [0, n) set, as a maskstore mask.
inline __m256i first_lanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
// Full 8-tile blocks live in V and M in the lane order 0 2 4 6 1 3 5 7; the last, partial block
// of a tile row is stored in tile order instead, so it takes only as many slots as it has tiles.
inline __m256 lanes_to_tile_order(__m256 v) { return _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)); }
inline __m256 tile_to_lane_order(__m256 v) { return _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7)); }

// Floats per zero-padded input row: 8-tile blocks read 36 floats from 4 * (first tile).
inline int64_t padded_row_width(int64_t tiles_w) { return 4 * ceil_div(tiles_w, 8) * 8 + 8; }

// V[xi][c][t - chunk.t0] (8-tile blocks in lane order) for the chunk's tiles, from image x (C, H, W).
void transform_input(const ConvGeometry& g, const float* x, int64_t tiles_w, const Chunk& ch, float* V, float* rows) {
  const int64_t T = ch.t1 - ch.t0, CT = g.C * T, width = padded_row_width(tiles_w);
  for (int64_t c = 0; c < g.C; ++c) {
    const float* plane = x + c * g.H * g.W;
    for (int64_t th = ch.t0 / tiles_w; th < ch.t1 / tiles_w; ++th) {
      for (int i = 0; i < 6; ++i) {  // row i of the strip: image row 4 th - pH + i, shifted right by pW
        float* row = rows + i * width;
        const int64_t ih = 4 * th - g.pH + i;
        if (ih < 0 || ih >= g.H) {
          for (int64_t k = 0; k < width; ++k) row[k] = 0.0f;
          continue;
        }
        const int64_t copied = g.W < width - g.pW ? g.W : width - g.pW;
        for (int64_t k = 0; k < g.pW; ++k) row[k] = 0.0f;
        __builtin_memcpy(row + g.pW, plane + ih * g.W, sizeof(float) * copied);
        for (int64_t k = g.pW + copied; k < width; ++k) row[k] = 0.0f;
      }
      float* dst = V + c * T + (th * tiles_w - ch.t0);
      for (int64_t tw = 0; tw < tiles_w; tw += 8) {
        __m256 cols[6][6];  // cols[i][j]: row i, column j of the 8 patches, after B^T along the row
        for (int i = 0; i < 6; ++i) {
          __m256 d[8];
          load_phases(rows + i * width + 4 * tw, d);      // columns 0..3 of each patch
          load_phases(rows + i * width + 4 * tw + 4, d + 4);  // columns 4..7 (4 and 5 used)
          b_transform(d, cols[i]);
        }
        for (int j = 0; j < 6; ++j) {
          const __m256 column[6] = {cols[0][j], cols[1][j], cols[2][j], cols[3][j], cols[4][j], cols[5][j]};
          __m256 v[6];
          b_transform(column, v);
          for (int i = 0; i < 6; ++i) {
            float* out = dst + (i * 6 + j) * CT + tw;
            if (tw + 8 <= tiles_w)
              _mm256_storeu_ps(out, v[i]);
            else
              _mm256_maskstore_ps(out, first_lanes(tiles_w - tw), lanes_to_tile_order(v[i]));
          }
        }
      }
    }
  }
}

// y (O, OH, OW) of the chunk's tiles from M[xi][o][t - chunk.t0], plus bias. M needs 8 floats of
// slack at its end (the last block of a tile row may read past the chunk).
void transform_output(const ConvGeometry& g, const float* M, const float* bias, int64_t tiles_w, const Chunk& ch,
                      float* y) {
  const int64_t T = ch.t1 - ch.t0, OT = g.O * T;
  for (int64_t o = 0; o < g.O; ++o) {
    float* plane = y + o * g.OH * g.OW;
    const __m256 b = _mm256_set1_ps(bias ? bias[o] : 0.0f);
    for (int64_t th = ch.t0 / tiles_w; th < ch.t1 / tiles_w; ++th) {
      const float* src = M + o * T + (th * tiles_w - ch.t0);
      const int64_t oh = 4 * th;
      for (int64_t tw = 0; tw < tiles_w; tw += 8) {
        __m256 rowsum[6][4];  // A^T along the columns of each patch row
        for (int i = 0; i < 6; ++i) {
          __m256 m[6];
          for (int j = 0; j < 6; ++j) {
            m[j] = _mm256_loadu_ps(src + (i * 6 + j) * OT + tw);
            if (tw + 8 > tiles_w) m[j] = tile_to_lane_order(m[j]);
          }
          a_transform(m, rowsum[i]);
        }
        const int64_t ow = 4 * tw;
        const bool full = ow + 32 <= g.OW && oh + 4 <= g.OH;
        __m256 out[4][4];  // out[r][c] lane l: output row r, column c of tile t(l)
        for (int c = 0; c < 4; ++c) {
          const __m256 column[6] = {rowsum[0][c], rowsum[1][c], rowsum[2][c], rowsum[3][c], rowsum[4][c], rowsum[5][c]};
          __m256 rows_c[4];
          a_transform(column, rows_c);
          for (int r = 0; r < 4; ++r) out[r][c] = _mm256_add_ps(rows_c[r], b);
        }
        for (int r = 0; r < 4 && oh + r < g.OH; ++r) {
          // The lane transpose turns (column c of 8 tiles) into 32 consecutive outputs of the row.
          transpose4_lanes(out[r][0], out[r][1], out[r][2], out[r][3]);
          float* dst = plane + (oh + r) * g.OW + ow;
          if (full) {
            for (int k = 0; k < 4; ++k) _mm256_storeu_ps(dst + 8 * k, out[r][k]);
          } else {  // the image's right or bottom edge: keep what lies inside
            alignas(32) float tmp[32];
            for (int k = 0; k < 4; ++k) _mm256_store_ps(tmp + 8 * k, out[r][k]);
            for (int64_t j = 0; j < 32 && ow + j < g.OW; ++j) dst[j] = tmp[j];
          }
        }
      }
    }
  }
}

}  // namespace

// x (N, C, H, W), w (O, C, 3, 3), bias (O,) or null -> y (N, O, OH, OW); needs 3x3, stride 1, dilation 1, groups 1.
void conv2d_winograd_f4x3(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const int64_t tiles_h = ceil_div(g.OH, 4), tiles_w = ceil_div(g.OW, 4);
  const int64_t rows_per_chunk = tiles_w >= kTilesPerChunk ? 1 : kTilesPerChunk / tiles_w;
  const int64_t chunks_per_image = ceil_div(tiles_h, rows_per_chunk);
  const int64_t max_T = rows_per_chunk * tiles_w;

  float* U = thread_scratch_of<float>(ScratchSlot::conv_aux, size_t(36 * g.O * g.C));
  weight_transform(g, w, U);

#pragma omp parallel num_threads(available_threads())
  {
    float* work = thread_scratch_of<float>(ScratchSlot::conv,
                                           size_t(36 * (g.C + g.O) * max_T + 8 + 6 * padded_row_width(tiles_w)));
#pragma omp for schedule(dynamic, 1)
    for (int64_t k = 0; k < g.N * chunks_per_image; ++k) {
      const int64_t n = k / chunks_per_image, r0 = (k % chunks_per_image) * rows_per_chunk;
      const int64_t r1 = r0 + rows_per_chunk < tiles_h ? r0 + rows_per_chunk : tiles_h;
      const Chunk ch{n, r0 * tiles_w, r1 * tiles_w};
      const int64_t T = ch.t1 - ch.t0;
      float* V = work;
      float* M = work + 36 * g.C * T;
      float* rows = M + 36 * g.O * T + 8;
      transform_input(g, x + n * g.C * g.H * g.W, tiles_w, ch, V, rows);
      for (int64_t xi = 0; xi < 36; ++xi)
        gemm(g.O, T, g.C, 1.0f, MatView<const float>{U + xi * g.O * g.C, g.C, 1},
             MatView<const float>{V + xi * g.C * T, T, 1}, 0.0f, MatView<float>{M + xi * g.O * T, T, 1});
      transform_output(g, M, bias, tiles_w, ch, y + n * g.O * g.OH * g.OW);
    }
  }
}

}  // namespace rb
