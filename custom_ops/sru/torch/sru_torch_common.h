// Schema checks and output allocation shared by the CPU and CUDA kernels of
// the PyTorch custom operators keras_ndsru::sru_forward / sru_backward
// (sru_torch_ops.cc, sru_torch_cuda.cc). Built on PyTorch's stable C++ ABI
// (torch/csrc/stable), so the library links against no C++ symbol of
// libtorch that changes between releases.
//
// Shapes are those of the TensorFlow op (../ops/sru_ops.cc; n_dir = 2 for
// "bidirectional", else 1; d = units):
//   u          [B, L, n_dir * 3 * d]   per direction: W x | W_f x | W_r x
//   x_highway  [B, L, n_dir * d]
//   weight_c   [n_dir * 2 * d]         per direction: v_f | v_r
//   bias       [n_dir * 2 * d]         per direction: b_f | b_r
//   c0         [B, n_dir * d]
//   lengths    [B] int32, right padding: steps t >= lengths[b] are invalid
//   h, c_seq   [B, L, n_dir * d];  h_last, c_last [B, n_dir * d]
// u, x_highway, h, h_last are of the storage type T (float32, float64, and on
// CUDA float16/bfloat16); weight_c, bias, c0, c_seq, c_last of the state type
// S (float64 when T is, else float32). Every tensor must be contiguous and
// on u's device (the Python wrapper, keras_ndsru/ops/sru_fused_torch.py,
// makes them so).
#ifndef KERAS_NDSRU_SRU_TORCH_COMMON_H_
#define KERAS_NDSRU_SRU_TORCH_COMMON_H_

#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>
#include <torch/headeronly/util/Exception.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "../kernels/sru_functor.h"

