// Element-wise ops with NumPy broadcasting: out[i] = f(in0[off0(i)], in1[off1(i)], in2[off2(i)]).
#include <stdexcept>

#include "check.h"
#include "kernels.h"
#include "launch.cuh"

namespace rb::cuda {

int arity(Elementwise op) {
  switch (op) {
    case Elementwise::copy: case Elementwise::neg: case Elementwise::exp: case Elementwise::log:
    case Elementwise::tanh: case Elementwise::sigmoid: case Elementwise::relu: case Elementwise::sqrt:
    case Elementwise::abs: case Elementwise::sign: case Elementwise::log1p: case Elementwise::sin:
    case Elementwise::cos:
      return 1;
    case Elementwise::div_backward_b:
      return 3;
    default:
      return 2;
  }
}

namespace {

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
struct Sqrt { template <typename T> __device__ T operator()(T a, T, T) const { return sqrt_of(a); } };
struct Abs { template <typename T> __device__ T operator()(T a, T, T) const { return a < T(0) ? -a : a; } };
struct Sign {  // NaN stays NaN, as np.sign
  template <typename T> __device__ T operator()(T a, T, T) const { return a > T(0) ? T(1) : a < T(0) ? T(-1) : a; }
};
struct Log1p { template <typename T> __device__ T operator()(T a, T, T) const { return log1p_of(a); } };
struct Sin { template <typename T> __device__ T operator()(T a, T, T) const { return sin_of(a); } };
struct Cos { template <typename T> __device__ T operator()(T a, T, T) const { return cos_of(a); } };
struct Pow { template <typename T> __device__ T operator()(T a, T b, T) const { return pow_of(a, b); } };
struct Maximum {  // a NaN on either side gives NaN
  template <typename T> __device__ T operator()(T a, T b, T) const { return (a > b || a != a) ? a : b; }
};
struct Minimum {
  template <typename T> __device__ T operator()(T a, T b, T) const { return (a < b || a != a) ? a : b; }
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

// The one place that maps an op to its functor at run time (used by the strided kernels).
template <typename T>
__device__ T apply(Elementwise op, T a, T b, T c) {
  switch (op) {
    case Elementwise::copy: return Copy{}(a, b, c);
    case Elementwise::neg: return Neg{}(a, b, c);
    case Elementwise::exp: return Exp{}(a, b, c);
    case Elementwise::log: return Log{}(a, b, c);
    case Elementwise::tanh: return Tanh{}(a, b, c);
    case Elementwise::sigmoid: return Sigmoid{}(a, b, c);
    case Elementwise::relu: return Relu{}(a, b, c);
    case Elementwise::sqrt: return Sqrt{}(a, b, c);
    case Elementwise::abs: return Abs{}(a, b, c);
    case Elementwise::sign: return Sign{}(a, b, c);
    case Elementwise::log1p: return Log1p{}(a, b, c);
    case Elementwise::sin: return Sin{}(a, b, c);
    case Elementwise::cos: return Cos{}(a, b, c);
    case Elementwise::pow: return Pow{}(a, b, c);
    case Elementwise::maximum: return Maximum{}(a, b, c);
    case Elementwise::minimum: return Minimum{}(a, b, c);
    case Elementwise::add: return Add{}(a, b, c);
    case Elementwise::sub: return Sub{}(a, b, c);
    case Elementwise::mul: return Mul{}(a, b, c);
    case Elementwise::div: return Div{}(a, b, c);
    case Elementwise::exp_backward: return ExpBackward{}(a, b, c);
    case Elementwise::tanh_backward: return TanhBackward{}(a, b, c);
    case Elementwise::sigmoid_backward: return SigmoidBackward{}(a, b, c);
    case Elementwise::log_backward: return LogBackward{}(a, b, c);
    case Elementwise::relu_backward: return ReluBackward{}(a, b, c);
    case Elementwise::div_backward_b: return DivBackwardB{}(a, b, c);
  }
  return T(0);
}

template <typename T>
struct Inputs {
  const T* p[kMaxInputs];
};

// Every input C-contiguous with the output's shape: one kernel per op, the functor inlined.
template <int N, typename T, class F>
__global__ void contiguous_kernel(F f, Inputs<T> in, T* __restrict__ out, int64_t n) {
  for (int64_t i = global_thread_index(); i < n; i += grid_threads()) {
    T v[kMaxInputs] = {};
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] = in.p[k][i];
    out[i] = f(v[0], v[1], v[2]);
  }
}

// Broadcasting or strided inputs: one kernel per arity and dtype, the op chosen at run time
// (a uniform branch), which keeps the index arithmetic below from being compiled 34 times.
template <int N, typename T>
__global__ void strided_kernel(Elementwise op, BroadcastLayout layout, Inputs<T> in, T* __restrict__ out, int64_t n) {
  for (int64_t i = global_thread_index(); i < n; i += grid_threads()) {
    int64_t offset[kMaxInputs];
    broadcast_offsets<N>(layout, i, offset);
    T v[kMaxInputs] = {};
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] = in.p[k][offset[k]];
    out[i] = apply(op, v[0], v[1], v[2]);
  }
}

template <int N, typename T, class F>
void launch(F f, Elementwise op, const BroadcastLayout& layout, const T* const* inputs, T* out, int64_t n,
            cudaStream_t stream, const char* name) {
  if (n == 0) return;
  Inputs<T> in{};
  for (int k = 0; k < N; ++k) in.p[k] = inputs[k];
  constexpr int threads = 256;
  const unsigned int blocks = grid_stride_blocks(n, threads);
  if (layout.contiguous) {
    contiguous_kernel<N, T><<<blocks, threads, 0, stream>>>(f, in, out, n);
    check_launch(name, "contiguous_kernel");
  } else {
    strided_kernel<N, T><<<blocks, threads, 0, stream>>>(op, layout, in, out, n);
    check_launch(name, "strided_kernel");
  }
}

}  // namespace

