// CUDA kernels of the fused SRU recurrence (Lei et al., arXiv 1709.02755,
// Sec. 3.1, Algorithm 1). No TensorFlow headers: the TensorFlow wrapper is
// sru_kernels_gpu.cc, the launchers are declared in sru_kernels_gpu.h.
//
// One thread runs the whole time loop of one (batch, direction, unit) column
// through forward_column / backward_column of sru_functor.h, so the CPU
// kernel, these kernels and the host check share one transcription of the
// equations. Both directions of a bidirectional layer run in one launch (the
// direction is part of the thread index). The state is carried in S (float,
// double for T = double) whatever the storage type T.
//
// Host check: custom_ops/sru/harness/host_driver.cc defines
// SRU_HOST_EMULATION, supplies __global__, blockIdx, blockDim, gridDim,
// threadIdx and host 16-bit types, and includes this file as host C++. The
// kernels then run over every (block, thread) index in turn (columns are
// independent: no shared memory, no barriers), which checks the index
// mapping and the launch configuration on a machine without a GPU.
#include "sru_kernels_gpu.h"

#include <atomic>
#include <cstdint>
#include <utility>

#if defined(SRU_HOST_EMULATION)
// Provided by the including host driver: DeviceHalf, DeviceBFloat16,
// EmulateLaunch, EmulatedMultiprocessorCount.
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <string>
#endif

#include "sru_functor.h"

namespace keras_ndsru {
namespace sru {
namespace gpu {

#if !defined(SRU_HOST_EMULATION)
using DeviceHalf = __half;
using DeviceBFloat16 = __nv_bfloat16;
#endif

struct Column {
  int64_t batch, dir, unit;
};

// Thread index -> column: unit fastest, then direction, then batch, so a
// warp touches consecutive units of one (b, t, dir) row (coalesced).
SRU_HD Column ColumnOfThread(const Dims& dims, int64_t thread) {
  const int64_t row = thread / dims.units;
  return {row / dims.dirs, row % dims.dirs, thread % dims.units};
}

namespace {

static_assert(sizeof(DeviceHalf) == sizeof(Float16Storage), "half size");
static_assert(sizeof(DeviceBFloat16) == sizeof(BFloat16Storage),
              "bfloat16 size");
// Tripwire: Recast below copies every field; a new field must be added there.
static_assert(sizeof(ForwardArgs<float, float>) == 11 * sizeof(void*),
              "ForwardArgs changed: update Recast");
static_assert(sizeof(BackwardArgs<float, float>) == 16 * sizeof(void*),
              "BackwardArgs changed: update Recast");

template <typename T>
struct DeviceTypeOf {
  using type = T;
};
template <>
struct DeviceTypeOf<Float16Storage> {
  using type = DeviceHalf;
};
template <>
struct DeviceTypeOf<BFloat16Storage> {
  using type = DeviceBFloat16;
};

template <typename D, typename T>
const D* As(const T* p) {
  return reinterpret_cast<const D*>(p);
}
template <typename D, typename T>
D* As(T* p) {
  return reinterpret_cast<D*>(p);
}

template <typename D, typename T, typename S>
ForwardArgs<D, S> Recast(const ForwardArgs<T, S>& a) {
  ForwardArgs<D, S> r;
  r.u = As<D>(a.u);
  r.x_highway = As<D>(a.x_highway);
  r.weight_c = a.weight_c;
  r.bias = a.bias;
  r.c0 = a.c0;
  r.lengths = a.lengths;
  r.alpha = a.alpha;
  r.h = As<D>(a.h);
  r.c_seq = a.c_seq;
  r.h_last = As<D>(a.h_last);
  r.c_last = a.c_last;
  return r;
}

template <typename D, typename T, typename S>
BackwardArgs<D, S> Recast(const BackwardArgs<T, S>& a) {
  BackwardArgs<D, S> r;
  r.u = As<D>(a.u);
  r.x_highway = As<D>(a.x_highway);
  r.weight_c = a.weight_c;
  r.bias = a.bias;
  r.c0 = a.c0;
  r.lengths = a.lengths;
  r.alpha = a.alpha;
  r.c_seq = a.c_seq;
  r.grad_h = As<D>(a.grad_h);
  r.grad_h_last = As<D>(a.grad_h_last);
  r.grad_c_last = a.grad_c_last;
  r.grad_u = As<D>(a.grad_u);
  r.grad_x_highway = As<D>(a.grad_x_highway);
  r.grad_c0 = a.grad_c0;
  r.grad_weight_c_partial = a.grad_weight_c_partial;
  r.grad_bias_partial = a.grad_bias_partial;
  return r;
}

template <typename T, typename S>
__global__ void __launch_bounds__(kMaxThreadsPerBlock)
    SruForwardKernel(const Dims dims, const ForwardArgs<T, S> args,
                     const int64_t columns) {
  const int64_t i =
      static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= columns) return;
  const Column c = ColumnOfThread(dims, i);
  forward_column(dims, args, c.batch, c.dir, c.unit);
}

template <typename T, typename S>
__global__ void __launch_bounds__(kMaxThreadsPerBlock)
    SruBackwardKernel(const Dims dims, const BackwardArgs<T, S> args,
                      const int64_t columns) {
  const int64_t i =
      static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= columns) return;
  const Column c = ColumnOfThread(dims, i);
  backward_column(dims, args, c.batch, c.dir, c.unit);
}

// Thread k < width sums weight_c partials, width <= k < 2 * width the bias
// partials; each over the batch in order. Reads are coalesced in k.
template <typename S>
__global__ void __launch_bounds__(kMaxThreadsPerBlock)
    SruSumPartialsKernel(const S* weight_c_partial, const S* bias_partial,
                         const int64_t batch, const int64_t width,
                         S* grad_weight_c, S* grad_bias) {
  const int64_t k =
      static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k < width) {
    sum_partials(weight_c_partial, batch, width, k, grad_weight_c);
  } else if (k < 2 * width) {
    sum_partials(bias_partial, batch, width, k - width, grad_bias);
  }
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

#if !defined(SRU_HOST_EMULATION)
int MultiprocessorCount() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cache[kMaxDevices];  // 0: not read yet
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();  // clear it; the launch reports real errors
    return 1;
  }
  const bool cacheable = device >= 0 && device < kMaxDevices;
  if (cacheable) {
    const int cached = cache[device].load(std::memory_order_relaxed);
    if (cached > 0) return cached;
  }
  int count = 0;
  if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount,
                             device) != cudaSuccess ||
      count <= 0) {
    cudaGetLastError();
    return 1;
  }
  if (cacheable) cache[device].store(count, std::memory_order_relaxed);
  return count;
}

