// RoI max pooling and adaptive max pooling, float32, with 8 channels (planes) in the lanes of a vector.
// Their bins are a few pixels wide (Fast R-CNN's 7x7 bins over a box of 10-40 feature cells, SPP-net's
// 4x4 over 4-10), too narrow for vectors along W; across channels every tap of a bin is one load per
// 8 channels, and the reference's rule runs lane by lane in the reference's tap order with no
// horizontal step: the same comparisons in the same order, so the same values, ties and indices.
// A tap's flat index h W + w is the same for every channel: one broadcast per tap.
// RoI pooling reads a copy of the part of each image its bins cover, channels last in blocks of 32
// (RoiRegion in pool.h; the dispatcher makes it row by row through roi_region_row_avx2): one pass over
// that part of the input, against a bin's taps read once per bin and channel. Adaptive max pooling
// transposes 8 planes at a time into a tile of the calling thread.
#include <immintrin.h>

#include <algorithm>
#include <cfloat>

#include "common/scratch.h"
#include "pool/pool.h"

namespace rb {
namespace {

// r[i] = column i of the 8 x 8 matrix whose rows were r[0 .. 7].
inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// Elements [w0, w1) of the rows src + j stride, j < lanes, into lane j of dst + (w - w0) pitch (lanes
// from `lanes` to 8 zero): 8 x 8 transposes, then one element at a time for the last columns.
void rows_to_lanes(const float* src, int64_t stride, int64_t lanes, int64_t w0, int64_t w1, float* dst,
                   int64_t pitch) {
  int64_t w = w0;
  if (lanes == 8) {
    for (; w + 8 <= w1; w += 8) {
      __m256 r[8];
      for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(src + j * stride + w);
      transpose8(r);
      for (int j = 0; j < 8; ++j) _mm256_storeu_ps(dst + (w - w0 + j) * pitch, r[j]);
    }
  }
  for (; w < w1; ++w)
    for (int64_t j = 0; j < 8; ++j) dst[(w - w0) * pitch + j] = j < lanes ? src[j * stride + w] : 0.0f;
}

// Outputs wait in a tile of up to kBinGroup bins x 8 V channels and reach y and argmax transposed 8 x 8,
// each channel's bins in consecutive stores: one store per output at a stride of PH PW outputs left
// the stores waiting on cache lines (60% of the time with SPP-net's 4 x 4 bins).
constexpr int64_t kBinGroup = 64;

// tile rows j < count (bins b0 + j) of kLanes channels -> y, argmax [c][b0 + j] for channels c < channels
// (argmax and indices unused without kWithIndex)
template <int kLanes, bool kWithIndex>
void write_tile(const float* values, const int32_t* indices, int64_t count, int64_t channels, int64_t bins, float* y,
                int64_t* argmax) {
  for (int64_t c8 = 0; c8 < channels; c8 += 8) {
    const int64_t real = std::min<int64_t>(8, channels - c8);
    int64_t j = 0;
    for (; j + 8 <= count; j += 8) {
      __m256 v[8], ix[8];
      for (int r = 0; r < 8; ++r) {
        v[r] = _mm256_load_ps(values + (j + r) * kLanes + c8);
        if (kWithIndex) ix[r] = _mm256_load_ps(reinterpret_cast<const float*>(indices) + (j + r) * kLanes + c8);
      }
      transpose8(v);
      if (kWithIndex) transpose8(ix);
      for (int64_t c = 0; c < real; ++c) {
        const int64_t o = (c8 + c) * bins + j;
        _mm256_storeu_ps(y + o, v[c]);
        if (kWithIndex) {
          const __m256i i32 = _mm256_castps_si256(ix[c]);
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(argmax + o),
                              _mm256_cvtepi32_epi64(_mm256_castsi256_si128(i32)));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(argmax + o + 4),
                              _mm256_cvtepi32_epi64(_mm256_extracti128_si256(i32, 1)));
        }
      }
    }
    for (int64_t c = c8; c < c8 + real; ++c)
      for (int64_t t = j; t < count; ++t) {
        y[c * bins + t] = values[t * kLanes + c];
        if (kWithIndex) argmax[c * bins + t] = indices[t * kLanes + c];
      }
  }
}