void broadcast_offsets_on_host(const BroadcastLayout& layout, int n_inputs, int64_t i, int64_t* offsets) {
  int64_t offset[kMaxInputs];
  broadcast_offsets<kMaxInputs>(layout, i, offset);
  for (int k = 0; k < n_inputs; ++k) offsets[k] = offset[k];
}

template <typename T>
void launch_elementwise(Elementwise op, const BroadcastLayout& l, const T* const* in, T* out, int64_t n, cudaStream_t s) {
  switch (op) {
    case Elementwise::copy: return launch<1>(Copy{}, op, l, in, out, n, s, "copy");
    case Elementwise::neg: return launch<1>(Neg{}, op, l, in, out, n, s, "neg");
    case Elementwise::exp: return launch<1>(Exp{}, op, l, in, out, n, s, "exp");
    case Elementwise::log: return launch<1>(Log{}, op, l, in, out, n, s, "log");
    case Elementwise::tanh: return launch<1>(Tanh{}, op, l, in, out, n, s, "tanh");
    case Elementwise::sigmoid: return launch<1>(Sigmoid{}, op, l, in, out, n, s, "sigmoid");
    case Elementwise::relu: return launch<1>(Relu{}, op, l, in, out, n, s, "relu");
    case Elementwise::sqrt: return launch<1>(Sqrt{}, op, l, in, out, n, s, "sqrt");
    case Elementwise::abs: return launch<1>(Abs{}, op, l, in, out, n, s, "abs");
    case Elementwise::sign: return launch<1>(Sign{}, op, l, in, out, n, s, "sign");
    case Elementwise::log1p: return launch<1>(Log1p{}, op, l, in, out, n, s, "log1p");
    case Elementwise::sin: return launch<1>(Sin{}, op, l, in, out, n, s, "sin");
    case Elementwise::cos: return launch<1>(Cos{}, op, l, in, out, n, s, "cos");
    case Elementwise::pow: return launch<2>(Pow{}, op, l, in, out, n, s, "pow");
    case Elementwise::maximum: return launch<2>(Maximum{}, op, l, in, out, n, s, "maximum");
    case Elementwise::minimum: return launch<2>(Minimum{}, op, l, in, out, n, s, "minimum");
    case Elementwise::add: return launch<2>(Add{}, op, l, in, out, n, s, "add");
    case Elementwise::sub: return launch<2>(Sub{}, op, l, in, out, n, s, "sub");
    case Elementwise::mul: return launch<2>(Mul{}, op, l, in, out, n, s, "mul");
    case Elementwise::div: return launch<2>(Div{}, op, l, in, out, n, s, "div");
    case Elementwise::exp_backward: return launch<2>(ExpBackward{}, op, l, in, out, n, s, "exp_backward");
    case Elementwise::tanh_backward: return launch<2>(TanhBackward{}, op, l, in, out, n, s, "tanh_backward");
    case Elementwise::sigmoid_backward: return launch<2>(SigmoidBackward{}, op, l, in, out, n, s, "sigmoid_backward");
    case Elementwise::log_backward: return launch<2>(LogBackward{}, op, l, in, out, n, s, "log_backward");
    case Elementwise::relu_backward: return launch<2>(ReluBackward{}, op, l, in, out, n, s, "relu_backward");
    case Elementwise::div_backward_b: return launch<3>(DivBackwardB{}, op, l, in, out, n, s, "div_backward_b");
  }
  throw std::logic_error("elementwise: unknown op");
}

template void launch_elementwise<float>(Elementwise, const BroadcastLayout&, const float* const*, float*, int64_t, cudaStream_t);
template void launch_elementwise<double>(Elementwise, const BroadcastLayout&, const double* const*, double*, int64_t,
                                  cudaStream_t);

}  // namespace rb::cuda
