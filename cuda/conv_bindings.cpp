// Python bindings of the convolution and pooling ops: the names, arguments and result tuples of
// rosenblatt._C's (csrc/conv/bind_conv.cpp, csrc/pool/bind_pool.cpp), DeviceArrays for arrays.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "conv_kernels.h"
#include "conv_ops.h"

namespace py = pybind11;
using rb::cuda::DeviceArray;

namespace {

py::tuple pool_tuple(const rb::cuda::PoolResult& r) {
  return py::make_tuple(r.first, r.second ? py::cast(*r.second) : py::none());
}

// The implicit-GEMM kernels run on the host (tests without a GPU). dims: the 16 ints of ConvDims
// (N, C, H, W, O, kH, kW, OH, OW, sH, sW, pH, pW, dH, dW, groups); in0, in1 as for
// conv2d_igemm_simulated_on_host. The result starts as NaN, so an element never written shows.
template <typename T>
py::array simulate(rb::cuda::ConvPass pass, const py::array& in0_obj, const py::array& in1_obj,
                   const py::object& bias_obj, const rb::cuda::ConvDims& d, int splits, bool direct, int rows_per_tile) {
  using Array = py::array_t<T, py::array::c_style | py::array::forcecast>;
  const Array in0 = Array::ensure(in0_obj), in1 = Array::ensure(in1_obj);
  Array bias;
  if (!bias_obj.is_none()) bias = Array::ensure(bias_obj);
  const int64_t cg = d.C / d.groups, x_size = int64_t(d.N) * d.C * d.H * d.W;
  const int64_t w_size = int64_t(d.O) * cg * d.kH * d.kW, y_size = int64_t(d.N) * d.O * d.OH * d.OW;
  std::vector<py::ssize_t> out_shape;
  int64_t sizes[3] = {0, 0, 0};  // in0, in1, bias
  switch (pass) {
    case rb::cuda::ConvPass::forward:
      out_shape = {d.N, d.O, d.OH, d.OW};
      sizes[0] = x_size, sizes[1] = w_size, sizes[2] = d.O;
      break;
    case rb::cuda::ConvPass::backward_data:
      out_shape = {d.N, d.C, d.H, d.W};
      sizes[0] = y_size, sizes[1] = w_size, sizes[2] = d.C;
      break;
    case rb::cuda::ConvPass::backward_weight:
      out_shape = {d.O, cg, d.kH, d.kW};
      sizes[0] = x_size, sizes[1] = y_size, sizes[2] = 0;
      break;
  }
  if (in0.size() != sizes[0] || in1.size() != sizes[1] || (!bias_obj.is_none() && bias.size() != sizes[2]))
    throw py::value_error("_conv2d_host_simulation: array sizes do not match the geometry");
  py::array_t<T> out(out_shape);
  std::fill(out.mutable_data(), out.mutable_data() + out.size(), std::numeric_limits<T>::quiet_NaN());
  const T* b = bias_obj.is_none() ? nullptr : bias.data();
  if (direct)
    rb::cuda::conv2d_depthwise_simulated_on_host<T>(pass, d, in0.data(), in1.data(), b, out.mutable_data());
  else
    rb::cuda::conv2d_igemm_simulated_on_host<T>(pass, d, in0.data(), in1.data(), b, out.mutable_data(), splits,
                                                rows_per_tile);
  return out;
}

template <typename T>
py::tuple simulate_pool(rb::cuda::PoolPass pass, const py::array& in_obj, const rb::cuda::PoolDims& g,
                        bool count_include_pad, int64_t divisor_override) {
  using Array = py::array_t<T, py::array::c_style | py::array::forcecast>;
  const Array in = Array::ensure(in_obj);
  const bool backward = pass == rb::cuda::PoolPass::avg_backward || pass == rb::cuda::PoolPass::adaptive_avg_backward;
  const std::vector<py::ssize_t> in_shape{g.planes, g.H, g.W}, out_shape{g.planes, g.OH, g.OW};
  const int64_t expected = backward ? g.planes * g.OH * g.OW : g.planes * g.H * g.W;
  if (in.size() != expected) throw py::value_error("_pool_host_simulation: input size does not match the geometry");
  py::array_t<T> out(backward ? in_shape : out_shape);
  std::fill(out.mutable_data(), out.mutable_data() + out.size(), std::numeric_limits<T>::quiet_NaN());
  py::array_t<int64_t> idx(out_shape);
  std::fill(idx.mutable_data(), idx.mutable_data() + idx.size(), int64_t(-2));
  rb::cuda::pool_simulated_on_host<T>(pass, g, count_include_pad, divisor_override, in.data(), out.mutable_data(),
                                      idx.mutable_data());
  return py::make_tuple(out, idx);
}

template <typename T>
py::tuple simulate_roi_pool(const py::array& x_obj, const py::array& rois_obj, int64_t PH, int64_t PW, double scale,
                            bool return_indices) {
  using Array = py::array_t<T, py::array::c_style | py::array::forcecast>;
  const Array x = Array::ensure(x_obj), rois = Array::ensure(rois_obj);
  if (x.ndim() != 4 || rois.ndim() != 2 || rois.shape(1) != 5 || PH < 1 || PW < 1 || !(scale > 0))
    throw py::value_error("_roi_pool_host_simulation: bad shapes");
  const int64_t N = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3), K = rois.shape(0);
  for (int64_t k = 0; k < K; ++k) {
    for (int j = 0; j < 5; ++j)
      if (!std::isfinite(double(rois.at(k, j))) || std::fabs(double(rois.at(k, j))) > 1e15)
        throw py::value_error("_roi_pool_host_simulation: non-finite box");
    const double b = double(rois.at(k, 0));
    if (b != std::floor(b) || b < 0 || b >= double(N)) throw py::value_error("_roi_pool_host_simulation: batch index");
  }
  py::array_t<T> y({K, C, PH, PW});
  if (!return_indices) {
    rb::cuda::roi_pool_simulated_on_host<T>(C, H, W, x.data(), K, rois.data(), PH, PW, scale, y.mutable_data(), nullptr);
    return py::make_tuple(y, py::none());
  }
  py::array_t<int64_t> argmax({K, C, PH, PW});
  rb::cuda::roi_pool_simulated_on_host<T>(C, H, W, x.data(), K, rois.data(), PH, PW, scale, y.mutable_data(),
                                          argmax.mutable_data());
  return py::make_tuple(y, argmax);
}

}  // namespace