// cudaGetErrorString plus what to do for the errors a wrong build or driver
// gives: the runtime is linked in statically (CUDART_VERSION of the nvcc
// that built the library), so the driver must support that CUDA version, and
// the device needs SASS or PTX from the build's architecture list.
const char* DescribeError(cudaError_t error) {
  switch (error) {
    case cudaErrorInsufficientDriver: {
      static const std::string message = [] {
        int driver = 0;
        if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
        char text[512];
        std::snprintf(
            text, sizeof(text),
            "CUDA driver version is insufficient for CUDA runtime version: "
            "the SRU kernels link the CUDA %d.%d runtime statically (the nvcc "
            "that built them), and the installed driver supports CUDA %d.%d "
            "(0.0: no driver found). Update the NVIDIA driver, or rebuild the "
            "op library with an nvcc this driver supports (python "
            "scripts/build_ops.py --force), or run without the fused op "
            "(KERAS_NDSRU_DISABLE_FUSED=1 or use_fused_kernel=False).",
            CUDART_VERSION / 1000, (CUDART_VERSION % 1000) / 10,
            driver / 1000, (driver % 1000) / 10);
        return std::string(text);
      }();
      return message.c_str();
    }
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
    case cudaErrorInvalidPtx:
      return "no usable kernel image for this GPU: the op library holds code "
             "for the architectures in scripts/build_ops.py CUDA_ARCHS "
             "(sm_75 .. sm_90) and compute_90 PTX, which a newer GPU runs "
             "only if its driver can JIT-compile that PTX; GPUs before sm_75 "
             "are not supported. Rebuild with the GPU's architecture added, "
             "or run without the fused op (KERAS_NDSRU_DISABLE_FUSED=1).";
    default:
      return cudaGetErrorString(error);
  }
}

