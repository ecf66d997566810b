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
static_assert(sizeof(Eigen::half) == sizeof(Float16Storage), "half size");
static_assert(sizeof(Eigen::bfloat16) == sizeof(BFloat16Storage),
              "bfloat16 size");

template <typename T>
const typename StorageOf<T>::type* In(const Tensor& t) {
  return reinterpret_cast<const typename StorageOf<T>::type*>(
      t.flat<T>().data());
}
template <typename T>
typename StorageOf<T>::type* Out(Tensor* t) {
  return reinterpret_cast<typename StorageOf<T>::type*>(t->flat<T>().data());
}

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
    const Tensor& x = ctx->input(1);
    const Tensor& c0 = ctx->input(4);
    Tensor *h, *c_seq, *h_last, *c_last;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &h));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, x.shape(), &c_seq));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, c0.shape(), &h_last));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, c0.shape(), &c_last));
    void* stream = nullptr;
    OP_REQUIRES_OK(ctx, OpStream(ctx, &stream));

    using D = typename StorageOf<T>::type;
    ForwardArgs<D, S> a;
    a.u = In<T>(ctx->input(0));
    a.x_highway = In<T>(x);
    a.weight_c = ctx->input(2).flat<S>().data();
    a.bias = ctx->input(3).flat<S>().data();
    a.c0 = c0.flat<S>().data();
    a.lengths = ctx->input(5).flat<int32_t>().data();
    a.alpha = static_cast<S>(attrs_.alpha);
    a.h = Out<T>(h);
    a.c_seq = c_seq->flat<S>().data();
    a.h_last = Out<T>(h_last);
    a.c_last = c_last->flat<S>().data();
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
    Tensor* grads[5];
    for (int i = 0; i < 5; ++i) {
      OP_REQUIRES_OK(ctx,
                     ctx->allocate_output(i, ctx->input(i).shape(), &grads[i]));
    }
    // Per-batch partials of the weight_c / bias gradients, summed over the
    // batch in order by a second kernel: deterministic, no atomics.
    const ::tensorflow::TensorShape partial_shape({n.batch, 2 * n.dirs * n.units});
    Tensor weight_c_partial, bias_partial;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(::tensorflow::DataTypeToEnum<S>::v(),
                                           partial_shape, &weight_c_partial));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(::tensorflow::DataTypeToEnum<S>::v(),
                                           partial_shape, &bias_partial));
    void* stream = nullptr;
    OP_REQUIRES_OK(ctx, OpStream(ctx, &stream));

    using D = typename StorageOf<T>::type;
    BackwardArgs<D, S> a;
    a.u = In<T>(ctx->input(0));
    a.x_highway = In<T>(ctx->input(1));
    a.weight_c = ctx->input(2).flat<S>().data();
    a.bias = ctx->input(3).flat<S>().data();
    a.c0 = ctx->input(4).flat<S>().data();
    a.lengths = ctx->input(5).flat<int32_t>().data();
    a.alpha = static_cast<S>(attrs_.alpha);
    a.c_seq = ctx->input(6).flat<S>().data();
    a.grad_h = In<T>(ctx->input(7));
    a.grad_h_last = In<T>(ctx->input(8));
    a.grad_c_last = ctx->input(9).flat<S>().data();
    a.grad_u = Out<T>(grads[0]);
    a.grad_x_highway = Out<T>(grads[1]);
    a.grad_c0 = grads[4]->flat<S>().data();
    a.grad_weight_c_partial = weight_c_partial.flat<S>().data();
    a.grad_bias_partial = bias_partial.flat<S>().data();
    OP_REQUIRES_OK(
        ctx, LaunchStatus("SruBackward",
                          LaunchSruBackward<D, S>(
                              stream, n, a, grads[2]->flat<S>().data(),
                              grads[3]->flat<S>().data())));
  }

 private:
  SruAttrs attrs_;
};

#define REGISTER_SRU_GPU(T, S)                                         \
  REGISTER_KERNEL_BUILDER(Name("KerasNdsru>SruForward")                \
                              .Device(::tensorflow::DEVICE_GPU)        \
                              .TypeConstraint<T>("T")                  \
                              .TypeConstraint<S>("S"),                 \
                          SruForwardGpuOp<T, S>);                      \
  REGISTER_KERNEL_BUILDER(Name("KerasNdsru>SruBackward")               \
                              .Device(::tensorflow::DEVICE_GPU)        \
                              .TypeConstraint<T>("T")                  \
                              .TypeConstraint<S>("S"),                 \
                          SruBackwardGpuOp<T, S>)

REGISTER_SRU_GPU(float, float);
REGISTER_SRU_GPU(double, double);
REGISTER_SRU_GPU(::Eigen::half, float);
REGISTER_SRU_GPU(::Eigen::bfloat16, float);

#undef REGISTER_SRU_GPU

}  // namespace
}  // namespace gpu
}  // namespace sru
}  // namespace keras_ndsru

#endif  // GOOGLE_CUDA