namespace keras_ndsru {
namespace sru {
namespace torch_ops {

using ::torch::headeronly::ScalarType;
using ::torch::stable::Tensor;

using ForwardOutputs = std::tuple<Tensor, Tensor, Tensor, Tensor>;
using BackwardOutputs = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor>;

inline std::string ShapeString(const Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) {
    s += (i ? ", " : "") + std::to_string(t.sizes()[i]);
  }
  return s + "]";
}

inline void CheckTensor(const Tensor& t, const char* name, const char* expected,
                        std::vector<int64_t> want, ScalarType dtype,
                        const Tensor& u) {
  bool ok = t.dim() == static_cast<int64_t>(want.size());
  for (size_t i = 0; ok && i < want.size(); ++i) ok = t.sizes()[i] == want[i];
  if (!ok) {
    std::string want_str = "[";
    for (size_t i = 0; i < want.size(); ++i) {
      want_str += (i ? ", " : "") + std::to_string(want[i]);
    }
    STD_TORCH_CHECK(false, "keras_ndsru::sru: `", name, "` must have shape ",
                    expected, " = ", want_str, "]. Received: ", name,
                    ".shape=", ShapeString(t));
  }
  STD_TORCH_CHECK(t.scalar_type() == dtype, "keras_ndsru::sru: `", name,
                  "` has the wrong dtype for u's. Received: ", name,
                  ".dtype=", ::torch::headeronly::toString(t.scalar_type()));
  STD_TORCH_CHECK(t.is_contiguous(), "keras_ndsru::sru: `", name,
                  "` must be contiguous. Received: ", name,
                  ".is_contiguous()=False");
  STD_TORCH_CHECK(t.is_cuda() == u.is_cuda() &&
                      t.get_device_index() == u.get_device_index(),
                  "keras_ndsru::sru: `", name,
                  "` must be on the device of `u`. Received: ", name,
                  ".device index=", t.get_device_index());
}

// The state dtype S for storage dtype T.
inline ScalarType StateType(ScalarType t) {
  return t == ScalarType::Double ? ScalarType::Double : ScalarType::Float;
}

// Validates the inputs of both operators (the backward one also passes
// c_seq and the output gradients) and returns the problem's dimensions.
inline Dims CheckInputs(const Tensor& u, const Tensor& x_highway,
                        const Tensor& weight_c, const Tensor& bias,
                        const Tensor& c0, const Tensor& lengths,
                        const std::string& direction,
                        const std::vector<const Tensor*>& backward = {}) {
  Dims n;
  STD_TORCH_CHECK(parse_direction(direction, &n.dirs, &n.reverse_mask),
                  "keras_ndsru::sru: direction must be 'forward', "
                  "'backward' or 'bidirectional'. Received: direction=",
                  direction);
  STD_TORCH_CHECK(u.dim() == 3,
                  "keras_ndsru::sru: `u` must have rank 3 [batch, time, "
                  "n_dir * 3 * units]. Received: u.shape=",
                  ShapeString(u));
  STD_TORCH_CHECK(u.sizes()[2] % (3 * n.dirs) == 0,
                  "keras_ndsru::sru: the last dimension of `u` must be a "
                  "multiple of n_dir * 3 = ",
                  3 * n.dirs, ". Received: u.shape=", ShapeString(u));
  const ScalarType t = u.scalar_type();
  STD_TORCH_CHECK(t == ScalarType::Float || t == ScalarType::Double ||
                      t == ScalarType::Half || t == ScalarType::BFloat16,
                  "keras_ndsru::sru: `u` must be float16, bfloat16, float32 "
                  "or float64. Received: u.dtype=",
                  ::torch::headeronly::toString(t));
  n.batch = u.sizes()[0];
  n.steps = u.sizes()[1];
  n.units = u.sizes()[2] / (3 * n.dirs);
  const int64_t width = n.dirs * n.units;
  const ScalarType s = StateType(t);
  CheckTensor(u, "u", "[batch, time, n_dir * 3 * units]",
              {n.batch, n.steps, 3 * width}, t, u);
  CheckTensor(x_highway, "x_highway", "[batch, time, n_dir * units]",
              {n.batch, n.steps, width}, t, u);
  CheckTensor(weight_c, "weight_c", "[n_dir * 2 * units]", {2 * width}, s, u);
  CheckTensor(bias, "bias", "[n_dir * 2 * units]", {2 * width}, s, u);
  CheckTensor(c0, "c0", "[batch, n_dir * units]", {n.batch, width}, s, u);
  CheckTensor(lengths, "lengths", "[batch]", {n.batch}, ScalarType::Int, u);
  if (!backward.empty()) {
    CheckTensor(*backward[0], "c_seq", "[batch, time, n_dir * units]",
                {n.batch, n.steps, width}, s, u);
    CheckTensor(*backward[1], "grad_h", "[batch, time, n_dir * units]",
                {n.batch, n.steps, width}, t, u);
    CheckTensor(*backward[2], "grad_h_last", "[batch, n_dir * units]",
                {n.batch, width}, t, u);
    CheckTensor(*backward[3], "grad_c_last", "[batch, n_dir * units]",
                {n.batch, width}, s, u);
  }
  return n;
}

// Points `a` (ForwardArgs<D, S> or BackwardArgs<D, S>) at the inputs both
// operators take. D is the kernels' storage type of u's dtype (same bits), S
// the state type.
template <typename D, typename S, typename Args>
void PointAtInputs(const Tensor& u, const Tensor& x_highway,
                   const Tensor& weight_c, const Tensor& bias, const Tensor& c0,
                   const Tensor& lengths, double alpha, Args* a) {
  a->u = static_cast<const D*>(u.const_data_ptr());
  a->x_highway = static_cast<const D*>(x_highway.const_data_ptr());
  a->weight_c = static_cast<const S*>(weight_c.const_data_ptr());
  a->bias = static_cast<const S*>(bias.const_data_ptr());
  a->c0 = static_cast<const S*>(c0.const_data_ptr());
  a->lengths = static_cast<const int32_t*>(lengths.const_data_ptr());
  a->alpha = static_cast<S>(alpha);
}

// Allocates h, c_seq, h_last, c_last and points `a` at inputs and outputs.
template <typename D, typename S>
ForwardOutputs PrepareForward(const Dims& n, const Tensor& u,
                              const Tensor& x_highway, const Tensor& weight_c,
                              const Tensor& bias, const Tensor& c0,
                              const Tensor& lengths, double alpha,
                              ForwardArgs<D, S>* a) {
  const int64_t width = n.dirs * n.units;
  const ScalarType s = StateType(u.scalar_type());
  Tensor h = ::torch::stable::new_empty(u, {n.batch, n.steps, width});
  Tensor c_seq = ::torch::stable::new_empty(u, {n.batch, n.steps, width}, s);
  Tensor h_last = ::torch::stable::new_empty(u, {n.batch, width});
  Tensor c_last = ::torch::stable::new_empty(u, {n.batch, width}, s);
  PointAtInputs<D, S>(u, x_highway, weight_c, bias, c0, lengths, alpha, a);
  a->h = static_cast<D*>(h.mutable_data_ptr());
  a->c_seq = static_cast<S*>(c_seq.mutable_data_ptr());
  a->h_last = static_cast<D*>(h_last.mutable_data_ptr());
  a->c_last = static_cast<S*>(c_last.mutable_data_ptr());
  return {h, c_seq, h_last, c_last};
}

// Allocates the gradients of u, x_highway, weight_c, bias, c0 and the
// per-batch partials of the weight_c / bias gradients (`partials`, one
// [2, B, n_dir * 2 * d] tensor kept alive by the caller until the kernels are
// done), and points `a` at them.
template <typename D, typename S>
BackwardOutputs PrepareBackward(
    const Dims& n, const Tensor& u, const Tensor& x_highway,
    const Tensor& weight_c, const Tensor& bias, const Tensor& c0,
    const Tensor& lengths, const Tensor& c_seq, const Tensor& grad_h,
    const Tensor& grad_h_last, const Tensor& grad_c_last, double alpha,
    Tensor* partials, BackwardArgs<D, S>* a) {
  const int64_t width = n.dirs * n.units;
  const ScalarType s = StateType(u.scalar_type());
  Tensor grad_u = ::torch::stable::new_empty(u, {n.batch, n.steps, 3 * width});
  Tensor grad_x = ::torch::stable::new_empty(u, {n.batch, n.steps, width});
  Tensor grad_weight_c = ::torch::stable::new_empty(u, {2 * width}, s);
  Tensor grad_bias = ::torch::stable::new_empty(u, {2 * width}, s);
  Tensor grad_c0 = ::torch::stable::new_empty(u, {n.batch, width}, s);
  *partials = ::torch::stable::new_empty(u, {2, n.batch, 2 * width}, s);
  PointAtInputs<D, S>(u, x_highway, weight_c, bias, c0, lengths, alpha, a);
  a->c_seq = static_cast<const S*>(c_seq.const_data_ptr());
  a->grad_h = static_cast<const D*>(grad_h.const_data_ptr());
  a->grad_h_last = static_cast<const D*>(grad_h_last.const_data_ptr());
  a->grad_c_last = static_cast<const S*>(grad_c_last.const_data_ptr());
  a->grad_u = static_cast<D*>(grad_u.mutable_data_ptr());
  a->grad_x_highway = static_cast<D*>(grad_x.mutable_data_ptr());
  a->grad_c0 = static_cast<S*>(grad_c0.mutable_data_ptr());
  a->grad_weight_c_partial = static_cast<S*>(partials->mutable_data_ptr());
  a->grad_bias_partial = a->grad_weight_c_partial + n.batch * 2 * width;
  return {grad_u, grad_x, grad_weight_c, grad_bias, grad_c0};
}

}  // namespace torch_ops
}  // namespace sru
}  // namespace keras_ndsru

#endif  // KERAS_NDSRU_SRU_TORCH_COMMON_H_
