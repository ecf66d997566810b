// XLA FFI handlers of the fused SRU recurrence for JAX: the CUDA targets
// KerasNdsruSruForwardCuda / KerasNdsruSruBackwardCuda (same operands,
// results and attributes as the CPU targets of sru_jax_ffi.cc).
//
// Thin wrappers: validate (sru_jax_common.h), then call the launchers of
// ../kernels/sru_kernels.cu (the TensorFlow CUDA kernels') on XLA's stream.
// Compiled by g++ without CUDA headers (the stream is an opaque handle), and
// only when the library is built with nvcc. The per-batch partials of the
// weight_c / bias gradients live in XLA's scratch memory. `lengths` stays in
// device memory, so it is not range-checked here; lengths < 0 count as 0 and
// lengths > time as time (the Python wrapper derives them from masks).
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "../kernels/sru_kernels_gpu.h"
#include "sru_jax_common.h"
#include "xla/ffi/api/ffi.h"

namespace keras_ndsru {
namespace sru {
namespace jax_ffi {
namespace {

ffi::Error LaunchStatus(const char* target, const char* error) {
  if (error == nullptr) return ffi::Error::Success();
  return ffi::Error::Internal(std::string("keras_ndsru_sru: launching the ") +
                              target + " CUDA kernel failed: " + error);
}

// Calls run(gpu::KernelTypes<D, S>{}) for u's dtype.
template <typename Run>
ffi::Error DispatchDtype(ffi::DataType dtype, Run&& run) {
  switch (dtype) {
    case ffi::DataType::F64:
      return run(gpu::KernelTypes<double, double>{});
    case ffi::DataType::F16:
      return run(gpu::KernelTypes<gpu::Float16Storage, float>{});
    case ffi::DataType::BF16:
      return run(gpu::KernelTypes<gpu::BFloat16Storage, float>{});
    default:
      return run(gpu::KernelTypes<float, float>{});
  }
}

ffi::Error SruForwardCuda(void* stream, ffi::AnyBuffer u,
                          ffi::AnyBuffer x_highway, ffi::AnyBuffer weight_c,
                          ffi::AnyBuffer bias, ffi::AnyBuffer c0,
                          ffi::AnyBuffer lengths,
                          ffi::Result<ffi::AnyBuffer> h,
                          ffi::Result<ffi::AnyBuffer> c_seq,
                          ffi::Result<ffi::AnyBuffer> h_last,
                          ffi::Result<ffi::AnyBuffer> c_last, double alpha,
                          std::string_view direction) {
  Dims n;
  KERAS_NDSRU_RETURN_IF_ERROR(
      CheckOperands(u, x_highway, weight_c, bias, c0, lengths, direction, &n));
  return DispatchDtype(u.element_type(), [&](auto types) {
    using D = typename decltype(types)::Storage;
    using S = typename decltype(types)::State;
    return LaunchStatus(
        "forward", gpu::LaunchSruForward<D, S>(
                       stream, n,
                       ForwardPointers<D, S>(u, x_highway, weight_c, bias, c0,
                                             lengths, alpha, h, c_seq, h_last,
                                             c_last)));
  });
}

ffi::Error SruBackwardCuda(
    void* stream, ffi::ScratchAllocator scratch, ffi::AnyBuffer u,
    ffi::AnyBuffer x_highway, ffi::AnyBuffer weight_c, ffi::AnyBuffer bias,
    ffi::AnyBuffer c0, ffi::AnyBuffer lengths, ffi::AnyBuffer c_seq,
    ffi::AnyBuffer grad_h, ffi::AnyBuffer grad_h_last,
    ffi::AnyBuffer grad_c_last, ffi::Result<ffi::AnyBuffer> grad_u,
    ffi::Result<ffi::AnyBuffer> grad_x_highway,
    ffi::Result<ffi::AnyBuffer> grad_weight_c,
    ffi::Result<ffi::AnyBuffer> grad_bias, ffi::Result<ffi::AnyBuffer> grad_c0,
    double alpha, std::string_view direction) {
  Dims n;
  KERAS_NDSRU_RETURN_IF_ERROR(
      CheckOperands(u, x_highway, weight_c, bias, c0, lengths, direction, &n,
                    {&c_seq, &grad_h, &grad_h_last, &grad_c_last}));
  return DispatchDtype(u.element_type(), [&](auto types) {
    using D = typename decltype(types)::Storage;
    using S = typename decltype(types)::State;
    const int64_t partial = n.batch * 2 * n.dirs * n.units;
    const size_t bytes =
        static_cast<size_t>(std::max<int64_t>(1, 2 * partial)) * sizeof(S);
    const auto memory = scratch.Allocate(bytes, alignof(S));
    if (!memory.has_value()) {
      return ffi::Error::Internal(
          "keras_ndsru_sru: allocating the backward scratch memory failed. "
          "Received: bytes=" +
          std::to_string(bytes));
    }
    S* weight_c_partial = static_cast<S*>(*memory);
    return LaunchStatus(
        "backward",
        gpu::LaunchSruBackward<D, S>(
            stream, n,
            BackwardPointers<D, S>(u, x_highway, weight_c, bias, c0, lengths,
                                   c_seq, grad_h, grad_h_last, grad_c_last,
                                   alpha, grad_u, grad_x_highway, grad_c0,
                                   weight_c_partial, weight_c_partial + partial),
            static_cast<S*>(grad_weight_c->untyped_data()),
            static_cast<S*>(grad_bias->untyped_data())));
  });
}

}  // namespace
}  // namespace jax_ffi
}  // namespace sru
}  // namespace keras_ndsru

namespace ffi = ::xla::ffi;
using keras_ndsru::sru::jax_ffi::BackwardSignature;
using keras_ndsru::sru::jax_ffi::ForwardSignature;

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    KerasNdsruSruForwardCuda, keras_ndsru::sru::jax_ffi::SruForwardCuda,
    ForwardSignature(ffi::Ffi::Bind().Ctx<ffi::PlatformStream<void*>>()));

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    KerasNdsruSruBackwardCuda, keras_ndsru::sru::jax_ffi::SruBackwardCuda,
    BackwardSignature(ffi::Ffi::Bind()
        .Ctx<ffi::PlatformStream<void*>>()
        .Ctx<ffi::ScratchAllocator>()));
