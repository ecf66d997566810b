// Launchers of the CUDA kernels of the fused SRU recurrence (sru_kernels.cu).
//
// Plain C++: no TensorFlow and no CUDA headers, so the TensorFlow wrapper
// (sru_kernels_gpu.cc), the standalone harness (../harness/) and the host
// check of the kernels' logic (../harness/host_driver.cc) all include it.
//
// Each launcher enqueues its kernels on `stream` (a cudaStream_t passed as
// void*) and returns nullptr on success, or a static string describing the
// launch error. It does not synchronize. Empty problems launch nothing.
#ifndef KERAS_NDSRU_SRU_KERNELS_GPU_H_
#define KERAS_NDSRU_SRU_KERNELS_GPU_H_

#include <cstdint>

#include "sru_functor.h"

namespace keras_ndsru {
namespace sru {
namespace gpu {

// 16-bit storage types as seen by code without CUDA headers. They have the
// bits and size of __half / __nv_bfloat16 (and of Eigen::half /
// Eigen::bfloat16), and the launchers reinterpret them as the CUDA types.
struct Float16Storage {
  uint16_t bits;
};
struct BFloat16Storage {
  uint16_t bits;
};

// The kernels' storage type D and state type S of one dtype, as a value:
// framework glue maps its dtype to one and calls a generic lambda with it.
template <typename D, typename S>
struct KernelTypes {
  using Storage = D;
  using State = S;
};

// Threads per block are chosen in [kMinThreadsPerBlock, kMaxThreadsPerBlock].
constexpr int kMaxThreadsPerBlock = 256;
constexpr int kMinThreadsPerBlock = 64;

struct LaunchConfig {
  int64_t blocks;
  int threads;
};

// One thread per (batch, direction, unit) column, unit fastest. Small
// problems use smaller blocks so the columns spread over more
// multiprocessors: each thread's time loop is latency bound.
LaunchConfig ColumnLaunchConfig(int64_t columns, int multiprocessors);

// Forward recurrence: h, c_seq, h_last, c_last (see sru_functor.h).
// T: float, double, Float16Storage or BFloat16Storage; S: float, or double
// when T is double.
template <typename T, typename S>
const char* LaunchSruForward(void* stream, const Dims& dims,
                             const ForwardArgs<T, S>& args);

// Backward recurrence. `args.grad_weight_c_partial` and
// `args.grad_bias_partial` are caller-provided scratch buffers of
// [B, D, 2, d] elements each; a second kernel sums them over the batch in
// order into `grad_weight_c` and `grad_bias` ([D, 2, d], written even when
// B == 0): deterministic, no atomics.
template <typename T, typename S>
const char* LaunchSruBackward(void* stream, const Dims& dims,
                              const BackwardArgs<T, S>& args,
                              S* grad_weight_c, S* grad_bias);

}  // namespace gpu
}  // namespace sru
}  // namespace keras_ndsru

#endif  // KERAS_NDSRU_SRU_KERNELS_GPU_H_
