// Up-sampling on the CPU (rules: upsample.h). The taps of every output row and column are worked
// out once per call; each plane then gathers its outputs (forward) or adds each output's gradient
// to its taps in output order (backward, so the sums are the same on every run and thread count).
// This plain loop is its own reference: it is tested against a float64 NumPy reference and torch.
#include "pool/upsample.h"

#include <algorithm>
#include <vector>

#include "common/parallel.h"

namespace rb {

namespace {

// Below this many outputs a call stays on the calling thread.
constexpr int64_t kParallelOutputs = int64_t(1) << 16;

template <typename T>
struct AxisTaps {
  std::vector<UpsampleTap<T>> rows, cols;
};

template <typename T>
AxisTaps<T> taps_of(const UpsampleDims& g) {
  AxisTaps<T> t;
  t.rows.reserve(g.OH), t.cols.reserve(g.OW);
  for (int64_t oh = 0; oh < g.OH; ++oh) t.rows.push_back(upsample_tap<T>(oh, g.H, g.OH, g.scale_h, g.bilinear, g.align_corners));
  for (int64_t ow = 0; ow < g.OW; ++ow) t.cols.push_back(upsample_tap<T>(ow, g.W, g.OW, g.scale_w, g.bilinear, g.align_corners));
  return t;
}

int team_for(const UpsampleDims& g) { return g.planes * g.OH * g.OW < kParallelOutputs ? 1 : available_threads(); }

}  // namespace

template <typename T>
void upsample2d_forward(const UpsampleDims& g, const T* x, T* y) {
  const AxisTaps<T> t = taps_of<T>(g);
  parallel_for(team_for(g), g.planes, [&](int64_t p) {
    const T* plane = x + p * g.H * g.W;
    T* out = y + p * g.OH * g.OW;
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) out[oh * g.OW + ow] = upsample_value(plane, g.W, t.rows[oh], t.cols[ow], g.bilinear);
  });
}

template <typename T>
void upsample2d_backward(const UpsampleDims& g, const T* dy, T* dx) {
  const AxisTaps<T> t = taps_of<T>(g);
  parallel_for(team_for(g), g.planes, [&](int64_t p) {
    T* plane = dx + p * g.H * g.W;
    std::fill(plane, plane + g.H * g.W, T(0));
    const T* grad = dy + p * g.OH * g.OW;
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow)
        upsample_scatter(g.W, t.rows[oh], t.cols[ow], g.bilinear, grad[oh * g.OW + ow],
                         [plane](int64_t i, T amount) { plane[i] += amount; });
  });
}

template void upsample2d_forward<float>(const UpsampleDims&, const float*, float*);
template void upsample2d_forward<double>(const UpsampleDims&, const double*, double*);
template void upsample2d_backward<float>(const UpsampleDims&, const float*, float*);
template void upsample2d_backward<double>(const UpsampleDims&, const double*, double*);

}  // namespace rb
