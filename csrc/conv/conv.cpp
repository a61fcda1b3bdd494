// Convolution dispatch and the GEMM-based fast path.
//
// Forward, per image and group:   Y_g (O/g, OH*OW) = W_g (O/g, C/g*kH*kW) . col_g (C/g*kH*kW, OH*OW)
// Backward-data:                  col_g = W_g^T . dY_g, then col2im adds each column back onto its taps
// Backward-weight:                dW_g  = sum_n dY_g,n . col_g,n^T
// A 1x1 stride-1 unpadded convolution needs no im2col: the image (C, H*W) already is col.
//
// Threads: with at least as many images as threads, images are split across threads and each
// calls the GEMM single-threaded on its own im2col buffer (small images keep every thread busy
// without the GEMM's own fork/join per call); otherwise images run in order and the GEMM
// spreads each product over all threads. Float64 and the scalar ISA use the reference.
#include "conv/conv.h"

#include <omp.h>

#include <cstring>
#include <type_traits>
#include <vector>

#include "common/parallel.h"
#include "common/scratch.h"
#include "dispatch/dispatch.h"
#include "gemm/gemm.h"

namespace rb {

namespace {

// Output positions o in [0, out) whose tap o * s + offset lies inside [0, in): [*lo, *hi).
void valid_range(int64_t offset, int64_t s, int64_t in, int64_t out, int64_t* lo, int64_t* hi) {
  *lo = offset >= 0 ? 0 : (-offset + s - 1) / s;
  *hi = in - offset <= 0 ? 0 : (in - offset - 1) / s + 1;
  if (*hi > out) *hi = out;
  if (*lo > out) *lo = out;
  if (*hi < *lo) *hi = *lo;
}

// Split images across threads when there are enough of them to keep every thread equally busy.
bool split_batch(int64_t N, int threads) { return threads > 1 && (N % threads == 0 || N >= 4 * threads); }

}  // namespace

// x (C, H, W) -> col (C * kH * kW, OH * OW); row (c, i, j) holds tap (i, j) of channel c for every output.
template <typename T>
void im2col(const ConvGeometry& g, const T* x, T* col) {
  const int64_t L = g.OH * g.OW, rows = g.C * g.kH * g.kW;
#pragma omp parallel for schedule(static) num_threads(available_threads()) if (rows * L > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = r / g.taps(), i = (r / g.kW) % g.kH, j = r % g.kW;
    const T* plane = x + c * g.H * g.W;
    T* dst = col + r * L;
    int64_t oh_lo, oh_hi, ow_lo, ow_hi;
    valid_range(i * g.dH - g.pH, g.sH, g.H, g.OH, &oh_lo, &oh_hi);
    valid_range(j * g.dW - g.pW, g.sW, g.W, g.OW, &ow_lo, &ow_hi);
    std::memset(dst, 0, sizeof(T) * oh_lo * g.OW);
    for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
      const T* src = plane + (oh * g.sH - g.pH + i * g.dH) * g.W + (j * g.dW - g.pW);
      T* out = dst + oh * g.OW;
      for (int64_t ow = 0; ow < ow_lo; ++ow) out[ow] = T(0);
      if (g.sW == 1) {
        std::memcpy(out + ow_lo, src + ow_lo, sizeof(T) * (ow_hi - ow_lo));
      } else {
        for (int64_t ow = ow_lo; ow < ow_hi; ++ow) out[ow] = src[ow * g.sW];
      }
      for (int64_t ow = ow_hi; ow < g.OW; ++ow) out[ow] = T(0);
    }
    std::memset(dst + oh_hi * g.OW, 0, sizeof(T) * (g.OH - oh_hi) * g.OW);
  }
}

// col (C * kH * kW, OH * OW) -> x (C, H, W) += each column's taps. Channels are independent, so threads split them.
template <typename T>
void col2im(const ConvGeometry& g, const T* col, T* x) {
  const int64_t L = g.OH * g.OW;
#pragma omp parallel for schedule(static) num_threads(available_threads()) if (g.C * g.taps() * L > 65536)
  for (int64_t c = 0; c < g.C; ++c) {
    T* plane = x + c * g.H * g.W;
    for (int64_t i = 0; i < g.kH; ++i)
      for (int64_t j = 0; j < g.kW; ++j) {
        const T* src = col + ((c * g.kH + i) * g.kW + j) * L;
        int64_t oh_lo, oh_hi, ow_lo, ow_hi;
        valid_range(i * g.dH - g.pH, g.sH, g.H, g.OH, &oh_lo, &oh_hi);
        valid_range(j * g.dW - g.pW, g.sW, g.W, g.OW, &ow_lo, &ow_hi);
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
          T* dst = plane + (oh * g.sH - g.pH + i * g.dH) * g.W + (j * g.dW - g.pW);
          const T* row = src + oh * g.OW;
          if (g.sW == 1) {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow] += row[ow];
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow * g.sW] += row[ow];
          }
        }
      }
  }
}