// The outputs of one RoI's bins for the 8 V channels from c0 (the last block may hold fewer real ones).
// Per lane the reference's loop: best from -FLT_MAX, a tap taken when v > best. max_ps(v, best) is
// exactly `v > best ? v : best` (best on ties, +0 against -0 included, and when v is NaN), so the
// value's dependency chain is one instruction; the index follows the same comparison. Without
// kWithIndex the comparison, the blend and the index stores are left out: the values are the same.
template <int V, bool kWithIndex>
void roi_block(const RoiPoolGeometry& g, const RoiRegion& region, const int64_t* rows, const int64_t* cols, int64_t c0,
               float* y, int64_t* argmax) {
  constexpr int kLanes = 8 * V;
  const int64_t channels = std::min<int64_t>(kLanes, g.C - c0), bins = g.PH * g.PW;
  const int64_t width = region.w1 - region.w0;
  const float* block = region.data + c0 * (region.h1 - region.h0) * width;  // this block's pixels, kLanes floats each
  alignas(32) float values[kBinGroup * kLanes];
  alignas(32) int32_t indices[kWithIndex ? kBinGroup * kLanes : 1];
  int64_t ph = 0, pw = 0;
  for (int64_t b0 = 0; b0 < bins; b0 += kBinGroup) {
    const int64_t count = std::min<int64_t>(kBinGroup, bins - b0);
    for (int64_t j = 0; j < count; ++j) {
      const int64_t h0 = rows[2 * ph], h1 = rows[2 * ph + 1], w0 = cols[2 * pw], w1 = cols[2 * pw + 1];
      if (++pw == g.PW) pw = 0, ++ph;
      __m256 best[V];
      __m256i index[V];
      const bool empty = h1 <= h0 || w1 <= w0;
      for (int v = 0; v < V; ++v)
        best[v] = _mm256_set1_ps(empty ? 0.0f : -FLT_MAX), index[v] = _mm256_set1_epi32(-1);
      for (int64_t h = h0; h < h1; ++h) {
        const float* p = block + ((h - region.h0) * width + w0 - region.w0) * kLanes;
        for (int64_t w = w0; w < w1; ++w, p += kLanes) {
          const __m256 tap = _mm256_castsi256_ps(_mm256_set1_epi32(int32_t(h * g.W + w)));
          for (int v = 0; v < V; ++v) {
            const __m256 x = _mm256_load_ps(p + 8 * v);
            if (kWithIndex) {
              const __m256 take = _mm256_cmp_ps(x, best[v], _CMP_GT_OQ);
              index[v] = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(index[v]), tap, take));
            }
            best[v] = _mm256_max_ps(x, best[v]);
          }
        }
      }
      for (int v = 0; v < V; ++v) {
        _mm256_store_ps(values + j * kLanes + 8 * v, best[v]);
        if (kWithIndex) _mm256_store_si256(reinterpret_cast<__m256i*>(indices + j * kLanes + 8 * v), index[v]);
      }
    }
    write_tile<kLanes, kWithIndex>(values, indices, count, channels, bins, y + c0 * bins + b0,
                                   kWithIndex ? argmax + c0 * bins + b0 : nullptr);
  }
}

template <bool kWithIndex>
void roi_block_lanes(const RoiPoolGeometry& g, const RoiRegion& region, const int64_t* rows, const int64_t* cols,
                     int64_t c0, float* y, int64_t* argmax) {
  switch (std::min<int64_t>((g.C - c0 + 7) / 8, 4)) {
    case 1: roi_block<1, kWithIndex>(g, region, rows, cols, c0, y, argmax); break;
    case 2: roi_block<2, kWithIndex>(g, region, rows, cols, c0, y, argmax); break;
    case 3: roi_block<3, kWithIndex>(g, region, rows, cols, c0, y, argmax); break;
    default: roi_block<4, kWithIndex>(g, region, rows, cols, c0, y, argmax); break;
  }
}

}  // namespace

