// XLA FFI handlers of the fused SRU recurrence for JAX (Lei et al. 2017,
// arXiv 1709.02755, eqs. (1)-(4)): the CPU targets.
//
//   KerasNdsruSruForwardCpu:  (u, x_highway, weight_c, bias, c0, lengths)
//                             -> (h, c_seq, h_last, c_last)
//   KerasNdsruSruBackwardCpu: (u, x_highway, weight_c, bias, c0, lengths,
//                              c_seq, grad_h, grad_h_last, grad_c_last)
//                             -> (grad_u, grad_x_highway, grad_weight_c,
//                                 grad_bias, grad_c0)
// both with attributes alpha (f64) and direction (string); shapes and dtypes
// in sru_jax_common.h. They run the framework-free CPU recurrence of
// ../kernels/sru_cpu.h (the TensorFlow CPU kernel's) on XLA's intra-op
// thread pool, for float32 and float64 (the Python wrapper casts
// float16/bfloat16 to float32 around a CPU call). The CUDA handlers are in
// sru_jax_ffi_cuda.cc; keras_ndsru/ops/sru_fused_jax.py registers the
// targets with `jax.ffi` and makes the backward one the forward one's
// gradient (`jax.custom_vjp`).
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>

#include "../kernels/sru_cpu.h"
#include "sru_jax_common.h"
#include "xla/ffi/api/ffi.h"

namespace keras_ndsru {
namespace sru {
namespace jax_ffi {
namespace {

// Chunks of [0, total) claimed by the calling thread and by tasks scheduled
// on XLA's pool. The caller waits for the chunks, not for the tasks: a task
// that starts late finds nothing left to claim and touches nothing of the
// caller's, so a busy pool cannot deadlock the call.
struct Chunks {
  int64_t count = 0;
  std::function<void(int64_t)> run;
  std::atomic<int64_t> next{0};
  std::mutex mu;
  std::condition_variable all_done;
  int64_t done = 0;

  void Work() {
    for (int64_t c = next.fetch_add(1); c < count; c = next.fetch_add(1)) {
      run(c);
      std::lock_guard<std::mutex> lock(mu);
      if (++done == count) all_done.notify_all();
    }
  }

  void Wait() {
    std::unique_lock<std::mutex> lock(mu);
    all_done.wait(lock, [this] { return done == count; });
  }
};

// XLA's intra-op thread pool as the parallel_for of sru_cpu.h.
class XlaParallelFor {
 public:
  explicit XlaParallelFor(ffi::ThreadPool& pool)
      : pool_(pool), threads_(std::max<int64_t>(0, pool.num_threads())) {}

  int num_threads() const { return static_cast<int>(threads_ + 1); }

  template <typename Shard>
  void operator()(int64_t total, int64_t cost, const Shard& shard) const {
    // About 50 us of work per chunk at least: below that, waking a thread
    // costs more than it saves.
    constexpr int64_t kMinChunkCost = 100000;
    const int64_t by_cost = total * std::max<int64_t>(1, cost) / kMinChunkCost;
    const int64_t chunks =
        std::min<int64_t>({total, threads_ + 1, std::max<int64_t>(1, by_cost)});
    if (chunks <= 1) {
      shard(0, total);
      return;
    }
    auto state = std::make_shared<Chunks>();
    state->count = chunks;
    state->run = [&shard, total, chunks](int64_t c) {
      shard(total * c / chunks, total * (c + 1) / chunks);
    };
    for (int64_t i = 0; i + 1 < chunks; ++i) {
      pool_.Schedule([state] { state->Work(); });
    }
    state->Work();
    state->Wait();
  }