namespace {

// ---- one image of each pass on the GEMM path (float32) ----

// col_buf: scratch of col_rows * groups * OH*OW floats (unused for pointwise convolutions).
void forward_image(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y, float* col_buf) {
  const int64_t L = g.OH * g.OW, Kc = g.col_rows(), Og = g.o_per_group();
  const float* col = x;
  if (!g.is_pointwise()) {
    im2col(g, x, col_buf);
    col = col_buf;
  }
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    float* yg = y + grp * Og * L;
    float beta = 0.0f;
    if (bias) {  // start from the bias and let the GEMM accumulate onto it
      for (int64_t o = 0; o < Og; ++o)
        for (int64_t l = 0; l < L; ++l) yg[o * L + l] = bias[grp * Og + o];
      beta = 1.0f;
    }
    gemm(Og, L, Kc, 1.0f, MatView<const float>{w + grp * Og * Kc, Kc, 1},
         MatView<const float>{col + grp * Kc * L, L, 1}, beta, MatView<float>{yg, L, 1});
  }
}

void backward_data_image(const ConvGeometry& g, const float* dy, const float* w, float* dx, float* col_buf) {
  const int64_t L = g.OH * g.OW, Kc = g.col_rows(), Og = g.o_per_group();
  float* col = g.is_pointwise() ? dx : col_buf;  // pointwise: the GEMM writes dx directly
  for (int64_t grp = 0; grp < g.groups; ++grp)
    gemm(Kc, L, Og, 1.0f, MatView<const float>{w + grp * Og * Kc, 1, Kc},
         MatView<const float>{dy + grp * Og * L, L, 1}, 0.0f, MatView<float>{col + grp * Kc * L, L, 1});
  if (!g.is_pointwise()) {
    std::memset(dx, 0, sizeof(float) * g.C * g.H * g.W);
    col2im(g, col_buf, dx);
  }
}

// dw += dY . col^T for one image.
void backward_weight_image(const ConvGeometry& g, const float* x, const float* dy, float* dw, float* col_buf) {
  const int64_t L = g.OH * g.OW, Kc = g.col_rows(), Og = g.o_per_group();
  const float* col = x;
  if (!g.is_pointwise()) {
    im2col(g, x, col_buf);
    col = col_buf;
  }
  for (int64_t grp = 0; grp < g.groups; ++grp)
    gemm(Og, Kc, L, 1.0f, MatView<const float>{dy + grp * Og * L, L, 1},
         MatView<const float>{col + grp * Kc * L, 1, L}, 1.0f, MatView<float>{dw + grp * Og * Kc, Kc, 1});
}

size_t col_elems(const ConvGeometry& g) { return g.is_pointwise() ? 1 : size_t(g.C * g.taps() * g.OH * g.OW); }

const char* gemm_impl_name(const ConvGeometry& g, bool batch_split) {
  if (g.is_pointwise()) return batch_split ? "gemm_1x1_batch_split" : "gemm_1x1";
  return batch_split ? "im2col_gemm_batch_split" : "im2col_gemm";
}

// Runs body(n, col_buffer) for every image, split across threads or in order (see the file comment).
template <typename Body>
bool for_each_image(const ConvGeometry& g, Body body) {
  const int threads = available_threads();
  const bool split = split_batch(g.N, threads);
  if (split) {
#pragma omp parallel num_threads(threads)
    {
      float* col = thread_scratch_of<float>(ScratchSlot::conv, col_elems(g));
#pragma omp for schedule(static)
      for (int64_t n = 0; n < g.N; ++n) body(n, col);
    }
  } else {
    float* col = thread_scratch_of<float>(ScratchSlot::conv, col_elems(g));
    for (int64_t n = 0; n < g.N; ++n) body(n, col);
  }
  return split;
}

bool use_fast_path() { return active_isa() == Isa::avx2; }

}  // namespace