template <typename... Params, typename... Args>
const char* Launch(void (*kernel)(Params...), const LaunchConfig& config,
                   void* stream, Args&&... args) {
  kernel<<<static_cast<unsigned int>(config.blocks), config.threads, 0,
           static_cast<cudaStream_t>(stream)>>>(std::forward<Args>(args)...);
  const cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? nullptr : DescribeError(error);
}
#else
int MultiprocessorCount() { return EmulatedMultiprocessorCount(); }

template <typename... Params, typename... Args>
const char* Launch(void (*kernel)(Params...), const LaunchConfig& config,
                   void* /*stream*/, Args&&... args) {
  return EmulateLaunch(config.blocks, config.threads,
                       [&] { kernel(args...); });
}
#endif

constexpr int64_t kMaxBlocks = 2147483647;  // gridDim.x limit

}  // namespace

LaunchConfig ColumnLaunchConfig(int64_t columns, int multiprocessors) {
  int threads = kMaxThreadsPerBlock;
  const int64_t wanted_blocks = 2 * static_cast<int64_t>(multiprocessors);
  while (threads > kMinThreadsPerBlock &&
         CeilDiv(columns, threads) < wanted_blocks) {
    threads /= 2;
  }
  return {CeilDiv(columns, threads), threads};
}

template <typename T, typename S>
const char* LaunchSruForward(void* stream, const Dims& dims,
                             const ForwardArgs<T, S>& args) {
  using D = typename DeviceTypeOf<T>::type;
  const int64_t columns = dims.batch * dims.dirs * dims.units;
  if (columns <= 0) return nullptr;
  const LaunchConfig config =
      ColumnLaunchConfig(columns, MultiprocessorCount());
  if (config.blocks > kMaxBlocks) return "SRU forward: too many columns";
  return Launch(SruForwardKernel<D, S>, config, stream, dims,
                Recast<D>(args), columns);
}

template <typename T, typename S>
const char* LaunchSruBackward(void* stream, const Dims& dims,
                              const BackwardArgs<T, S>& args,
                              S* grad_weight_c, S* grad_bias) {
  using D = typename DeviceTypeOf<T>::type;
  const int64_t columns = dims.batch * dims.dirs * dims.units;
  if (columns > 0) {
    const LaunchConfig config =
        ColumnLaunchConfig(columns, MultiprocessorCount());
    if (config.blocks > kMaxBlocks) return "SRU backward: too many columns";
    const char* error = Launch(SruBackwardKernel<D, S>, config, stream, dims,
                               Recast<D>(args), columns);
    if (error != nullptr) return error;
  }
  const int64_t width = dims.dirs * 2 * dims.units;
  if (width <= 0) return nullptr;
  const LaunchConfig config =
      ColumnLaunchConfig(2 * width, MultiprocessorCount());
  if (config.blocks > kMaxBlocks) return "SRU backward: too many units";
  return Launch(SruSumPartialsKernel<S>, config, stream,
                static_cast<const S*>(args.grad_weight_c_partial),
                static_cast<const S*>(args.grad_bias_partial), dims.batch,
                width, grad_weight_c, grad_bias);
}

#define SRU_INSTANTIATE(T, S)                                            \
  template const char* LaunchSruForward<T, S>(void*, const Dims&,        \
                                              const ForwardArgs<T, S>&); \
  template const char* LaunchSruBackward<T, S>(                          \
      void*, const Dims&, const BackwardArgs<T, S>&, S*, S*);

SRU_INSTANTIATE(float, float)
SRU_INSTANTIATE(Float16Storage, float)
SRU_INSTANTIATE(BFloat16Storage, float)
SRU_INSTANTIATE(double, double)
#undef SRU_INSTANTIATE

}  // namespace gpu
}  // namespace sru
}  // namespace keras_ndsru
