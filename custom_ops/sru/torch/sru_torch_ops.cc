// PyTorch custom operators of the fused SRU recurrence (Lei et al. 2017,
// arXiv 1709.02755, eqs. (1)-(4)): their schemas and CPU kernels.
//
//   keras_ndsru::sru_forward(u, x_highway, weight_c, bias, c0, lengths,
//                            alpha, direction) -> (h, c_seq, h_last, c_last)
//   keras_ndsru::sru_backward(u, x_highway, weight_c, bias, c0, lengths,
//                             c_seq, grad_h, grad_h_last, grad_c_last,
//                             alpha, direction)
//       -> (grad_u, grad_x_highway, grad_weight_c, grad_bias, grad_c0)
//
// Shapes and dtypes: sru_torch_common.h. The CPU kernels run the
// framework-free recurrence of ../kernels/sru_cpu.h (the TensorFlow CPU
// kernel's) on ATen's intra-op thread pool, for float32 and float64 (the
// Python wrapper casts float16/bfloat16 to float32 around a CPU call: same
// values, vectorized). The CUDA kernels are in sru_torch_cuda.cc. Autograd
// (the backward operator as the forward's gradient) and the fake kernels for
// torch.compile are registered in Python: keras_ndsru/ops/sru_fused_torch.py.
#include <cstdint>
#include <string>

#include "../kernels/sru_cpu.h"
#include "sru_torch_common.h"

namespace keras_ndsru {
namespace sru {
namespace torch_ops {
namespace {

// ATen's intra-op thread pool as the parallel_for of sru_cpu.h.
struct AtenParallelFor {
  template <typename Shard>
  void operator()(int64_t total, int64_t cost, const Shard& shard) const {
    // at::parallel_for splits into chunks of at least grain_size items;
    // ATen's grain for cheap elementwise work is 32768 elements.
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, cost));
    ::torch::stable::parallel_for(0, total, grain, shard);
  }
};

void CheckLengths(const Dims& n, const Tensor& lengths) {
  const int32_t* len = static_cast<const int32_t*>(lengths.const_data_ptr());
  for (int64_t b = 0; b < n.batch; ++b) {
    STD_TORCH_CHECK(len[b] >= 0 && len[b] <= n.steps,
                    "keras_ndsru::sru: `lengths` must lie in [0, time] = [0, ",
                    n.steps, "]. Received: lengths[", b, "]=", len[b]);
  }
}

void CheckCpuDtype(const Tensor& u) {
  STD_TORCH_CHECK(u.scalar_type() == ScalarType::Float ||
                      u.scalar_type() == ScalarType::Double,
                  "keras_ndsru::sru: the CPU kernels take float32 or float64 "
                  "(cast float16/bfloat16 to float32 around them). Received: "
                  "u.dtype=",
                  ::torch::headeronly::toString(u.scalar_type()));
}

template <typename T>
ForwardOutputs ForwardCpu(const Dims& n, const Tensor& u, const Tensor& x,
                          const Tensor& weight_c, const Tensor& bias,
                          const Tensor& c0, const Tensor& lengths,
                          double alpha) {
  ForwardArgs<T, T> a;
  ForwardOutputs out =
      PrepareForward<T, T>(n, u, x, weight_c, bias, c0, lengths, alpha, &a);
  cpu::sru_forward(n, a, ::torch::stable::get_num_threads(), AtenParallelFor{});
  return out;
}

ForwardOutputs SruForwardCpu(Tensor u, Tensor x_highway, Tensor weight_c,
                             Tensor bias, Tensor c0, Tensor lengths,
                             double alpha, std::string direction) {
  const Dims n =
      CheckInputs(u, x_highway, weight_c, bias, c0, lengths, direction);
  CheckCpuDtype(u);
  CheckLengths(n, lengths);
  if (u.scalar_type() == ScalarType::Double) {
    return ForwardCpu<double>(n, u, x_highway, weight_c, bias, c0, lengths,
                              alpha);
  }
  return ForwardCpu<float>(n, u, x_highway, weight_c, bias, c0, lengths, alpha);
}

template <typename T>
BackwardOutputs BackwardCpu(const Dims& n, const Tensor& u, const Tensor& x,
                            const Tensor& weight_c, const Tensor& bias,
                            const Tensor& c0, const Tensor& lengths,
                            const Tensor& c_seq, const Tensor& grad_h,
                            const Tensor& grad_h_last,
                            const Tensor& grad_c_last, double alpha) {
  BackwardArgs<T, T> a;
  Tensor partials;
  BackwardOutputs out = PrepareBackward<T, T>(
      n, u, x, weight_c, bias, c0, lengths, c_seq, grad_h, grad_h_last,
      grad_c_last, alpha, &partials, &a);
  cpu::sru_backward(n, a, ::torch::stable::get_num_threads(),
                    AtenParallelFor{},
                    static_cast<T*>(std::get<2>(out).mutable_data_ptr()),
                    static_cast<T*>(std::get<3>(out).mutable_data_ptr()));
  return out;
}

BackwardOutputs SruBackwardCpu(Tensor u, Tensor x_highway, Tensor weight_c,
                               Tensor bias, Tensor c0, Tensor lengths,
                               Tensor c_seq, Tensor grad_h, Tensor grad_h_last,
                               Tensor grad_c_last, double alpha,
                               std::string direction) {
  const Dims n = CheckInputs(u, x_highway, weight_c, bias, c0, lengths,
                             direction,
                             {&c_seq, &grad_h, &grad_h_last, &grad_c_last});
  CheckCpuDtype(u);
  CheckLengths(n, lengths);
  if (u.scalar_type() == ScalarType::Double) {
    return BackwardCpu<double>(n, u, x_highway, weight_c, bias, c0, lengths,
                               c_seq, grad_h, grad_h_last, grad_c_last, alpha);
  }
  return BackwardCpu<float>(n, u, x_highway, weight_c, bias, c0, lengths,
                            c_seq, grad_h, grad_h_last, grad_c_last, alpha);
}

}  // namespace
}  // namespace torch_ops
}  // namespace sru
}  // namespace keras_ndsru

STABLE_TORCH_LIBRARY(keras_ndsru, m) {
  m.def(
      "sru_forward(Tensor u, Tensor x_highway, Tensor weight_c, Tensor bias, "
      "Tensor c0, Tensor lengths, float alpha, str direction) -> (Tensor h, "
      "Tensor c_seq, Tensor h_last, Tensor c_last)");
  m.def(
      "sru_backward(Tensor u, Tensor x_highway, Tensor weight_c, Tensor bias, "
      "Tensor c0, Tensor lengths, Tensor c_seq, Tensor grad_h, "
      "Tensor grad_h_last, Tensor grad_c_last, float alpha, str direction) "
      "-> (Tensor grad_u, Tensor grad_x_highway, Tensor grad_weight_c, "
      "Tensor grad_bias, Tensor grad_c0)");
}

STABLE_TORCH_LIBRARY_IMPL(keras_ndsru, CPU, m) {
  m.impl("sru_forward",
         TORCH_BOX(&keras_ndsru::sru::torch_ops::SruForwardCpu));
  m.impl("sru_backward",
         TORCH_BOX(&keras_ndsru::sru::torch_ops::SruBackwardCpu));
}