void roi_region_row_avx2(const float* image, int64_t C, int64_t H, int64_t W, int64_t h, const RoiRegion& region) {
  const int64_t width = region.w1 - region.w0, area = (region.h1 - region.h0) * width;
  for (int64_t c0 = 0; c0 < C; c0 += kRoiChannelBlock) {
    const int64_t pitch = std::min<int64_t>(kRoiChannelBlock, (C - c0 + 7) / 8 * 8);
    float* out = region.data + c0 * area + (h - region.h0) * width * pitch;
    for (int64_t c = c0; c < c0 + pitch; c += 8)
      rows_to_lanes(image + (c * H + h) * W, H * W, std::min<int64_t>(8, C - c), region.w0, region.w1, out + c - c0,
                    pitch);
  }
}

void roi_pool_block_avx2(const RoiPoolGeometry& g, const RoiRegion& region, const int64_t* rows, const int64_t* cols,
                         int64_t c0, float* y, int64_t* argmax) {
  if (argmax)
    roi_block_lanes<true>(g, region, rows, cols, c0, y, argmax);
  else
    roi_block_lanes<false>(g, region, rows, cols, c0, y, nullptr);
}

namespace {

template <bool kWithIndex>
void adaptive_max_lanes(const PoolGeometry& g, const int64_t* rows, const int64_t* cols, int64_t p0, int64_t p1,
                        const float* x, float* y, int64_t* idx) {
  const int64_t in_plane = g.H * g.W, out_plane = g.OH * g.OW;
  float* tile = thread_scratch_of<float>(ScratchSlot::pool, size_t(8 * in_plane));  // tap i of lane j at tile[8 i + j]
  alignas(32) float values[8];
  alignas(32) int32_t indices[8];
  for (int64_t p = p0; p < p1; p += 8) {
    const int64_t lanes = std::min<int64_t>(8, p1 - p);
    rows_to_lanes(x + p * in_plane, in_plane, lanes, 0, in_plane, tile, 8);
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      const int64_t h0 = rows[2 * oh], h1 = rows[2 * oh + 1];
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const int64_t w0 = cols[2 * ow], w1 = cols[2 * ow + 1];
        __m256 best = _mm256_load_ps(tile + 8 * (h0 * g.W + w0));  // adaptive windows are never empty
        __m256 index = _mm256_castsi256_ps(_mm256_set1_epi32(int32_t(h0 * g.W + w0)));
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = h == h0 ? w0 + 1 : w0; w < w1; ++w) {
            const __m256 v = _mm256_load_ps(tile + 8 * (h * g.W + w));
            const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            best = _mm256_blendv_ps(best, v, take);
            if (kWithIndex)
              index = _mm256_blendv_ps(index, _mm256_castsi256_ps(_mm256_set1_epi32(int32_t(h * g.W + w))), take);
          }
        _mm256_store_ps(values, best);
        if (kWithIndex) _mm256_store_si256(reinterpret_cast<__m256i*>(indices), _mm256_castps_si256(index));
        const int64_t o = p * out_plane + oh * g.OW + ow;
        for (int64_t j = 0; j < lanes; ++j) {
          y[o + j * out_plane] = values[j];
          if (kWithIndex) idx[o + j * out_plane] = indices[j];
        }
      }
    }
  }
}

}  // namespace

// x (P, H, W) -> y, idx (P, OH, OW) for planes [p0, p1). Per lane the reference's rule: the window's
// first tap, then a tap taken when v > best or v is NaN (the last NaN wins, with its own bits).
void adaptive_max_pool2d_avx2(const PoolGeometry& g, const int64_t* rows, const int64_t* cols, int64_t p0, int64_t p1,
                              const float* x, float* y, int64_t* idx) {
  if (idx)
    adaptive_max_lanes<true>(g, rows, cols, p0, p1, x, y, idx);
  else
    adaptive_max_lanes<false>(g, rows, cols, p0, p1, x, y, nullptr);
}

}  // namespace rb