 private:
  ffi::ThreadPool& pool_;
  int64_t threads_;
};

ffi::Error CheckCpuDtype(const ffi::AnyBuffer& u) {
  if (u.element_type() == ffi::DataType::F32 ||
      u.element_type() == ffi::DataType::F64) {
    return ffi::Error::Success();
  }
  return Invalid(
      "the CPU kernels take float32 or float64 (cast float16/bfloat16 to "
      "float32 around them). Received: u.dtype=" +
      std::to_string(static_cast<int>(u.element_type())));
}

ffi::Error CheckLengths(const Dims& n, const ffi::AnyBuffer& lengths) {
  const int32_t* len = static_cast<const int32_t*>(lengths.untyped_data());
  for (int64_t b = 0; b < n.batch; ++b) {
    if (len[b] < 0 || len[b] > n.steps) {
      return Invalid("`lengths` must lie in [0, time] = [0, " +
                     std::to_string(n.steps) + "]. Received: lengths[" +
                     std::to_string(b) + "]=" + std::to_string(len[b]));
    }
  }
  return ffi::Error::Success();
}

ffi::Error SruForwardCpu(ffi::ThreadPool pool, ffi::AnyBuffer u,
                         ffi::AnyBuffer x_highway, ffi::AnyBuffer weight_c,
                         ffi::AnyBuffer bias, ffi::AnyBuffer c0,
                         ffi::AnyBuffer lengths, ffi::Result<ffi::AnyBuffer> h,
                         ffi::Result<ffi::AnyBuffer> c_seq,
                         ffi::Result<ffi::AnyBuffer> h_last,
                         ffi::Result<ffi::AnyBuffer> c_last, double alpha,
                         std::string_view direction) {
  Dims n;
  KERAS_NDSRU_RETURN_IF_ERROR(
      CheckOperands(u, x_highway, weight_c, bias, c0, lengths, direction, &n));
  KERAS_NDSRU_RETURN_IF_ERROR(CheckCpuDtype(u));
  KERAS_NDSRU_RETURN_IF_ERROR(CheckLengths(n, lengths));
  const XlaParallelFor threads(pool);
  if (u.element_type() == ffi::DataType::F64) {
    cpu::sru_forward(n,
                     ForwardPointers<double, double>(u, x_highway, weight_c,
                                                     bias, c0, lengths, alpha,
                                                     h, c_seq, h_last, c_last),
                     threads.num_threads(), threads);
  } else {
    cpu::sru_forward(n,
                     ForwardPointers<float, float>(u, x_highway, weight_c,
                                                   bias, c0, lengths, alpha, h,
                                                   c_seq, h_last, c_last),
                     threads.num_threads(), threads);
  }
  return ffi::Error::Success();
}

template <typename T>
void BackwardCpu(const Dims& n, const XlaParallelFor& threads,
                 const ffi::AnyBuffer& u, const ffi::AnyBuffer& x_highway,
                 const ffi::AnyBuffer& weight_c, const ffi::AnyBuffer& bias,
                 const ffi::AnyBuffer& c0, const ffi::AnyBuffer& lengths,
                 const ffi::AnyBuffer& c_seq, const ffi::AnyBuffer& grad_h,
                 const ffi::AnyBuffer& grad_h_last,
                 const ffi::AnyBuffer& grad_c_last, double alpha,
                 ffi::Result<ffi::AnyBuffer>& grad_u,
                 ffi::Result<ffi::AnyBuffer>& grad_x_highway,
                 ffi::Result<ffi::AnyBuffer>& grad_weight_c,
                 ffi::Result<ffi::AnyBuffer>& grad_bias,
                 ffi::Result<ffi::AnyBuffer>& grad_c0) {
  // Every element is written by the kernels: no zero-fill.
  const int64_t partial = n.batch * 2 * n.dirs * n.units;
  const std::unique_ptr<T[]> partials(new T[2 * partial]);
  T* weight_c_partial = partials.get();
  T* bias_partial = weight_c_partial + partial;
  cpu::sru_backward(
      n,
      BackwardPointers<T, T>(u, x_highway, weight_c, bias, c0, lengths, c_seq,
                             grad_h, grad_h_last, grad_c_last, alpha, grad_u,
                             grad_x_highway, grad_c0, weight_c_partial,
                             bias_partial),
      threads.num_threads(), threads,
      static_cast<T*>(grad_weight_c->untyped_data()),
      static_cast<T*>(grad_bias->untyped_data()));
}

ffi::Error SruBackwardCpu(
    ffi::ThreadPool pool, ffi::AnyBuffer u, ffi::AnyBuffer x_highway,
    ffi::AnyBuffer weight_c, ffi::AnyBuffer bias, ffi::AnyBuffer c0,
    ffi::AnyBuffer lengths, ffi::AnyBuffer c_seq, ffi::AnyBuffer grad_h,
    ffi::AnyBuffer grad_h_last, ffi::AnyBuffer grad_c_last,
    ffi::Result<ffi::AnyBuffer> grad_u,
    ffi::Result<ffi::AnyBuffer> grad_x_highway,
    ffi::Result<ffi::AnyBuffer> grad_weight_c,
    ffi::Result<ffi::AnyBuffer> grad_bias, ffi::Result<ffi::AnyBuffer> grad_c0,
    double alpha, std::string_view direction) {
  Dims n;
  KERAS_NDSRU_RETURN_IF_ERROR(
      CheckOperands(u, x_highway, weight_c, bias, c0, lengths, direction, &n,
                    {&c_seq, &grad_h, &grad_h_last, &grad_c_last}));
  KERAS_NDSRU_RETURN_IF_ERROR(CheckCpuDtype(u));
  KERAS_NDSRU_RETURN_IF_ERROR(CheckLengths(n, lengths));
  const XlaParallelFor threads(pool);
  if (u.element_type() == ffi::DataType::F64) {
    BackwardCpu<double>(n, threads, u, x_highway, weight_c, bias, c0, lengths,
                        c_seq, grad_h, grad_h_last, grad_c_last, alpha, grad_u,
                        grad_x_highway, grad_weight_c, grad_bias, grad_c0);
  } else {
    BackwardCpu<float>(n, threads, u, x_highway, weight_c, bias, c0, lengths,
                       c_seq, grad_h, grad_h_last, grad_c_last, alpha, grad_u,
                       grad_x_highway, grad_weight_c, grad_bias, grad_c0);
  }
  return ffi::Error::Success();
}

}  // namespace
}  // namespace jax_ffi
}  // namespace sru
}  // namespace keras_ndsru

namespace ffi = ::xla::ffi;
using keras_ndsru::sru::jax_ffi::BackwardSignature;
using keras_ndsru::sru::jax_ffi::ForwardSignature;

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    KerasNdsruSruForwardCpu, keras_ndsru::sru::jax_ffi::SruForwardCpu,
    ForwardSignature(ffi::Ffi::Bind().Ctx<ffi::ThreadPool>()));

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    KerasNdsruSruBackwardCpu, keras_ndsru::sru::jax_ffi::SruBackwardCpu,
    BackwardSignature(ffi::Ffi::Bind()
        .Ctx<ffi::ThreadPool>()));
