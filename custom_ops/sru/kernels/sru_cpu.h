// The CPU recurrence of the fused SRU op, framework-free: shared by the
// TensorFlow CPU kernel (sru_kernels.cc), the PyTorch custom operators
// (../torch/sru_torch_ops.cc) and the XLA FFI handlers of JAX
// (../jax/sru_jax_ffi.cc). Each framework supplies only its thread pool.
//
// The math is the per-column recurrence of sru_functor.h (Lei et al. 2017,
// arXiv 1709.02755, eqs. (1)-(4)). A column's time loop is sequential, so
// instead of one column at a time a work item walks one (batch, direction)
// row and a block of consecutive units through time: the inner loop runs over
// units, which are contiguous in every tensor, and the compiler vectorizes
// it, exp included (fast_exp below has no libm call). On x86-64 the float and
// double entry points (sru_cpu.cc) are compiled for SSE2, AVX2+FMA and
// AVX-512 and the best one is picked at load time (GCC/Clang function
// multiversioning); other storage types (half, bfloat16) use the generic
// templates below.
#ifndef KERAS_NDSRU_SRU_CPU_H_
#define KERAS_NDSRU_SRU_CPU_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

#include "sru_functor.h"

#define SRU_ALWAYS_INLINE inline __attribute__((always_inline))

