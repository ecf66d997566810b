// Validation and argument setup shared by the CPU and CUDA handlers of the
// XLA FFI targets keras_ndsru_sru_forward / keras_ndsru_sru_backward
// (sru_jax_ffi.cc, sru_jax_ffi_cuda.cc), built on jaxlib's header-only FFI
// API (xla/ffi/api/ffi.h, `jax.ffi.include_dir()`).
//
// Operands and results have the shapes and dtypes of the TensorFlow op
// (../ops/sru_ops.cc; n_dir = 2 for "bidirectional", else 1; d = units):
//   u          [B, L, n_dir * 3 * d]   per direction: W x | W_f x | W_r x
//   x_highway  [B, L, n_dir * d]
//   weight_c   [n_dir * 2 * d]         per direction: v_f | v_r
//   bias       [n_dir * 2 * d]         per direction: b_f | b_r
//   c0         [B, n_dir * d]
//   lengths    [B] int32, right padding: steps t >= lengths[b] are invalid
//   h, c_seq   [B, L, n_dir * d];  h_last, c_last [B, n_dir * d]
// u, x_highway, h, h_last are of the storage type T (f32, f64, and on CUDA
// f16/bf16); weight_c, bias, c0, c_seq, c_last of the state type S (f64 when
// T is, else f32). Attributes: `alpha` (f64) and `direction` (string). The
// Python wrapper (keras_ndsru/ops/sru_fused_jax.py) passes exactly these;
// the checks here turn a mistake into an error instead of a crash.
#ifndef KERAS_NDSRU_SRU_JAX_COMMON_H_
#define KERAS_NDSRU_SRU_JAX_COMMON_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../kernels/sru_functor.h"
#include "xla/ffi/api/ffi.h"