void register_conv(py::module_& m) {
  using namespace rb::cuda;
  using rb::UpsampleDims;
  // ---- convolution ----
  m.def("conv2d_forward", &conv2d_forward, py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        "conv2d on NCHW arrays: weight (O, C/groups, kH, kW), bias (O,) or None. Implicit GEMM.");
  m.def("conv2d_backward_data", &conv2d_backward_data, py::arg("grad_output"), py::arg("weight"),
        py::arg("input_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        "Gradient of conv2d with respect to its input of spatial size input_size.");
  m.def("conv2d_backward_weight", &conv2d_backward_weight, py::arg("input"), py::arg("grad_output"),
        py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        "Gradient of conv2d with respect to its weight.");
  m.def("conv2d_backward_bias", &conv2d_backward_bias, py::arg("grad_output"),
        "Gradient of conv2d with respect to its bias: grad_output summed over N, H, W.");
  m.def("conv_transpose2d_forward", &conv_transpose2d_forward, py::arg("input"), py::arg("weight"), py::arg("bias"),
        py::arg("stride"), py::arg("padding"), py::arg("output_padding"), py::arg("dilation"), py::arg("groups"),
        "Transposed convolution: weight (C_in, C_out/groups, kH, kW); conv2d's backward-data kernel.");

  m.def("conv_last_impl", &conv_last_impl, py::arg("op"),
        "The kernel the last call of op ('conv2d', 'conv2d_backward_data', 'conv2d_backward_weight', "
        "'conv_transpose2d') ran: 'implicit_gemm' or 'depthwise_direct' (ROSENBLATT_CUDA_CONV=igemm forces the first).");
  m.def("im2col", &im2col, py::arg("input"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), "unfold: (N, C, H, W) -> (N, C*kH*kW, OH*OW).");
  m.def("col2im", &col2im, py::arg("input"), py::arg("output_size"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), "fold: (N, C*kH*kW, L) -> (N, C, H, W), overlapping blocks summed.");

  // ---- pooling ----
  m.def("max_pool2d_forward",
        [](const DeviceArray& x, const Pair& kernel, const Pair& stride, const Pair& padding, const Pair& dilation,
           bool ceil_mode, bool return_indices) {
          return pool_tuple(max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode, return_indices));
        },
        py::arg("input"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("ceil_mode"), py::arg("return_indices"),
        "(output, indices or None): max pooling of NCHW input; indices are flat per plane (ih * W + iw).");
  m.def("max_pool2d_backward", &max_pool2d_backward, py::arg("grad_output"), py::arg("indices"),
        py::arg("input_size"),
        "Scatter grad_output to the argmax positions (max and adaptive max pooling); indices outside the plane are skipped.");
  m.def("avg_pool2d_forward", &avg_pool2d_forward, py::arg("input"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"));
  m.def("avg_pool2d_backward", &avg_pool2d_backward, py::arg("grad_output"), py::arg("input_size"),
        py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("ceil_mode"),
        py::arg("count_include_pad"), py::arg("divisor_override"));
  m.def("adaptive_max_pool2d_forward",
        [](const DeviceArray& x, const Pair& output_size, bool return_indices) {
          return pool_tuple(adaptive_max_pool2d_forward(x, output_size, return_indices));
        },
        py::arg("input"), py::arg("output_size"), py::arg("return_indices"));
  m.def("adaptive_avg_pool2d_forward", &adaptive_avg_pool2d_forward, py::arg("input"), py::arg("output_size"));
  m.def("adaptive_avg_pool2d_backward", &adaptive_avg_pool2d_backward, py::arg("grad_output"), py::arg("input_size"));
  m.def("roi_pool_forward",
        [](const DeviceArray& x, const DeviceArray& boxes, const Pair& output_size, double spatial_scale,
           bool return_indices) {
          return pool_tuple(roi_pool_forward(x, boxes, output_size, spatial_scale, return_indices));
        },
        py::arg("input"), py::arg("boxes"), py::arg("output_size"), py::arg("spatial_scale"),
        py::arg("return_indices") = true,
        "(output, argmax or None): torchvision.ops.roi_pool on NCHW input, boxes (K, 5); argmax (the flat "
        "per-plane index of each bin's maximum, -1 for none) only with return_indices.");
  m.def("roi_pool_backward", &roi_pool_backward, py::arg("grad_output"), py::arg("boxes"), py::arg("argmax"),
        py::arg("input_shape"));

  // ---- up-sampling (F.interpolate, modes nearest and bilinear) ----
  m.def("upsample2d_forward", &upsample2d_forward, py::arg("input"), py::arg("output_size"), py::arg("scales"),
        py::arg("mode"), py::arg("align_corners"),
        "F.interpolate of NCHW input to output_size; scales = torch's input / output ratio per axis "
        "(1 / scale_factor when a factor was given); mode 'nearest' or 'bilinear'.");
  m.def("upsample2d_backward", &upsample2d_backward, py::arg("grad_output"), py::arg("input_size"),
        py::arg("scales"), py::arg("mode"), py::arg("align_corners"), "Gradient of upsample2d_forward.");
  m.def("_upsample_host_simulation",
        [](const py::array& x_obj, const py::array& dy_obj, const Pair& output_size, const std::vector<double>& scales,
           bool bilinear, bool align_corners) -> py::tuple {
          using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;
          const Array x = Array::ensure(x_obj), dy = Array::ensure(dy_obj);
          if (x.ndim() != 4 || output_size.size() != 2 || output_size[0] < 1 || output_size[1] < 1 ||
              scales.size() != 2 || dy.ndim() != 4 || dy.shape(0) != x.shape(0) || dy.shape(1) != x.shape(1) ||
              dy.shape(2) != output_size[0] || dy.shape(3) != output_size[1] || x.size() == 0)
            throw py::value_error("_upsample_host_simulation: bad shapes");
          const UpsampleDims g{x.shape(0) * x.shape(1), x.shape(2), x.shape(3), output_size[0], output_size[1],
                               scales[0], scales[1], bilinear, align_corners};
          py::array_t<double> y(std::vector<py::ssize_t>(dy.shape(), dy.shape() + 4));
          py::array_t<double> dx(std::vector<py::ssize_t>(x.shape(), x.shape() + 4));
          upsample2d_simulated_on_host<double>(g, x.data(), y.mutable_data(), dy.data(), dx.mutable_data());
          return py::make_tuple(y, dx);
        },
        py::arg("input"), py::arg("grad_output"), py::arg("output_size"), py::arg("scales"), py::arg("bilinear"),
        py::arg("align_corners"));

  // im2col and col2im on the host: (cols of x, x folded from cols_in) for the geometry of x and dims.
  m.def("_unfold_host_simulation",
        [](const py::array& x_obj, const py::array& cols_obj, const std::vector<int>& dims) -> py::tuple {
          using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;
          const Array x = Array::ensure(x_obj), cols_in = Array::ensure(cols_obj);
          if (dims.size() != 16) throw py::value_error("_unfold_host_simulation: dims must have 16 entries");
          const ConvDims d{dims[0], dims[1], dims[2],  dims[3],  dims[4],  dims[5],  dims[6],  dims[7],
                           dims[8], dims[9], dims[10], dims[11], dims[12], dims[13], dims[14], dims[15]};
          bool ok = d.N > 0 && d.C > 0 && d.H > 0 && d.W > 0 && d.kH > 0 && d.kW > 0 && d.OH > 0 && d.OW > 0 &&
                    d.sH > 0 && d.sW > 0 && d.pH >= 0 && d.pW >= 0 && d.dH > 0 && d.dW > 0;
          const int64_t x_size = int64_t(d.N) * d.C * d.H * d.W;
          const int64_t cols_size = int64_t(d.N) * d.C * d.kH * d.kW * d.OH * d.OW;
          if (!ok || x.size() != x_size || cols_in.size() != cols_size)
            throw py::value_error("_unfold_host_simulation: sizes do not match the geometry");
          py::array_t<double> cols({int64_t(d.N), int64_t(d.C) * d.kH * d.kW, int64_t(d.OH) * d.OW});
          py::array_t<double> x_out({d.N, d.C, d.H, d.W});
          unfold_simulated_on_host<double>(d, x.data(), cols.mutable_data(), cols_in.data(), x_out.mutable_data());
          return py::make_tuple(cols, x_out);
        },
        py::arg("input"), py::arg("cols"), py::arg("dims"));

  // ---- the implicit-GEMM kernels' code on the host ----
  m.def("_conv2d_host_simulation",
        [](const std::string& pass_name, const py::array& in0, const py::array& in1, const py::object& bias,
           const std::vector<int>& dims, int splits, bool direct, int rows_per_tile) -> py::array {
          const ConvPass pass = pass_name == "forward"           ? ConvPass::forward
                                : pass_name == "backward_data"   ? ConvPass::backward_data
                                : pass_name == "backward_weight" ? ConvPass::backward_weight
                                                                 : throw py::value_error(
                                                                       "_conv2d_host_simulation: pass must be forward, "
                                                                       "backward_data or backward_weight");
          if (dims.size() != 16) throw py::value_error("_conv2d_host_simulation: dims must have 16 entries");
          const ConvDims d{dims[0], dims[1], dims[2],  dims[3],  dims[4],  dims[5],  dims[6],  dims[7],
                           dims[8], dims[9], dims[10], dims[11], dims[12], dims[13], dims[14], dims[15]};
          bool ok = splits >= 1 && splits <= 64 && d.groups >= 1 && d.C % d.groups == 0 && d.O % d.groups == 0;
          for (int v : dims) ok = ok && v >= 0;
          ok = ok && d.N > 0 && d.C > 0 && d.H > 0 && d.W > 0 && d.O > 0 && d.kH > 0 && d.kW > 0 && d.OH > 0 &&
               d.OW > 0 && d.sH > 0 && d.sW > 0 && d.dH > 0 && d.dW > 0;
          ok = ok && (rows_per_tile == 0 || rows_per_tile == 32 || rows_per_tile == 64);
          if (!ok || (direct && !conv2d_is_depthwise(d)))
            throw py::value_error("_conv2d_host_simulation: invalid geometry or splits");
          const bool f64 = in0.dtype().equal(py::dtype::of<double>());
          return f64 ? simulate<double>(pass, in0, in1, bias, d, splits, direct, rows_per_tile)
                     : simulate<float>(pass, in0, in1, bias, d, splits, direct, rows_per_tile);
        },
        py::arg("pass_name"), py::arg("in0"), py::arg("in1"), py::arg("bias"), py::arg("dims"), py::arg("splits") = 1,
        py::arg("direct") = false, py::arg("rows_per_tile") = 0);

  // ---- the pooling kernels' per-element code on the host ----
  // dims: planes, H, W, OH, OW, kH, kW, sH, sW, pH, pW, dH, dW. Returns (out, idx): out starts as
  // NaN and idx as -2, so an element never written shows.
  m.def("_pool_host_simulation",
        [](const std::string& pass_name, const py::array& input, const std::vector<int64_t>& dims,
           bool count_include_pad, int64_t divisor_override) -> py::tuple {
          static const std::pair<const char*, PoolPass> passes[] = {
              {"max", PoolPass::max}, {"adaptive_max", PoolPass::adaptive_max}, {"avg", PoolPass::avg},
              {"avg_backward", PoolPass::avg_backward}, {"adaptive_avg", PoolPass::adaptive_avg},
              {"adaptive_avg_backward", PoolPass::adaptive_avg_backward}};
          const auto* found = std::find_if(std::begin(passes), std::end(passes),
                                           [&](const auto& p) { return pass_name == p.first; });
          if (found == std::end(passes)) throw py::value_error("_pool_host_simulation: unknown pass " + pass_name);
          if (dims.size() != 13) throw py::value_error("_pool_host_simulation: dims must have 13 entries");
          const PoolDims g{dims[0], dims[1], dims[2], dims[3],  dims[4],  dims[5], dims[6],
                           dims[7], dims[8], dims[9], dims[10], dims[11], dims[12]};
          bool ok = g.pH >= 0 && g.pW >= 0;
          for (int64_t v : {g.planes, g.H, g.W, g.OH, g.OW, g.kH, g.kW, g.sH, g.sW, g.dH, g.dW}) ok = ok && v > 0 && v < 100000;
          if (!ok) throw py::value_error("_pool_host_simulation: invalid geometry");
          const bool f64 = input.dtype().equal(py::dtype::of<double>());
          return f64 ? simulate_pool<double>(found->second, input, g, count_include_pad, divisor_override)
                     : simulate_pool<float>(found->second, input, g, count_include_pad, divisor_override);
        },
        py::arg("pass_name"), py::arg("input"), py::arg("dims"), py::arg("count_include_pad") = true,
        py::arg("divisor_override") = 0);
  m.def("_roi_pool_host_simulation",
        [](const py::array& x, const py::array& rois, const Pair& output_size, double scale,
           bool return_indices) -> py::tuple {
          if (output_size.size() != 2) throw py::value_error("_roi_pool_host_simulation: output_size has 2 entries");
          const bool f64 = x.dtype().equal(py::dtype::of<double>());
          return f64 ? simulate_roi_pool<double>(x, rois, output_size[0], output_size[1], scale, return_indices)
                     : simulate_roi_pool<float>(x, rois, output_size[0], output_size[1], scale, return_indices);
        },
        py::arg("input"), py::arg("boxes"), py::arg("output_size"), py::arg("spatial_scale"),
        py::arg("return_indices") = true);
}