namespace keras_ndsru {
namespace sru {
namespace cpu {

// exp(x) without a libm call, so loops over it vectorize: Cody-Waite range
// reduction x = n ln2 + r, |r| <= ln2 / 2, a polynomial for exp(r) and 2^n
// built in the exponent bits. Relative error: float <= 2 ulp (Cephes expf
// polynomial), double <= a few ulp (Taylor to degree 13). Inputs are clamped
// to the normal range, which only matters far in the sigmoid's flat tails
// (absolute error < 1e-37); NaN propagates through the polynomial.
SRU_ALWAYS_INLINE float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float round_magic = 12582912.0f;  // 1.5 * 2^23: add/sub rounds
  const float n = (x * 1.44269504088896341f + round_magic) - round_magic;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

SRU_ALWAYS_INLINE double fast_exp(double x) {
  x = x < -708.0 ? -708.0 : x;
  x = x > 709.0 ? 709.0 : x;
  const double round_magic = 6755399441055744.0;  // 1.5 * 2^52
  const double n = (x * 1.4426950408889634074 + round_magic) - round_magic;
  double r = x - n * 6.93147180369123816490e-01;
  r = r - n * 1.90821492927058770002e-10;
  // Taylor coefficients 1/k!, k = 13 .. 2.
  double p = 1.6059043836821614599e-10;
  p = p * r + 2.0876756987868098979e-09;
  p = p * r + 2.5052108385441718775e-08;
  p = p * r + 2.7557319223985890653e-07;
  p = p * r + 2.7557319223985890653e-06;
  p = p * r + 2.4801587301587301587e-05;
  p = p * r + 1.9841269841269841270e-04;
  p = p * r + 1.3888888888888888889e-03;
  p = p * r + 8.3333333333333333333e-03;
  p = p * r + 4.1666666666666666667e-02;
  p = p * r + 1.6666666666666666667e-01;
  p = p * r + 0.5;
  p = p * r * r + r + 1.0;
  const int64_t bits = (static_cast<int64_t>(n) + 1023) << 52;
  double scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

template <typename S>
SRU_ALWAYS_INLINE S fast_sigmoid(S a) {
  return S(1) / (S(1) + fast_exp(-a));
}

// Largest unit block of one work item.
constexpr int64_t kMaxBlock = 2048;
// Per-item scratch arrays of the forward and backward block functions.
constexpr int kForwardScratch = 1;
constexpr int kBackwardScratch = 6;

// One forward step of a row block: the elementwise eqs. (1)-(4) over n
// contiguous units. `c` holds the carried state and is updated in place.
template <typename T, typename S>
SRU_ALWAYS_INLINE void forward_step(
    int64_t n, const T* __restrict u0, const T* __restrict u1,
    const T* __restrict u2, const T* __restrict x, const S* __restrict v_f,
    const S* __restrict v_r, const S* __restrict b_f, const S* __restrict b_r,
    S alpha, S* __restrict c, T* __restrict h, S* __restrict c_out) {
  for (int64_t j = 0; j < n; ++j) {
    const S c_prev = c[j];
    const S f = fast_sigmoid(static_cast<S>(u1[j]) + v_f[j] * c_prev + b_f[j]);
    const S r = fast_sigmoid(static_cast<S>(u2[j]) + v_r[j] * c_prev + b_r[j]);
    const S c_new = f * c_prev + (S(1) - f) * static_cast<S>(u0[j]);
    const S h_new = r * c_new + (S(1) - r) * static_cast<S>(x[j]) * alpha;
    c[j] = c_new;
    c_out[j] = c_new;
    h[j] = static_cast<T>(h_new);
  }
}

// One backward step of a row block (the derivation is backward_column in
// sru_functor.h). `gc` carries dL/dc from the later steps; the four
// accumulators collect the weight_c / bias gradients of this row.
template <typename T, typename S, bool kWithGradHLast>
SRU_ALWAYS_INLINE void backward_step(
    int64_t n, const T* __restrict u0, const T* __restrict u1,
    const T* __restrict u2, const T* __restrict x, const S* __restrict c_cur,
    const S* __restrict c_prev, const T* __restrict grad_h,
    const T* __restrict grad_h_last, const S* __restrict v_f,
    const S* __restrict v_r, const S* __restrict b_f, const S* __restrict b_r,
    S alpha, S* __restrict gc, S* __restrict g_vf, S* __restrict g_vr,
    S* __restrict g_bf, S* __restrict g_br, T* __restrict gu0,
    T* __restrict gu1, T* __restrict gu2, T* __restrict gx) {
  for (int64_t j = 0; j < n; ++j) {
    const S cp = c_prev[j];
    const S c = c_cur[j];
    const S f = fast_sigmoid(static_cast<S>(u1[j]) + v_f[j] * cp + b_f[j]);
    const S r = fast_sigmoid(static_cast<S>(u2[j]) + v_r[j] * cp + b_r[j]);
    S gh = static_cast<S>(grad_h[j]);
    if (kWithGradHLast) gh += static_cast<S>(grad_h_last[j]);
    const S gc_total = gc[j] + gh * r;
    const S ga_r = gh * (c - static_cast<S>(x[j]) * alpha) * r * (S(1) - r);
    const S ga_f = gc_total * (cp - static_cast<S>(u0[j])) * f * (S(1) - f);
    gu0[j] = static_cast<T>(gc_total * (S(1) - f));
    gu1[j] = static_cast<T>(ga_f);
    gu2[j] = static_cast<T>(ga_r);
    gx[j] = static_cast<T>(gh * (S(1) - r) * alpha);
    g_vf[j] += ga_f * cp;
    g_vr[j] += ga_r * cp;
    g_bf[j] += ga_f;
    g_br[j] += ga_r;
    gc[j] = gc_total * f + ga_f * v_f[j] + ga_r * v_r[j];
  }
}

// A work item: one (batch, direction) row and units [j0, j0 + nb).
struct Block {
  int64_t b, dir, j0, nb;
};

template <typename T, typename S>
SRU_ALWAYS_INLINE void forward_block(const Dims& n, const ForwardArgs<T, S>& a,
                                     const Block& k, S* scratch) {
  const bool reverse = (n.reverse_mask >> k.dir) & 1;
  const int64_t len = valid_steps(n, a.lengths, k.b);
  const int64_t d = n.units;
  const S* v_f = a.weight_c + param_offset(n, k.dir, 0, k.j0);
  const S* v_r = a.weight_c + param_offset(n, k.dir, 1, k.j0);
  const S* b_f = a.bias + param_offset(n, k.dir, 0, k.j0);
  const S* b_r = a.bias + param_offset(n, k.dir, 1, k.j0);
  const int64_t so = state_offset(n, k.b, k.dir, k.j0);
  S* c = scratch;
  for (int64_t j = 0; j < k.nb; ++j) c[j] = a.c0 ? a.c0[so + j] : S(0);
  for (int64_t s = 0; s < len; ++s) {
    const int64_t t = reverse ? len - 1 - s : s;
    const int64_t uo = u_offset(n, k.b, t, k.dir, k.j0);
    const int64_t ho = h_offset(n, k.b, t, k.dir, k.j0);
    forward_step<T, S>(k.nb, a.u + uo, a.u + uo + d, a.u + uo + 2 * d,
                       a.x_highway + ho, v_f, v_r, b_f, b_r, a.alpha, c,
                       a.h + ho, a.c_seq + ho);
  }
  const int64_t last = reverse ? 0 : len - 1;  // the step processed last
  for (int64_t j = 0; j < k.nb; ++j) {
    a.h_last[so + j] =
        len > 0 ? a.h[h_offset(n, k.b, last, k.dir, k.j0) + j] : T(0);
    a.c_last[so + j] = c[j];
  }
  for (int64_t t = len; t < n.steps; ++t) {
    const int64_t ho = h_offset(n, k.b, t, k.dir, k.j0);
    for (int64_t j = 0; j < k.nb; ++j) {
      a.h[ho + j] = T(0);
      a.c_seq[ho + j] = c[j];
    }
  }
}

template <typename T, typename S>
SRU_ALWAYS_INLINE void backward_block(const Dims& n,
                                      const BackwardArgs<T, S>& a,
                                      const Block& k, S* scratch) {
  const bool reverse = (n.reverse_mask >> k.dir) & 1;
  const int64_t len = valid_steps(n, a.lengths, k.b);
  const int64_t d = n.units;
  const S* v_f = a.weight_c + param_offset(n, k.dir, 0, k.j0);
  const S* v_r = a.weight_c + param_offset(n, k.dir, 1, k.j0);
  const S* b_f = a.bias + param_offset(n, k.dir, 0, k.j0);
  const S* b_r = a.bias + param_offset(n, k.dir, 1, k.j0);
  const int64_t so = state_offset(n, k.b, k.dir, k.j0);
  S* zeros = scratch;
  S* gc = zeros + k.nb;
  S* g_vf = gc + k.nb;
  S* g_vr = g_vf + k.nb;
  S* g_bf = g_vr + k.nb;
  S* g_br = g_bf + k.nb;
  for (int64_t j = 0; j < k.nb; ++j) {
    zeros[j] = S(0);
    gc[j] = a.grad_c_last ? a.grad_c_last[so + j] : S(0);
    g_vf[j] = g_vr[j] = g_bf[j] = g_br[j] = S(0);
  }
  const S* c_init = a.c0 ? a.c0 + so : zeros;
  for (int64_t t = len; t < n.steps; ++t) {
    const int64_t uo = u_offset(n, k.b, t, k.dir, k.j0);
    const int64_t ho = h_offset(n, k.b, t, k.dir, k.j0);
    for (int64_t j = 0; j < k.nb; ++j) {
      a.grad_u[uo + j] = a.grad_u[uo + d + j] = a.grad_u[uo + 2 * d + j] = T(0);
      a.grad_x_highway[ho + j] = T(0);
    }
  }
  for (int64_t s = len - 1; s >= 0; --s) {
    const int64_t t = reverse ? len - 1 - s : s;
    const int64_t tp = reverse ? t + 1 : t - 1;  // step processed before t
    const int64_t uo = u_offset(n, k.b, t, k.dir, k.j0);
    const int64_t ho = h_offset(n, k.b, t, k.dir, k.j0);
    const S* c_prev =
        s > 0 ? a.c_seq + h_offset(n, k.b, tp, k.dir, k.j0) : c_init;
    const T* u = a.u + uo;
    T* gu = a.grad_u + uo;
    if (s == len - 1 && a.grad_h_last) {
      backward_step<T, S, true>(
          k.nb, u, u + d, u + 2 * d, a.x_highway + ho, a.c_seq + ho, c_prev,
          a.grad_h + ho, a.grad_h_last + so, v_f, v_r, b_f, b_r, a.alpha, gc,
          g_vf, g_vr, g_bf, g_br, gu, gu + d, gu + 2 * d,
          a.grad_x_highway + ho);
    } else {
      backward_step<T, S, false>(
          k.nb, u, u + d, u + 2 * d, a.x_highway + ho, a.c_seq + ho, c_prev,
          a.grad_h + ho, nullptr, v_f, v_r, b_f, b_r, a.alpha, gc, g_vf, g_vr,
          g_bf, g_br, gu, gu + d, gu + 2 * d, a.grad_x_highway + ho);
    }
  }
  const int64_t po = (k.b * n.dirs + k.dir) * 2 * d + k.j0;
  for (int64_t j = 0; j < k.nb; ++j) {
    a.grad_c0[so + j] = gc[j];
    a.grad_weight_c_partial[po + j] = g_vf[j];
    a.grad_weight_c_partial[po + d + j] = g_vr[j];
    a.grad_bias_partial[po + j] = g_bf[j];
    a.grad_bias_partial[po + d + j] = g_br[j];
  }
}

// Entry points per type. float and double get one clone per x86-64 level
// (defined in sru_cpu.cc); half and bfloat16 (converted to float per
// element) use these generic versions, not hot enough on CPU to pay the
// extra compile time.
template <typename T, typename S>
void run_forward_block(const Dims& n, const ForwardArgs<T, S>& a,
                       const Block& k, S* scratch) {
  forward_block(n, a, k, scratch);
}
template <typename T, typename S>
void run_backward_block(const Dims& n, const BackwardArgs<T, S>& a,
                        const Block& k, S* scratch) {
  backward_block(n, a, k, scratch);
}
void run_forward_block(const Dims& n, const ForwardArgs<float, float>& a,
                       const Block& k, float* scratch);
void run_forward_block(const Dims& n, const ForwardArgs<double, double>& a,
                       const Block& k, double* scratch);
void run_backward_block(const Dims& n, const BackwardArgs<float, float>& a,
                        const Block& k, float* scratch);
void run_backward_block(const Dims& n, const BackwardArgs<double, double>& a,
                        const Block& k, double* scratch);

// Whole (batch, direction) rows when there are enough of them for the
// threads: a row's time loop then reads and writes sequential streams, which
// the hardware prefetchers follow (a block of a row jumps by a whole row per
// step). With few rows, the units are split into blocks (multiples of 16).
inline int64_t choose_block(const Dims& n, int num_threads) {
  const int64_t rows = n.batch * n.dirs;
  int64_t block = std::min(n.units, kMaxBlock);
  while (block > 64 &&
         rows * ((n.units + block - 1) / block) < 4 * num_threads) {
    block = (block / 2 + 15) / 16 * 16;
  }
  return std::max<int64_t>(1, block);
}

// Runs fn(block, scratch) over all work items. `parallel_for(total, cost,
// shard)` is the framework's thread pool: it calls shard(begin, end) on
// disjoint ranges covering [0, total), `cost` being the estimated cost of one
// item; scratch has scratch_per_unit * block elements, reused within a shard.
template <typename S, typename ParallelFor, typename Fn>
void for_each_block(const Dims& n, int num_threads, int64_t cost_per_unit,
                    int scratch_per_unit, ParallelFor&& parallel_for, Fn fn) {
  if (n.batch == 0 || n.units == 0) return;
  const int64_t block = choose_block(n, num_threads);
  const int64_t blocks_per_row = (n.units + block - 1) / block;
  const int64_t total = n.batch * n.dirs * blocks_per_row;
  parallel_for(total, std::max<int64_t>(1, cost_per_unit * n.steps * block),
               [&](int64_t begin, int64_t end) {
                 // Initialized by the block functions: no zero-fill.
                 const std::unique_ptr<S[]> scratch(
                     new S[scratch_per_unit * block]);
                 for (int64_t i = begin; i < end; ++i) {
                   const int64_t row = i / blocks_per_row;
                   const int64_t j0 = (i % blocks_per_row) * block;
                   fn(Block{row / n.dirs, row % n.dirs, j0,
                            std::min(block, n.units - j0)},
                      scratch.get());
                 }
               });
}

// Fixed-order batch sum of the per-batch partials [B, width] -> [width]:
// same order, hence same values, as sum_partials in sru_functor.h; the batch
// loop is outside so the inner loop is contiguous.
template <typename S>
void sum_over_batch(const S* partial, int64_t batch, int64_t width, S* out) {
  std::fill(out, out + width, S(0));
  for (int64_t b = 0; b < batch; ++b) {
    const S* row = partial + b * width;
    for (int64_t k = 0; k < width; ++k) out[k] += row[k];
  }
}

// The forward recurrence: h, c_seq, h_last, c_last of `a`.
template <typename T, typename S, typename ParallelFor>
void sru_forward(const Dims& n, const ForwardArgs<T, S>& a, int num_threads,
                 ParallelFor&& parallel_for) {
  for_each_block<S>(n, num_threads, /*cost_per_unit=*/20, kForwardScratch,
                    parallel_for, [&](const Block& k, S* scratch) {
                      run_forward_block(n, a, k, scratch);
                    });
}

// The backward recurrence: grad_u, grad_x_highway, grad_c0 and the per-batch
// partials of `a`, then their batch sums into grad_weight_c and grad_bias
// ([D, 2, d] each): deterministic, independent of the threads.
template <typename T, typename S, typename ParallelFor>
void sru_backward(const Dims& n, const BackwardArgs<T, S>& a, int num_threads,
                  ParallelFor&& parallel_for, S* grad_weight_c, S* grad_bias) {
  for_each_block<S>(n, num_threads, /*cost_per_unit=*/40, kBackwardScratch,
                    parallel_for, [&](const Block& k, S* scratch) {
                      run_backward_block(n, a, k, scratch);
                    });
  const int64_t width = 2 * n.dirs * n.units;
  sum_over_batch(a.grad_weight_c_partial, n.batch, width, grad_weight_c);
  sum_over_batch(a.grad_bias_partial, n.batch, width, grad_bias);
}

}  // namespace cpu
}  // namespace sru
}  // namespace keras_ndsru

#endif  // KERAS_NDSRU_SRU_CPU_H_
