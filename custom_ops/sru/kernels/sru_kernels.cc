// CPU kernels of KerasNdsru>SruForward / SruBackward (ops: ../ops/sru_ops.cc).
//
// Thin TensorFlow wrappers: validate (sru_op_common.h), allocate, and run the
// framework-free CPU recurrence of sru_cpu.h (row blocks through time,
// vectorized over units, multiversioned per x86-64 level in sru_cpu.cc) on
// TensorFlow's CPU thread pool, one work item per (batch, direction, unit
// block).
#define EIGEN_USE_THREADS

#include <cstdint>

#include "sru_cpu.h"
#include "sru_functor.h"
#include "sru_op_common.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/lib/core/threadpool.h"

namespace keras_ndsru {
namespace sru {
namespace cpu {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;

// TensorFlow's CPU thread pool as the parallel_for of sru_cpu.h.
struct TfParallelFor {
  ::tensorflow::thread::ThreadPool* workers;
  template <typename Shard>
  void operator()(int64_t total, int64_t cost, Shard&& shard) const {
    workers->ParallelFor(total, cost, shard);
  }
};

TfParallelFor CpuThreads(OpKernelContext* ctx) {
  return {ctx->device()->tensorflow_cpu_worker_threads()->workers};
}

template <typename T, typename S>
class SruForwardOp : public OpKernel {
 public:
  explicit SruForwardOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ReadSruAttrs(ctx, &attrs_));
  }

  void Compute(OpKernelContext* ctx) override {
    Dims n;
    OP_REQUIRES_OK(ctx, ValidateSruInputs(ctx, attrs_, /*backward=*/false,
                                          /*check_lengths=*/true, &n));
    ForwardArgs<T, S> a;
    OP_REQUIRES_OK(ctx, PrepareForward<T>(ctx, attrs_, &a));
    const TfParallelFor threads = CpuThreads(ctx);
    sru_forward(n, a, threads.workers->NumThreads(), threads);
  }

 private:
  SruAttrs attrs_;
};

template <typename T, typename S>
class SruBackwardOp : public OpKernel {
 public:
  explicit SruBackwardOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ReadSruAttrs(ctx, &attrs_));
  }

  void Compute(OpKernelContext* ctx) override {
    Dims n;
    OP_REQUIRES_OK(ctx, ValidateSruInputs(ctx, attrs_, /*backward=*/true,
                                          /*check_lengths=*/true, &n));
    Tensor weight_c_partial, bias_partial;
    BackwardArgs<T, S> a;
    S *grad_weight_c, *grad_bias;
    OP_REQUIRES_OK(ctx, PrepareBackward<T>(ctx, attrs_, n, &weight_c_partial,
                                           &bias_partial, &a, &grad_weight_c,
                                           &grad_bias));
    const TfParallelFor threads = CpuThreads(ctx);
    // Fixed-order batch sums of the partials: deterministic results.
    sru_backward(n, a, threads.workers->NumThreads(), threads, grad_weight_c,
                 grad_bias);
  }

 private:
  SruAttrs attrs_;
};

KERAS_NDSRU_REGISTER_SRU_KERNELS(::tensorflow::DEVICE_CPU, SruForwardOp,
                                 SruBackwardOp);

}  // namespace cpu
}  // namespace sru
}  // namespace keras_ndsru