namespace keras_ndsru {
namespace sru {
namespace jax_ffi {

namespace ffi = ::xla::ffi;

inline std::string ShapeString(ffi::AnyBuffer::Dimensions dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(dims[i]);
  }
  return s + "]";
}

inline ffi::Error Invalid(const std::string& message) {
  return ffi::Error::InvalidArgument("keras_ndsru_sru: " + message);
}

inline ffi::Error CheckBuffer(const ffi::AnyBuffer& t, const char* name,
                              const char* expected,
                              std::vector<int64_t> want, ffi::DataType dtype) {
  const auto dims = t.dimensions();
  bool ok = dims.size() == want.size();
  for (size_t i = 0; ok && i < want.size(); ++i) ok = dims[i] == want[i];
  if (!ok) {
    std::string want_str = "[";
    for (size_t i = 0; i < want.size(); ++i) {
      want_str += (i ? ", " : "") + std::to_string(want[i]);
    }
    return Invalid(std::string("`") + name + "` must have shape " + expected +
                   " = " + want_str + "]. Received: " + name +
                   ".shape=" + ShapeString(dims));
  }
  if (t.element_type() != dtype) {
    return Invalid(std::string("`") + name +
                   "` has the wrong dtype for u's. Received: " + name +
                   ".dtype=" +
                   std::to_string(static_cast<int>(t.element_type())));
  }
  return ffi::Error::Success();
}

inline ffi::DataType StateType(ffi::DataType t) {
  return t == ffi::DataType::F64 ? ffi::DataType::F64 : ffi::DataType::F32;
}

#define KERAS_NDSRU_RETURN_IF_ERROR(expr)   \
  do {                                      \
    ffi::Error error_ = (expr);             \
    if (!error_.success()) return error_;   \
  } while (0)

// Validates the operands of both targets (the backward one also passes c_seq
// and the output gradients) and fills the problem's dimensions.
inline ffi::Error CheckOperands(
    const ffi::AnyBuffer& u, const ffi::AnyBuffer& x_highway,
    const ffi::AnyBuffer& weight_c, const ffi::AnyBuffer& bias,
    const ffi::AnyBuffer& c0, const ffi::AnyBuffer& lengths,
    std::string_view direction, Dims* n,
    const std::vector<const ffi::AnyBuffer*>& backward = {}) {
  if (!parse_direction(direction, &n->dirs, &n->reverse_mask)) {
    return Invalid(
        "direction must be 'forward', 'backward' or 'bidirectional'. "
        "Received: direction=" +
        std::string(direction));
  }
  const auto dims = u.dimensions();
  if (dims.size() != 3 || dims[2] % (3 * n->dirs) != 0) {
    return Invalid(
        "`u` must have shape [batch, time, n_dir * 3 * units] with a last "
        "dimension divisible by n_dir * 3 = " +
        std::to_string(3 * n->dirs) + ". Received: u.shape=" +
        ShapeString(dims));
  }
  const ffi::DataType t = u.element_type();
  if (t != ffi::DataType::F32 && t != ffi::DataType::F64 &&
      t != ffi::DataType::F16 && t != ffi::DataType::BF16) {
    return Invalid(
        "`u` must be float16, bfloat16, float32 or float64. Received: "
        "u.dtype=" +
        std::to_string(static_cast<int>(t)));
  }
  n->batch = dims[0];
  n->steps = dims[1];
  n->units = dims[2] / (3 * n->dirs);
  const int64_t width = n->dirs * n->units;
  const ffi::DataType s = StateType(t);
  KERAS_NDSRU_RETURN_IF_ERROR(CheckBuffer(x_highway, "x_highway",
                                          "[batch, time, n_dir * units]",
                                          {n->batch, n->steps, width}, t));
  KERAS_NDSRU_RETURN_IF_ERROR(
      CheckBuffer(weight_c, "weight_c", "[n_dir * 2 * units]", {2 * width}, s));
  KERAS_NDSRU_RETURN_IF_ERROR(
      CheckBuffer(bias, "bias", "[n_dir * 2 * units]", {2 * width}, s));
  KERAS_NDSRU_RETURN_IF_ERROR(CheckBuffer(c0, "c0", "[batch, n_dir * units]",
                                          {n->batch, width}, s));
  KERAS_NDSRU_RETURN_IF_ERROR(CheckBuffer(lengths, "lengths", "[batch]",
                                          {n->batch}, ffi::DataType::S32));
  if (!backward.empty()) {
    KERAS_NDSRU_RETURN_IF_ERROR(CheckBuffer(*backward[0], "c_seq",
                                            "[batch, time, n_dir * units]",
                                            {n->batch, n->steps, width}, s));
    KERAS_NDSRU_RETURN_IF_ERROR(CheckBuffer(*backward[1], "grad_h",
                                            "[batch, time, n_dir * units]",
                                            {n->batch, n->steps, width}, t));
    KERAS_NDSRU_RETURN_IF_ERROR(CheckBuffer(*backward[2], "grad_h_last",
                                            "[batch, n_dir * units]",
                                            {n->batch, width}, t));
    KERAS_NDSRU_RETURN_IF_ERROR(CheckBuffer(*backward[3], "grad_c_last",
                                            "[batch, n_dir * units]",
                                            {n->batch, width}, s));
  }
  return ffi::Error::Success();
}

// Points `a` (ForwardArgs<D, S> or BackwardArgs<D, S>) at the operands both
// targets take. D is the kernels' storage type of u's dtype (same bits), S
// the state type.
template <typename D, typename S, typename Args>
void PointAtInputs(const ffi::AnyBuffer& u, const ffi::AnyBuffer& x_highway,
                   const ffi::AnyBuffer& weight_c, const ffi::AnyBuffer& bias,
                   const ffi::AnyBuffer& c0, const ffi::AnyBuffer& lengths,
                   double alpha, Args* a) {
  a->u = static_cast<const D*>(u.untyped_data());
  a->x_highway = static_cast<const D*>(x_highway.untyped_data());
  a->weight_c = static_cast<const S*>(weight_c.untyped_data());
  a->bias = static_cast<const S*>(bias.untyped_data());
  a->c0 = static_cast<const S*>(c0.untyped_data());
  a->lengths = static_cast<const int32_t*>(lengths.untyped_data());
  a->alpha = static_cast<S>(alpha);
}

// The forward target's arguments of the kernels: operands and results.
template <typename D, typename S>
ForwardArgs<D, S> ForwardPointers(
    const ffi::AnyBuffer& u, const ffi::AnyBuffer& x_highway,
    const ffi::AnyBuffer& weight_c, const ffi::AnyBuffer& bias,
    const ffi::AnyBuffer& c0, const ffi::AnyBuffer& lengths, double alpha,
    ffi::Result<ffi::AnyBuffer>& h, ffi::Result<ffi::AnyBuffer>& c_seq,
    ffi::Result<ffi::AnyBuffer>& h_last, ffi::Result<ffi::AnyBuffer>& c_last) {
  ForwardArgs<D, S> a;
  PointAtInputs<D, S>(u, x_highway, weight_c, bias, c0, lengths, alpha, &a);
  a.h = static_cast<D*>(h->untyped_data());
  a.c_seq = static_cast<S*>(c_seq->untyped_data());
  a.h_last = static_cast<D*>(h_last->untyped_data());
  a.c_last = static_cast<S*>(c_last->untyped_data());
  return a;
}

// The backward target's arguments of the kernels; the per-batch partials of
// the weight_c / bias gradients are the caller's scratch.
template <typename D, typename S>
BackwardArgs<D, S> BackwardPointers(
    const ffi::AnyBuffer& u, const ffi::AnyBuffer& x_highway,
    const ffi::AnyBuffer& weight_c, const ffi::AnyBuffer& bias,
    const ffi::AnyBuffer& c0, const ffi::AnyBuffer& lengths,
    const ffi::AnyBuffer& c_seq, const ffi::AnyBuffer& grad_h,
    const ffi::AnyBuffer& grad_h_last, const ffi::AnyBuffer& grad_c_last,
    double alpha, ffi::Result<ffi::AnyBuffer>& grad_u,
    ffi::Result<ffi::AnyBuffer>& grad_x_highway,
    ffi::Result<ffi::AnyBuffer>& grad_c0, S* weight_c_partial,
    S* bias_partial) {
  BackwardArgs<D, S> a;
  PointAtInputs<D, S>(u, x_highway, weight_c, bias, c0, lengths, alpha, &a);
  a.c_seq = static_cast<const S*>(c_seq.untyped_data());
  a.grad_h = static_cast<const D*>(grad_h.untyped_data());
  a.grad_h_last = static_cast<const D*>(grad_h_last.untyped_data());
  a.grad_c_last = static_cast<const S*>(grad_c_last.untyped_data());
  a.grad_u = static_cast<D*>(grad_u->untyped_data());
  a.grad_x_highway = static_cast<D*>(grad_x_highway->untyped_data());
  a.grad_c0 = static_cast<S*>(grad_c0->untyped_data());
  a.grad_weight_c_partial = weight_c_partial;
  a.grad_bias_partial = bias_partial;
  return a;
}

// The operands, results and attributes of the forward target, bound after
// the context its handler needs (a thread pool, a stream).
template <typename Binding>
auto ForwardSignature(Binding binding) {
  return std::move(binding).template Arg<ffi::AnyBuffer>()  // u
      .template Arg<ffi::AnyBuffer>()            // x_highway
      .template Arg<ffi::AnyBuffer>()            // weight_c
      .template Arg<ffi::AnyBuffer>()            // bias
      .template Arg<ffi::AnyBuffer>()            // c0
      .template Arg<ffi::AnyBuffer>()            // lengths
      .template Ret<ffi::AnyBuffer>()            // h
      .template Ret<ffi::AnyBuffer>()            // c_seq
      .template Ret<ffi::AnyBuffer>()            // h_last
      .template Ret<ffi::AnyBuffer>()            // c_last
      .template Attr<double>("alpha")
      .template Attr<std::string_view>("direction");
}

// The same for the backward target.
template <typename Binding>
auto BackwardSignature(Binding binding) {
  return std::move(binding).template Arg<ffi::AnyBuffer>()  // u
      .template Arg<ffi::AnyBuffer>()            // x_highway
      .template Arg<ffi::AnyBuffer>()            // weight_c
      .template Arg<ffi::AnyBuffer>()            // bias
      .template Arg<ffi::AnyBuffer>()            // c0
      .template Arg<ffi::AnyBuffer>()            // lengths
      .template Arg<ffi::AnyBuffer>()            // c_seq
      .template Arg<ffi::AnyBuffer>()            // grad_h
      .template Arg<ffi::AnyBuffer>()            // grad_h_last
      .template Arg<ffi::AnyBuffer>()            // grad_c_last
      .template Ret<ffi::AnyBuffer>()            // grad_u
      .template Ret<ffi::AnyBuffer>()            // grad_x_highway
      .template Ret<ffi::AnyBuffer>()            // grad_weight_c
      .template Ret<ffi::AnyBuffer>()            // grad_bias
      .template Ret<ffi::AnyBuffer>()            // grad_c0
      .template Attr<double>("alpha")
      .template Attr<std::string_view>("direction");
}

}  // namespace jax_ffi
}  // namespace sru
}  // namespace keras_ndsru

#endif  // KERAS_NDSRU_SRU_JAX_COMMON_H_
