// Host build of the CUDA kernels (../kernels/sru_kernels.cu) with a C API for
// ctypes: tests/ops/test_sru_cuda_logic.py compiles this file with a plain
// C++ compiler (no CUDA, no TensorFlow) and compares the kernels' outputs with
// keras_ndsru.ops.sru_reference. Every (block, thread) index of each launch
// is run, so the thread -> column mapping, the bounds check, the launch
// configuration, both directions in one launch and the batch-sum kernel are
// exercised as on the GPU.
//
//   g++ -std=c++17 -O1 -shared -fPIC host_driver.cc -o libsru_host.so
#include "host_emulation.h"
// The kernels, compiled as host code:
#include "../kernels/sru_kernels.cu"

namespace {

using keras_ndsru::sru::BackwardArgs;
using keras_ndsru::sru::Dims;
using keras_ndsru::sru::ForwardArgs;
namespace gpu = keras_ndsru::sru::gpu;

// dtype codes of the C API.
enum DTypeCode { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2, kFloat64 = 3 };

Dims MakeDims(int64_t batch, int64_t steps, int64_t dirs, int64_t units,
              int32_t reverse_mask) {
  Dims dims;
  dims.batch = batch;
  dims.steps = steps;
  dims.dirs = dirs;
  dims.units = units;
  dims.reverse_mask = reverse_mask;
  return dims;
}

template <typename T, typename S>
const char* Forward(const Dims& dims, const void* u, const void* x_highway,
                    const void* weight_c, const void* bias, const void* c0,
                    const int32_t* lengths, double alpha, void* h, void* c_seq,
                    void* h_last, void* c_last) {
  ForwardArgs<T, S> a;
  a.u = static_cast<const T*>(u);
  a.x_highway = static_cast<const T*>(x_highway);
  a.weight_c = static_cast<const S*>(weight_c);
  a.bias = static_cast<const S*>(bias);
  a.c0 = static_cast<const S*>(c0);
  a.lengths = lengths;
  a.alpha = static_cast<S>(alpha);
  a.h = static_cast<T*>(h);
  a.c_seq = static_cast<S*>(c_seq);
  a.h_last = static_cast<T*>(h_last);
  a.c_last = static_cast<S*>(c_last);
  return gpu::LaunchSruForward<T, S>(nullptr, dims, a);
}

template <typename T, typename S>
const char* Backward(const Dims& dims, const void* const* in, double alpha,
                     void* const* out) {
  BackwardArgs<T, S> a;
  a.u = static_cast<const T*>(in[0]);
  a.x_highway = static_cast<const T*>(in[1]);
  a.weight_c = static_cast<const S*>(in[2]);
  a.bias = static_cast<const S*>(in[3]);
  a.c0 = static_cast<const S*>(in[4]);
  a.lengths = static_cast<const int32_t*>(in[5]);
  a.alpha = static_cast<S>(alpha);
  a.c_seq = static_cast<const S*>(in[6]);
  a.grad_h = static_cast<const T*>(in[7]);
  a.grad_h_last = static_cast<const T*>(in[8]);
  a.grad_c_last = static_cast<const S*>(in[9]);
  a.grad_u = static_cast<T*>(out[0]);
  a.grad_x_highway = static_cast<T*>(out[1]);
  a.grad_c0 = static_cast<S*>(out[4]);
  a.grad_weight_c_partial = static_cast<S*>(out[5]);
  a.grad_bias_partial = static_cast<S*>(out[6]);
  return gpu::LaunchSruBackward<T, S>(nullptr, dims, a,
                                      static_cast<S*>(out[2]),
                                      static_cast<S*>(out[3]));
}

}  // namespace

extern "C" {

// Multiprocessor count the launch configuration assumes (default 132).
void sru_host_set_multiprocessors(int count) {
  gpu::EmulatedMultiprocessorCountRef() = count;
}

// Blocks, threads per block and number of launches so far.
void sru_host_last_launch(int64_t* blocks, int* threads, int64_t* launches) {
  const gpu::EmulatedLaunchRecord& record = gpu::LastEmulatedLaunch();
  *blocks = record.blocks;
  *threads = record.threads;
  *launches = record.launches;
}

void sru_host_launch_config(int64_t columns, int multiprocessors,
                            int64_t* blocks, int* threads) {
  const gpu::LaunchConfig config =
      gpu::ColumnLaunchConfig(columns, multiprocessors);
  *blocks = config.blocks;
  *threads = config.threads;
}

// The column (batch, direction, unit) a kernel thread runs.
void sru_host_column_of_thread(int64_t batch, int64_t dirs, int64_t units,
                               int64_t thread, int64_t* column) {
  const gpu::Column c =
      gpu::ColumnOfThread(MakeDims(batch, 1, dirs, units, 0), thread);
  column[0] = c.batch;
  column[1] = c.dir;
  column[2] = c.unit;
}

// Returns nullptr on success, else the launch error. 16-bit types are passed
// as their bits (uint16). c0 and lengths may be null.
const char* sru_host_forward(int dtype, int64_t batch, int64_t steps,
                             int64_t dirs, int64_t units, int32_t reverse_mask,
                             const void* u, const void* x_highway,
                             const void* weight_c, const void* bias,
                             const void* c0, const int32_t* lengths,
                             double alpha, void* h, void* c_seq, void* h_last,
                             void* c_last) {
  const Dims dims = MakeDims(batch, steps, dirs, units, reverse_mask);
  switch (dtype) {
    case kFloat32:
      return Forward<float, float>(dims, u, x_highway, weight_c, bias, c0,
                                   lengths, alpha, h, c_seq, h_last, c_last);
    case kFloat16:
      return Forward<gpu::Float16Storage, float>(dims, u, x_highway, weight_c,
                                                 bias, c0, lengths, alpha, h,
                                                 c_seq, h_last, c_last);
    case kBFloat16:
      return Forward<gpu::BFloat16Storage, float>(
          dims, u, x_highway, weight_c, bias, c0, lengths, alpha, h, c_seq,
          h_last, c_last);
    case kFloat64:
      return Forward<double, double>(dims, u, x_highway, weight_c, bias, c0,
                                     lengths, alpha, h, c_seq, h_last, c_last);
  }
  return "unknown dtype code";
}

// in: u, x_highway, weight_c, bias, c0, lengths, c_seq, grad_h, grad_h_last,
//     grad_c_last (c0, lengths, grad_h_last, grad_c_last may be null)
// out: grad_u, grad_x_highway, grad_weight_c, grad_bias, grad_c0,
//      weight_c partials, bias partials
const char* sru_host_backward(int dtype, int64_t batch, int64_t steps,
                              int64_t dirs, int64_t units,
                              int32_t reverse_mask, const void* const* in,
                              double alpha, void* const* out) {
  const Dims dims = MakeDims(batch, steps, dirs, units, reverse_mask);
  switch (dtype) {
    case kFloat32:
      return Backward<float, float>(dims, in, alpha, out);
    case kFloat16:
      return Backward<gpu::Float16Storage, float>(dims, in, alpha, out);
    case kBFloat16:
      return Backward<gpu::BFloat16Storage, float>(dims, in, alpha, out);
    case kFloat64:
      return Backward<double, double>(dims, in, alpha, out);
  }
  return "unknown dtype code";
}

}  // extern "C"
