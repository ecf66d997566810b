// CUDA kernels of the PyTorch custom operators keras_ndsru::sru_forward /
// sru_backward (schemas and CPU kernels: sru_torch_ops.cc).
//
// Thin wrappers: validate and allocate (sru_torch_common.h), then call the
// launchers of ../kernels/sru_kernels.cu (the TensorFlow CUDA kernels') on
// PyTorch's current stream of the tensors' device. Compiled by g++ without
// CUDA headers (the stream comes from the stable ABI as an opaque handle),
// and only when the library is built with nvcc. `lengths` stays in device
// memory, so it is not range-checked here; lengths < 0 count as 0 and
// lengths > time as time (the Python wrapper derives them from masks).
#include <dlfcn.h>

#include <cstdint>
#include <string>

#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/version.h>

#include "../kernels/sru_kernels_gpu.h"
#include "sru_torch_common.h"

namespace keras_ndsru {
namespace sru {
namespace torch_ops {
namespace {

#if defined(TORCH_VERSION_2_13_0) && TORCH_FEATURE_VERSION >= TORCH_VERSION_2_13_0
// The cudaStream_t of PyTorch's current stream on u's device.
void* CurrentStream(const Tensor& u) {
  return ::torch::stable::accelerator::getCurrentStream(u.get_device_index())
      .nativeHandle();
}
#else
// Before PyTorch 2.13 the stable ABI gives no native stream handle; the
// AOTInductor shim of libtorch_cuda (loaded by every CUDA build of torch)
// does. Looked up at run time: the library must not depend on libtorch_cuda,
// which CPU builds of torch do not have.
void* CurrentStream(const Tensor& u) {
  using GetStream = AOTITorchError (*)(int32_t, void**);
  static const GetStream get_stream = [] {
    const char* name = "aoti_torch_get_current_cuda_stream";
    void* symbol = dlsym(RTLD_DEFAULT, name);
    if (symbol == nullptr) {
      void* cuda = dlopen("libtorch_cuda.so", RTLD_LAZY | RTLD_NOLOAD);
      symbol = cuda ? dlsym(cuda, name) : nullptr;
    }
    return reinterpret_cast<GetStream>(symbol);
  }();
  STD_TORCH_CHECK(get_stream != nullptr,
                  "keras_ndsru::sru: cannot find PyTorch's current CUDA "
                  "stream (aoti_torch_get_current_cuda_stream is not in "
                  "libtorch_cuda). Received: device index=",
                  u.get_device_index());
  void* stream = nullptr;
  STD_TORCH_CHECK(get_stream(u.get_device_index(), &stream) ==
                      AOTI_TORCH_SUCCESS,
                  "keras_ndsru::sru: reading the current CUDA stream failed. "
                  "Received: device index=",
                  u.get_device_index());
  return stream;
}
#endif

void CheckLaunch(const char* op, const char* error) {
  STD_TORCH_CHECK(error == nullptr, "keras_ndsru::", op,
                  ": launching the CUDA kernel failed: ", error);
}

// Calls run(gpu::KernelTypes<D, S>{}) for u's dtype.
template <typename Run>
auto DispatchDtype(ScalarType dtype, Run&& run) {
  switch (dtype) {
    case ScalarType::Double:
      return run(gpu::KernelTypes<double, double>{});
    case ScalarType::Half:
      return run(gpu::KernelTypes<gpu::Float16Storage, float>{});
    case ScalarType::BFloat16:
      return run(gpu::KernelTypes<gpu::BFloat16Storage, float>{});
    default:
      return run(gpu::KernelTypes<float, float>{});
  }
}

ForwardOutputs SruForwardCuda(Tensor u, Tensor x_highway, Tensor weight_c,
                              Tensor bias, Tensor c0, Tensor lengths,
                              double alpha, std::string direction) {
  const Dims n =
      CheckInputs(u, x_highway, weight_c, bias, c0, lengths, direction);
  ::torch::stable::accelerator::DeviceGuard guard(u.get_device_index());
  return DispatchDtype(u.scalar_type(), [&](auto types) {
    using D = typename decltype(types)::Storage;
    using S = typename decltype(types)::State;
    ForwardArgs<D, S> a;
    ForwardOutputs out = PrepareForward<D, S>(n, u, x_highway, weight_c, bias,
                                              c0, lengths, alpha, &a);
    CheckLaunch("sru_forward",
                gpu::LaunchSruForward<D, S>(CurrentStream(u), n, a));
    return out;
  });
}

BackwardOutputs SruBackwardCuda(Tensor u, Tensor x_highway, Tensor weight_c,
                                Tensor bias, Tensor c0, Tensor lengths,
                                Tensor c_seq, Tensor grad_h,
                                Tensor grad_h_last, Tensor grad_c_last,
                                double alpha, std::string direction) {
  const Dims n = CheckInputs(u, x_highway, weight_c, bias, c0, lengths,
                             direction,
                             {&c_seq, &grad_h, &grad_h_last, &grad_c_last});
  ::torch::stable::accelerator::DeviceGuard guard(u.get_device_index());
  return DispatchDtype(u.scalar_type(), [&](auto types) {
    using D = typename decltype(types)::Storage;
    using S = typename decltype(types)::State;
    BackwardArgs<D, S> a;
    // Freeing the partials on return is safe although the kernels run
    // asynchronously: PyTorch's caching allocator hands their memory only to
    // later work on the same stream.
    Tensor partials;
    BackwardOutputs out = PrepareBackward<D, S>(
        n, u, x_highway, weight_c, bias, c0, lengths, c_seq, grad_h,
        grad_h_last, grad_c_last, alpha, &partials, &a);
    CheckLaunch("sru_backward",
                gpu::LaunchSruBackward<D, S>(
                    CurrentStream(u), n, a,
                    static_cast<S*>(std::get<2>(out).mutable_data_ptr()),
                    static_cast<S*>(std::get<3>(out).mutable_data_ptr())));
    return out;
  });
}

}  // namespace
}  // namespace torch_ops
}  // namespace sru
}  // namespace keras_ndsru

STABLE_TORCH_LIBRARY_IMPL(keras_ndsru, CUDA, m) {
  m.impl("sru_forward",
         TORCH_BOX(&keras_ndsru::sru::torch_ops::SruForwardCuda));
  m.impl("sru_backward",
         TORCH_BOX(&keras_ndsru::sru::torch_ops::SruBackwardCuda));
}
