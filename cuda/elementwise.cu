// Element-wise ops with NumPy broadcasting: out[i] = f(in0[off0(i)], in1[off1(i)], in2[off2(i)]).
#include <stdexcept>

#include "check.h"
#include "kernels.h"
#include "launch.cuh"

namespace rb::cuda {

int arity(Elementwise op) {
  switch (op) {
    case Elementwise::copy: case Elementwise::neg: case Elementwise::exp: case Elementwise::log:
    case Elementwise::tanh: case Elementwise::sigmoid: case Elementwise::relu:
      return 1;
    case Elementwise::div_backward_b:
      return 3;
    default:
      return 2;
  }
}

namespace {

// The one broadcasting index helper: element i of the C-contiguous output, decomposed over the
// dimensions (layout dimension 0 is the innermost), gives each input's offset through its strides.
// The loop is unrolled over kMaxDims so the layout's arrays are indexed by constants.
template <int N>
__device__ inline void broadcast_offsets(const BroadcastLayout& layout, int64_t i, int64_t (&offset)[kMaxInputs]) {
#pragma unroll
  for (int k = 0; k < N; ++k) offset[k] = 0;
#pragma unroll
  for (int d = 0; d < kMaxDims; ++d) {
    if (d < layout.ndim) {
      const int64_t index = i % layout.shape[d];
      i /= layout.shape[d];
#pragma unroll
      for (int k = 0; k < N; ++k) offset[k] += index * layout.strides[k][d];
    }
  }
}

template <typename T>
struct Inputs {
  const T* p[kMaxInputs];
};

template <int N, typename T, class F>
__global__ void elementwise_kernel(F f, BroadcastLayout layout, Inputs<T> in, T* __restrict__ out, int64_t n) {
  for (int64_t i = global_thread_index(); i < n; i += grid_threads()) {
    T v[kMaxInputs] = {};
    if (layout.contiguous) {
#pragma unroll
      for (int k = 0; k < N; ++k) v[k] = in.p[k][i];
    } else {
      int64_t offset[kMaxInputs];
      broadcast_offsets<N>(layout, i, offset);
#pragma unroll
      for (int k = 0; k < N; ++k) v[k] = in.p[k][offset[k]];
    }
    out[i] = f(v[0], v[1], v[2]);
  }
}

// The ops. Backward ops take the upstream gradient g first.
struct Copy { template <typename T> __device__ T operator()(T a, T, T) const { return a; } };
struct Neg { template <typename T> __device__ T operator()(T a, T, T) const { return -a; } };
struct Exp { template <typename T> __device__ T operator()(T a, T, T) const { return exp_of(a); } };
struct Log { template <typename T> __device__ T operator()(T a, T, T) const { return log_of(a); } };
struct Tanh { template <typename T> __device__ T operator()(T a, T, T) const { return tanh_of(a); } };
struct Sigmoid {
  template <typename T> __device__ T operator()(T a, T, T) const { return T(1) / (T(1) + exp_of(-a)); }
};
struct Relu {  // NaN passes through, as np.maximum(x, 0)
  template <typename T> __device__ T operator()(T a, T, T) const { return a < T(0) ? T(0) : a; }
};
struct Add { template <typename T> __device__ T operator()(T a, T b, T) const { return a + b; } };
struct Sub { template <typename T> __device__ T operator()(T a, T b, T) const { return a - b; } };
struct Mul { template <typename T> __device__ T operator()(T a, T b, T) const { return a * b; } };
struct Div { template <typename T> __device__ T operator()(T a, T b, T) const { return a / b; } };
struct ExpBackward {  // y = exp(x): dx = g * y
  template <typename T> __device__ T operator()(T g, T y, T) const { return g * y; }
};
struct TanhBackward {  // y = tanh(x): dx = g * (1 - y^2)
  template <typename T> __device__ T operator()(T g, T y, T) const { return g * (T(1) - y * y); }
};
struct SigmoidBackward {  // y = sigmoid(x): dx = g * y * (1 - y)
  template <typename T> __device__ T operator()(T g, T y, T) const { return g * y * (T(1) - y); }
};
struct LogBackward {  // dx = g / x
  template <typename T> __device__ T operator()(T g, T x, T) const { return g / x; }
};
struct ReluBackward {  // dx = g where x > 0
  template <typename T> __device__ T operator()(T g, T x, T) const { return x > T(0) ? g : T(0); }
};
struct DivBackwardB {  // out = a / b: db = -g * a / b^2
  template <typename T> __device__ T operator()(T g, T a, T b) const { return -g * a / (b * b); }
};

template <int N, typename T, class F>
void launch(F f, const BroadcastLayout& layout, const T* const* inputs, T* out, int64_t n, cudaStream_t stream,
            const char* name) {
  if (n == 0) return;
  Inputs<T> in{};
  for (int k = 0; k < N; ++k) in.p[k] = inputs[k];
  constexpr int threads = 256;
  elementwise_kernel<N, T><<<grid_stride_blocks(n, threads), threads, 0, stream>>>(f, layout, in, out, n);
  check_launch(name, "elementwise_kernel");
}

}  // namespace

template <typename T>
void launch_elementwise(Elementwise op, const BroadcastLayout& l, const T* const* in, T* out, int64_t n, cudaStream_t s) {
  switch (op) {
    case Elementwise::copy: return launch<1>(Copy{}, l, in, out, n, s, "copy");
    case Elementwise::neg: return launch<1>(Neg{}, l, in, out, n, s, "neg");
    case Elementwise::exp: return launch<1>(Exp{}, l, in, out, n, s, "exp");
    case Elementwise::log: return launch<1>(Log{}, l, in, out, n, s, "log");
    case Elementwise::tanh: return launch<1>(Tanh{}, l, in, out, n, s, "tanh");
    case Elementwise::sigmoid: return launch<1>(Sigmoid{}, l, in, out, n, s, "sigmoid");
    case Elementwise::relu: return launch<1>(Relu{}, l, in, out, n, s, "relu");
    case Elementwise::add: return launch<2>(Add{}, l, in, out, n, s, "add");
    case Elementwise::sub: return launch<2>(Sub{}, l, in, out, n, s, "sub");
    case Elementwise::mul: return launch<2>(Mul{}, l, in, out, n, s, "mul");
    case Elementwise::div: return launch<2>(Div{}, l, in, out, n, s, "div");
    case Elementwise::exp_backward: return launch<2>(ExpBackward{}, l, in, out, n, s, "exp_backward");
    case Elementwise::tanh_backward: return launch<2>(TanhBackward{}, l, in, out, n, s, "tanh_backward");
    case Elementwise::sigmoid_backward: return launch<2>(SigmoidBackward{}, l, in, out, n, s, "sigmoid_backward");
    case Elementwise::log_backward: return launch<2>(LogBackward{}, l, in, out, n, s, "log_backward");
    case Elementwise::relu_backward: return launch<2>(ReluBackward{}, l, in, out, n, s, "relu_backward");
    case Elementwise::div_backward_b: return launch<3>(DivBackwardB{}, l, in, out, n, s, "div_backward_b");
  }
  throw std::logic_error("elementwise: unknown op");
}

template <>
void launch_elementwise<int64_t>(Elementwise op, const BroadcastLayout& l, const int64_t* const* in, int64_t* out,
                                 int64_t n, cudaStream_t s) {
  if (op != Elementwise::copy) throw std::logic_error("elementwise: only copy is built for int64");
  launch<1>(Copy{}, l, in, out, n, s, "copy");
}

template void launch_elementwise<float>(Elementwise, const BroadcastLayout&, const float* const*, float*, int64_t, cudaStream_t);
template void launch_elementwise<double>(Elementwise, const BroadcastLayout&, const double* const*, double*, int64_t,
                                  cudaStream_t);

}  // namespace rb::cuda
