// Attribute parsing and input validation shared by the CPU and GPU OpKernels
// of KerasNdsru>SruForward / SruBackward (see ../ops/sru_ops.cc for shapes).
#ifndef KERAS_NDSRU_SRU_OP_COMMON_H_
#define KERAS_NDSRU_SRU_OP_COMMON_H_

#include <cstdint>
#include <string>

#include "sru_functor.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"

namespace keras_ndsru {
namespace sru {

// Reads the `direction` and `alpha` attrs.
struct SruAttrs {
  int64_t dirs = 1;
  int32_t reverse_mask = 0;
  float alpha = 1.0f;
};

inline ::tensorflow::Status ReadSruAttrs(::tensorflow::OpKernelConstruction* ctx,
                                         SruAttrs* attrs) {
  std::string direction;
  TF_RETURN_IF_ERROR(ctx->GetAttr("direction", &direction));
  TF_RETURN_IF_ERROR(ctx->GetAttr("alpha", &attrs->alpha));
  if (!parse_direction(direction, &attrs->dirs, &attrs->reverse_mask)) {
    return ::tensorflow::errors::InvalidArgument(
        "direction must be 'forward', 'backward' or 'bidirectional'. "
        "Received: direction=",
        direction);
  }
  return ::tensorflow::Status();
}

inline ::tensorflow::Status CheckShape(const ::tensorflow::Tensor& t,
                                       const char* name, const char* expected,
                                       std::initializer_list<int64_t> dims) {
  bool ok = t.dims() == static_cast<int>(dims.size());
  int i = 0;
  for (int64_t want : dims) {
    if (!ok) break;
    ok = t.dim_size(i++) == want;
  }
  if (ok) return ::tensorflow::Status();
  std::string want_str = "[";
  i = 0;
  for (int64_t want : dims) want_str += (i++ ? ", " : "") + std::to_string(want);
  want_str += "]";
  return ::tensorflow::errors::InvalidArgument(
      "SRU op: `", name, "` must have shape ", expected, " = ", want_str,
      ". Received: ", name, ".shape=", t.shape().DebugString());
}

// Validates the inputs shared by both ops (u, x_highway, weight_c, bias, c0,
// lengths) and, for the backward op, c_seq and the output gradients. Fills
// `dims`. Lengths are read on the host, so call it only with host lengths
// (the CPU kernel) or pass check_lengths = false.
inline ::tensorflow::Status ValidateSruInputs(::tensorflow::OpKernelContext* ctx,
                                              const SruAttrs& attrs,
                                              bool backward, bool check_lengths,
                                              Dims* dims) {
  const ::tensorflow::Tensor& u = ctx->input(0);
  if (u.dims() != 3) {
    return ::tensorflow::errors::InvalidArgument(
        "SRU op: `u` must have rank 3 [batch, time, n_dir * 3 * units]. "
        "Received: u.shape=",
        u.shape().DebugString());
  }
  const int64_t dirs = attrs.dirs;
  if (u.dim_size(2) % (3 * dirs) != 0) {
    return ::tensorflow::errors::InvalidArgument(
        "SRU op: the last dimension of `u` must be a multiple of n_dir * 3 = ",
        3 * dirs, ". Received: u.shape=", u.shape().DebugString());
  }
  const int64_t batch = u.dim_size(0), steps = u.dim_size(1);
  const int64_t units = u.dim_size(2) / (3 * dirs);
  const int64_t width = dirs * units;
  TF_RETURN_IF_ERROR(CheckShape(ctx->input(1), "x_highway",
                                "[batch, time, n_dir * units]",
                                {batch, steps, width}));
  TF_RETURN_IF_ERROR(CheckShape(ctx->input(2), "weight_c", "[n_dir * 2 * units]",
                                {2 * width}));
  TF_RETURN_IF_ERROR(
      CheckShape(ctx->input(3), "bias", "[n_dir * 2 * units]", {2 * width}));
  TF_RETURN_IF_ERROR(
      CheckShape(ctx->input(4), "c0", "[batch, n_dir * units]", {batch, width}));
  TF_RETURN_IF_ERROR(CheckShape(ctx->input(5), "lengths", "[batch]", {batch}));
  if (backward) {
    TF_RETURN_IF_ERROR(CheckShape(ctx->input(6), "c_seq",
                                  "[batch, time, n_dir * units]",
                                  {batch, steps, width}));
    TF_RETURN_IF_ERROR(CheckShape(ctx->input(7), "grad_h",
                                  "[batch, time, n_dir * units]",
                                  {batch, steps, width}));
    TF_RETURN_IF_ERROR(CheckShape(ctx->input(8), "grad_h_last",
                                  "[batch, n_dir * units]", {batch, width}));
    TF_RETURN_IF_ERROR(CheckShape(ctx->input(9), "grad_c_last",
                                  "[batch, n_dir * units]", {batch, width}));
  }
  if (check_lengths) {
    auto lengths = ctx->input(5).flat<int32_t>();
    for (int64_t b = 0; b < batch; ++b) {
      if (lengths(b) < 0 || lengths(b) > steps) {
        return ::tensorflow::errors::InvalidArgument(
            "SRU op: `lengths` must lie in [0, time] = [0, ", steps,
            "]. Received: lengths[", b, "]=", lengths(b));
      }
    }
  }
  dims->batch = batch;
  dims->steps = steps;
  dims->dirs = dirs;
  dims->units = units;
  dims->reverse_mask = attrs.reverse_mask;
  return ::tensorflow::Status();
}

// Data of a tensor of TensorFlow element type T as storage type D: D = T for
// the CPU kernels; the GPU launchers take same-size 16-bit storage types.
template <typename D, typename T>
const D* DataAs(const ::tensorflow::Tensor& t) {
  static_assert(sizeof(D) == sizeof(T), "storage type of another size");
  return reinterpret_cast<const D*>(t.flat<T>().data());
}
template <typename D, typename T>
D* DataAs(::tensorflow::Tensor* t) {
  static_assert(sizeof(D) == sizeof(T), "storage type of another size");
  return reinterpret_cast<D*>(t->flat<T>().data());
}

// Allocates the forward op's outputs (h, c_seq, h_last, c_last) and points
// `a` at the inputs and outputs. Shared by the CPU and GPU OpKernels.
template <typename T, typename D, typename S>
::tensorflow::Status PrepareForward(::tensorflow::OpKernelContext* ctx,
                                    const SruAttrs& attrs,
                                    ForwardArgs<D, S>* a) {
  const ::tensorflow::Tensor& x = ctx->input(1);
  const ::tensorflow::Tensor& c0 = ctx->input(4);
  ::tensorflow::Tensor *h, *c_seq, *h_last, *c_last;
  TF_RETURN_IF_ERROR(ctx->allocate_output(0, x.shape(), &h));
  TF_RETURN_IF_ERROR(ctx->allocate_output(1, x.shape(), &c_seq));
  TF_RETURN_IF_ERROR(ctx->allocate_output(2, c0.shape(), &h_last));
  TF_RETURN_IF_ERROR(ctx->allocate_output(3, c0.shape(), &c_last));
  a->u = DataAs<D, T>(ctx->input(0));
  a->x_highway = DataAs<D, T>(x);
  a->weight_c = ctx->input(2).flat<S>().data();
  a->bias = ctx->input(3).flat<S>().data();
  a->c0 = c0.flat<S>().data();
  a->lengths = ctx->input(5).flat<int32_t>().data();
  a->alpha = static_cast<S>(attrs.alpha);
  a->h = DataAs<D, T>(h);
  a->c_seq = c_seq->flat<S>().data();
  a->h_last = DataAs<D, T>(h_last);
  a->c_last = c_last->flat<S>().data();
  return ::tensorflow::Status();
}

// Allocates the backward op's outputs (gradients of u, x_highway, weight_c,
// bias, c0) and the per-batch partials of the weight_c / bias gradients
// (`*_partial`, owned by the caller), and points `a` at them. The kernels
// then sum the partials over the batch, in order, into `grad_weight_c` and
// `grad_bias`: deterministic, no atomics.
template <typename T, typename D, typename S>
::tensorflow::Status PrepareBackward(::tensorflow::OpKernelContext* ctx,
                                     const SruAttrs& attrs, const Dims& n,
                                     ::tensorflow::Tensor* weight_c_partial,
                                     ::tensorflow::Tensor* bias_partial,
                                     BackwardArgs<D, S>* a, S** grad_weight_c,
                                     S** grad_bias) {
  ::tensorflow::Tensor* grads[5];
  for (int i = 0; i < 5; ++i) {
    TF_RETURN_IF_ERROR(
        ctx->allocate_output(i, ctx->input(i).shape(), &grads[i]));
  }
  const ::tensorflow::TensorShape partial_shape({n.batch, 2 * n.dirs * n.units});
  TF_RETURN_IF_ERROR(ctx->allocate_temp(::tensorflow::DataTypeToEnum<S>::v(),
                                        partial_shape, weight_c_partial));
  TF_RETURN_IF_ERROR(ctx->allocate_temp(::tensorflow::DataTypeToEnum<S>::v(),
                                        partial_shape, bias_partial));
  a->u = DataAs<D, T>(ctx->input(0));
  a->x_highway = DataAs<D, T>(ctx->input(1));
  a->weight_c = ctx->input(2).flat<S>().data();
  a->bias = ctx->input(3).flat<S>().data();
  a->c0 = ctx->input(4).flat<S>().data();
  a->lengths = ctx->input(5).flat<int32_t>().data();
  a->alpha = static_cast<S>(attrs.alpha);
  a->c_seq = ctx->input(6).flat<S>().data();
  a->grad_h = DataAs<D, T>(ctx->input(7));
  a->grad_h_last = DataAs<D, T>(ctx->input(8));
  a->grad_c_last = ctx->input(9).flat<S>().data();
  a->grad_u = DataAs<D, T>(grads[0]);
  a->grad_x_highway = DataAs<D, T>(grads[1]);
  a->grad_c0 = grads[4]->flat<S>().data();
  a->grad_weight_c_partial = weight_c_partial->flat<S>().data();
  a->grad_bias_partial = bias_partial->flat<S>().data();
  *grad_weight_c = grads[2]->flat<S>().data();
  *grad_bias = grads[3]->flat<S>().data();
  return ::tensorflow::Status();
}

// Registers FORWARD<T, S> and BACKWARD<T, S> on DEVICE for the four type
// pairs of the ops: (float, float), (double, double), (half, float),
// (bfloat16, float).
#define KERAS_NDSRU_REGISTER_SRU_PAIR(DEVICE, FORWARD, BACKWARD, T, S) \
  REGISTER_KERNEL_BUILDER(Name("KerasNdsru>SruForward")                \
                              .Device(DEVICE)                          \
                              .TypeConstraint<T>("T")                  \
                              .TypeConstraint<S>("S"),                 \
                          FORWARD<T, S>);                              \
  REGISTER_KERNEL_BUILDER(Name("KerasNdsru>SruBackward")               \
                              .Device(DEVICE)                          \
                              .TypeConstraint<T>("T")                  \
                              .TypeConstraint<S>("S"),                 \
                          BACKWARD<T, S>)
#define KERAS_NDSRU_REGISTER_SRU_KERNELS(DEVICE, FORWARD, BACKWARD)              \
  KERAS_NDSRU_REGISTER_SRU_PAIR(DEVICE, FORWARD, BACKWARD, float, float);        \
  KERAS_NDSRU_REGISTER_SRU_PAIR(DEVICE, FORWARD, BACKWARD, double, double);      \
  KERAS_NDSRU_REGISTER_SRU_PAIR(DEVICE, FORWARD, BACKWARD, ::Eigen::half, float); \
  KERAS_NDSRU_REGISTER_SRU_PAIR(DEVICE, FORWARD, BACKWARD, ::Eigen::bfloat16, float)

}  // namespace sru
}  // namespace keras_ndsru

#endif  // KERAS_NDSRU_SRU_OP_COMMON_H_