template <typename T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, const char* op) {
  if constexpr (std::is_same_v<T, float>) {
    if (use_fast_path()) {
      const int64_t in_img = g.C * g.H * g.W, out_img = g.O * g.OH * g.OW;
      const bool split = for_each_image(
          g, [&](int64_t n, float* col) { forward_image(g, x + n * in_img, w, bias, y + n * out_img, col); });
      record_impl(op, gemm_impl_name(g, split));
      return;
    }
  }
  conv2d_forward_ref(g, x, w, bias, y);
  record_impl(op, "scalar_ref");
}

template <typename T>
void conv2d_backward_data(const ConvGeometry& g, const T* dy, const T* w, T* dx, const char* op) {
  if constexpr (std::is_same_v<T, float>) {
    if (use_fast_path()) {
      const int64_t in_img = g.C * g.H * g.W, out_img = g.O * g.OH * g.OW;
      const bool split = for_each_image(
          g, [&](int64_t n, float* col) { backward_data_image(g, dy + n * out_img, w, dx + n * in_img, col); });
      record_impl(op, gemm_impl_name(g, split));
      return;
    }
  }
  conv2d_backward_data_ref(g, dy, w, dx);
  record_impl(op, "scalar_ref");
}

template <typename T>
void conv2d_backward_weight(const ConvGeometry& g, const T* x, const T* dy, T* dw, const char* op) {
  if constexpr (std::is_same_v<T, float>) {
    if (use_fast_path()) {
      const int64_t in_img = g.C * g.H * g.W, out_img = g.O * g.OH * g.OW;
      const int64_t w_elems = g.O * g.col_rows();
      const int threads = available_threads();
      const bool split = split_batch(g.N, threads);
      if (split) {
        // Each thread accumulates its images into a private copy of dW; the copies are summed after.
        std::vector<float> partial(size_t(threads) * w_elems, 0.0f);
#pragma omp parallel num_threads(threads)
        {
          float* col = thread_scratch_of<float>(ScratchSlot::conv, col_elems(g));
          float* acc = partial.data() + int64_t(omp_get_thread_num()) * w_elems;
#pragma omp for schedule(static)
          for (int64_t n = 0; n < g.N; ++n) backward_weight_image(g, x + n * in_img, dy + n * out_img, acc, col);
#pragma omp for schedule(static)
          for (int64_t e = 0; e < w_elems; ++e) {
            float sum = 0.0f;
            for (int t = 0; t < threads; ++t) sum += partial[size_t(t) * w_elems + e];
            dw[e] = sum;
          }
        }
      } else {
        std::memset(dw, 0, sizeof(float) * w_elems);
        float* col = thread_scratch_of<float>(ScratchSlot::conv, col_elems(g));
        for (int64_t n = 0; n < g.N; ++n) backward_weight_image(g, x + n * in_img, dy + n * out_img, dw, col);
      }
      record_impl(op, gemm_impl_name(g, split));
      return;
    }
  }
  conv2d_backward_weight_ref(g, x, dy, dw);
  record_impl(op, "scalar_ref");
}

// dy (N, O, OH, OW) -> db (O,): the sum over images and positions. Memory-bound; threads split channels.
template <typename T>
void conv2d_backward_bias(const ConvGeometry& g, const T* dy, T* db) {
  const int64_t L = g.OH * g.OW;
#pragma omp parallel for schedule(static) num_threads(available_threads()) if (g.N * g.O * L > 65536)
  for (int64_t o = 0; o < g.O; ++o) {
    double sum = 0.0;  // float64 accumulation: a bias gradient sums up to millions of terms
    for (int64_t n = 0; n < g.N; ++n) {
      const T* plane = dy + (n * g.O + o) * L;
      T partial = T(0);
      for (int64_t l = 0; l < L; ++l) partial += plane[l];
      sum += double(partial);
    }
    db[o] = T(sum);
  }
}

#define RB_CONV_INSTANTIATE(T)                                                                             \
  template void im2col<T>(const ConvGeometry&, const T*, T*);                                              \
  template void col2im<T>(const ConvGeometry&, const T*, T*);                                              \
  template void conv2d_forward<T>(const ConvGeometry&, const T*, const T*, const T*, T*, const char*);     \
  template void conv2d_backward_data<T>(const ConvGeometry&, const T*, const T*, T*, const char*);         \
  template void conv2d_backward_weight<T>(const ConvGeometry&, const T*, const T*, T*, const char*);       \
  template void conv2d_backward_bias<T>(const ConvGeometry&, const T*, T*);
RB_CONV_INSTANTIATE(float)
RB_CONV_INSTANTIATE(double)
#undef RB_CONV_INSTANTIATE

}  // namespace rb
