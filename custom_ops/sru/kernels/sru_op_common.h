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
  if (direction == "forward") {
    attrs->dirs = 1;
    attrs->reverse_mask = 0;
  } else if (direction == "backward") {
    attrs->dirs = 1;
    attrs->reverse_mask = 1;
  } else if (direction == "bidirectional") {
    attrs->dirs = 2;
    attrs->reverse_mask = 2;  // direction 0 forward, direction 1 backward
  } else {
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

}  // namespace sru
}  // namespace keras_ndsru

#endif  // KERAS_NDSRU_SRU_OP_COMMON_H_
