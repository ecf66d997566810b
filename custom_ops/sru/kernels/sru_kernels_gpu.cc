// GPU OpKernels of KerasNdsru>SruForward / SruBackward (ops: ../ops/sru_ops.cc).
//
// Thin TensorFlow wrappers: validate (sru_op_common.h, shared with the CPU
// kernels), allocate, and call the launchers of sru_kernels.cu on the op's
// stream. Compiled by g++ with -DGOOGLE_CUDA=1 and needs no CUDA header: the
// stream comes from the public StreamExecutor API as an opaque handle. The
// library still loads on tensorflow-cpu, which simply never picks these
// kernels.
//
// Differences from the CPU kernels: `lengths` stays in device memory, so it
// is not range-checked; lengths < 0 count as 0 and lengths > time as time
// (the Python wrapper derives them from masks, so they are always in range).
#if GOOGLE_CUDA

#include <cstdint>

#include "sru_functor.h"
#include "sru_kernels_gpu.h"
#include "sru_op_common.h"
#include "tensorflow/core/framework/device_base.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "xla/stream_executor/stream.h"

namespace keras_ndsru {
namespace sru {
namespace gpu {
namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Status;
using ::tensorflow::Tensor;

// TensorFlow's element type -> the launchers' storage type (same bits).
template <typename T>
struct StorageOf {
  using type = T;
};
template <>
struct StorageOf<Eigen::half> {
  using type = Float16Storage;
};
template <>
struct StorageOf<Eigen::bfloat16> {
  using type = BFloat16Storage;
};

// The cudaStream_t of the op's stream, as void*.
Status OpStream(OpKernelContext* ctx, void** stream) {
  ::tensorflow::DeviceContext* device_context = ctx->op_device_context();
  stream_executor::Stream* se_stream =
      device_context ? device_context->stream() : nullptr;
  *stream = se_stream ? se_stream->platform_specific_handle().stream : nullptr;
  if (*stream == nullptr) {
    return ::tensorflow::errors::Internal(
        "SRU op: no CUDA stream for the GPU kernel on device ",
        ctx->device()->name());
  }
  return Status();
}

Status LaunchStatus(const char* op, const char* error) {
  if (error == nullptr) return Status();
  return ::tensorflow::errors::Internal("SRU op: launching the ", op,
                                        " CUDA kernel failed: ", error);
}

template <typename T, typename S>
class SruForwardGpuOp : public OpKernel {
 public:
  explicit SruForwardGpuOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ReadSruAttrs(ctx, &attrs_));
  }

  void Compute(OpKernelContext* ctx) override {
    Dims n;
    OP_REQUIRES_OK(ctx, ValidateSruInputs(ctx, attrs_, /*backward=*/false,
                                          /*check_lengths=*/false, &n));
    using D = typename StorageOf<T>::type;
    ForwardArgs<D, S> a;
    OP_REQUIRES_OK(ctx, (PrepareForward<T, D, S>(ctx, attrs_, &a)));
    void* stream = nullptr;
    OP_REQUIRES_OK(ctx, OpStream(ctx, &stream));
    OP_REQUIRES_OK(ctx, LaunchStatus("SruForward",
                                     LaunchSruForward<D, S>(stream, n, a)));
  }

 private:
  SruAttrs attrs_;
};

template <typename T, typename S>
class SruBackwardGpuOp : public OpKernel {
 public:
  explicit SruBackwardGpuOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ReadSruAttrs(ctx, &attrs_));
  }

  void Compute(OpKernelContext* ctx) override {
    Dims n;
    OP_REQUIRES_OK(ctx, ValidateSruInputs(ctx, attrs_, /*backward=*/true,
                                          /*check_lengths=*/false, &n));
    using D = typename StorageOf<T>::type;
    Tensor weight_c_partial, bias_partial;
    BackwardArgs<D, S> a;
    S *grad_weight_c, *grad_bias;
    OP_REQUIRES_OK(ctx, (PrepareBackward<T, D, S>(
                            ctx, attrs_, n, &weight_c_partial, &bias_partial,
                            &a, &grad_weight_c, &grad_bias)));
    void* stream = nullptr;
    OP_REQUIRES_OK(ctx, OpStream(ctx, &stream));
    OP_REQUIRES_OK(
        ctx, LaunchStatus("SruBackward",
                          LaunchSruBackward<D, S>(stream, n, a, grad_weight_c,
                                                  grad_bias)));
  }

 private:
  SruAttrs attrs_;
};

KERAS_NDSRU_REGISTER_SRU_KERNELS(::tensorflow::DEVICE_GPU, SruForwardGpuOp,
                                 SruBackwardGpuOp);

}  // namespace
}  // namespace gpu
}  // namespace sru
}  // namespace keras_ndsru

#endif  // GOOGLE_CUDA
