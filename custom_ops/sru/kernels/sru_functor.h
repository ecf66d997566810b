// The SRU recurrence for one (batch, direction, unit) column, shared by the
// CPU kernel (sru_kernels.cc), the CUDA kernel (sru_kernels.cu) and the host
// check of the CUDA kernel's logic. No TensorFlow and no CUDA headers here.
//
// Lei et al., "Simple Recurrent Units for Highly Parallelizable Recurrence"
// (arXiv 1709.02755), eqs. (1)-(4) with v-terms and highway scaling alpha:
//   f_t = sigmoid(W_f x_t + v_f * c_{t-1} + b_f)
//   r_t = sigmoid(W_r x_t + v_r * c_{t-1} + b_r)
//   c_t = f_t * c_{t-1} + (1 - f_t) * (W x_t)
//   h_t = r_t * c_t + (1 - r_t) * x_highway_t * alpha
//
// Layout (row-major, batch-major; the same as keras_ndsru/ops/sru_reference.py):
//   u          [B, L, D, 3, d]   blocks W x | W_f x | W_r x
//   x_highway  [B, L, D, d]
//   weight_c   [D, 2, d]         v_f | v_r        (state type S)
//   bias       [D, 2, d]         b_f | b_r        (state type S)
//   c0         [B, D, d]                          (state type S)
//   lengths    [B]               right padding: steps t >= lengths[b] are invalid
//   h          [B, L, D, d]      0 at invalid steps
//   c_seq      [B, L, D, d]      c after step t (the carried c at invalid steps)
//   h_last, c_last [B, D, d]
// Direction dir runs backward in time when (reverse_mask >> dir) & 1.
//
// T is the storage type of u, x_highway and h (float, double, half, bfloat16);
// S is the state/accumulation type (float, or double when T is double).
// Conversions use static_cast, which Eigen::half/bfloat16 and CUDA's
// __half/__nv_bfloat16 all provide.
#ifndef KERAS_NDSRU_SRU_FUNCTOR_H_
#define KERAS_NDSRU_SRU_FUNCTOR_H_

#include <cmath>
#include <cstdint>
#include <string_view>

#if defined(__CUDACC__)
#define SRU_HD __host__ __device__ __forceinline__
#else
#define SRU_HD inline
#endif

namespace keras_ndsru {
namespace sru {

struct Dims {
  int64_t batch;  // B
  int64_t steps;  // L
  int64_t dirs;   // D (1 or 2)
  int64_t units;  // d
  int32_t reverse_mask;  // bit k set: direction k runs from the end
};

// The `direction` attribute of every binding as (dirs, reverse_mask):
// "forward", "backward", or "bidirectional" (direction 0 forward, direction 1
// backward). False for any other string; the binding reports it.
inline bool parse_direction(std::string_view direction, int64_t* dirs,
                            int32_t* reverse_mask) {
  if (direction == "forward" || direction == "backward") {
    *dirs = 1;
    *reverse_mask = direction == "backward" ? 1 : 0;
  } else if (direction == "bidirectional") {
    *dirs = 2;
    *reverse_mask = 2;
  } else {
    return false;
  }
  return true;
}

template <typename T, typename S>
struct ForwardArgs {
  const T* u;
  const T* x_highway;
  const S* weight_c;
  const S* bias;
  const S* c0;  // may be null: zeros
  const int32_t* lengths;
  S alpha;
  T* h;
  S* c_seq;
  T* h_last;
  S* c_last;
};

template <typename T, typename S>
struct BackwardArgs {
  const T* u;
  const T* x_highway;
  const S* weight_c;
  const S* bias;
  const S* c0;  // may be null: zeros
  const int32_t* lengths;
  S alpha;
  const S* c_seq;
  const T* grad_h;       // [B, L, D, d]
  const T* grad_h_last;  // [B, D, d], may be null
  const S* grad_c_last;  // [B, D, d], may be null
  T* grad_u;             // [B, L, D, 3, d]
  T* grad_x_highway;     // [B, L, D, d]
  S* grad_c0;            // [B, D, d]
  // Per-batch partials [B, D, 2, d] of the weight_c and bias gradients; the
  // caller sums them over the batch in a fixed order (deterministic).
  S* grad_weight_c_partial;
  S* grad_bias_partial;
};

template <typename S>
SRU_HD S sigmoid(S a) {
#if defined(__CUDA_ARCH__)
  return S(1) / (S(1) + exp(-a));  // CUDA's float overload (expf)
#else
  return S(1) / (S(1) + std::exp(-a));
#endif
}

// Offsets of column (b, dir, j) at step t.
SRU_HD int64_t u_offset(const Dims& n, int64_t b, int64_t t, int64_t dir,
                        int64_t j) {
  return ((b * n.steps + t) * n.dirs + dir) * 3 * n.units + j;
}
SRU_HD int64_t h_offset(const Dims& n, int64_t b, int64_t t, int64_t dir,
                        int64_t j) {
  return ((b * n.steps + t) * n.dirs + dir) * n.units + j;
}
SRU_HD int64_t state_offset(const Dims& n, int64_t b, int64_t dir, int64_t j) {
  return (b * n.dirs + dir) * n.units + j;
}
SRU_HD int64_t param_offset(const Dims& n, int64_t dir, int64_t gate,
                            int64_t j) {
  return (dir * 2 + gate) * n.units + j;
}
SRU_HD int64_t valid_steps(const Dims& n, const int32_t* lengths, int64_t b) {
  int64_t len = lengths ? lengths[b] : n.steps;
  return len < 0 ? 0 : (len > n.steps ? n.steps : len);
}

// Runs the whole time loop of one column. The inputs of step s + 1 are loaded
// before step s is computed so a GPU thread is not stalled on each load.
template <typename T, typename S>
SRU_HD void forward_column(const Dims& n, const ForwardArgs<T, S>& a,
                           int64_t b, int64_t dir, int64_t j) {
  const bool reverse = (n.reverse_mask >> dir) & 1;
  const int64_t len = valid_steps(n, a.lengths, b);
  const int64_t d = n.units;
  const S v_f = a.weight_c[param_offset(n, dir, 0, j)];
  const S v_r = a.weight_c[param_offset(n, dir, 1, j)];
  const S b_f = a.bias[param_offset(n, dir, 0, j)];
  const S b_r = a.bias[param_offset(n, dir, 1, j)];
  const int64_t so = state_offset(n, b, dir, j);
  S c = a.c0 ? a.c0[so] : S(0);
  S h_last = S(0);

  // Padded steps: h = 0, c carried.
  for (int64_t t = len; t < n.steps; ++t) {
    a.h[h_offset(n, b, t, dir, j)] = T(0);
  }
  S u0 = 0, u1 = 0, u2 = 0, x = 0;
  if (len > 0) {
    const int64_t t = reverse ? len - 1 : 0;
    const int64_t uo = u_offset(n, b, t, dir, j);
    u0 = static_cast<S>(a.u[uo]);
    u1 = static_cast<S>(a.u[uo + d]);
    u2 = static_cast<S>(a.u[uo + 2 * d]);
    x = static_cast<S>(a.x_highway[h_offset(n, b, t, dir, j)]);
  }
  for (int64_t s = 0; s < len; ++s) {
    const int64_t t = reverse ? len - 1 - s : s;
    const S cu0 = u0, cu1 = u1, cu2 = u2, cx = x;
    if (s + 1 < len) {
      const int64_t tn = reverse ? t - 1 : t + 1;
      const int64_t uo = u_offset(n, b, tn, dir, j);
      u0 = static_cast<S>(a.u[uo]);
      u1 = static_cast<S>(a.u[uo + d]);
      u2 = static_cast<S>(a.u[uo + 2 * d]);
      x = static_cast<S>(a.x_highway[h_offset(n, b, tn, dir, j)]);
    }
    const S f = sigmoid(cu1 + v_f * c + b_f);
    const S r = sigmoid(cu2 + v_r * c + b_r);
    c = f * c + (S(1) - f) * cu0;
    const S h = r * c + (S(1) - r) * cx * a.alpha;
    const int64_t ho = h_offset(n, b, t, dir, j);
    a.h[ho] = static_cast<T>(h);
    a.c_seq[ho] = c;
    h_last = h;
  }
  for (int64_t t = len; t < n.steps; ++t) {
    a.c_seq[h_offset(n, b, t, dir, j)] = c;
  }
  a.h_last[so] = static_cast<T>(h_last);
  a.c_last[so] = c;
}

// Backward through time of one column, recomputing the gates from u and the
// saved c sequence. Writes grad_u, grad_x_highway and grad_c0 for the column
// and its per-batch partials of the weight_c / bias gradients.
template <typename T, typename S>
SRU_HD void backward_column(const Dims& n, const BackwardArgs<T, S>& a,
                            int64_t b, int64_t dir, int64_t j) {
  const bool reverse = (n.reverse_mask >> dir) & 1;
  const int64_t len = valid_steps(n, a.lengths, b);
  const int64_t d = n.units;
  const S v_f = a.weight_c[param_offset(n, dir, 0, j)];
  const S v_r = a.weight_c[param_offset(n, dir, 1, j)];
  const S b_f = a.bias[param_offset(n, dir, 0, j)];
  const S b_r = a.bias[param_offset(n, dir, 1, j)];
  const int64_t so = state_offset(n, b, dir, j);
  const S c_init = a.c0 ? a.c0[so] : S(0);

  for (int64_t t = len; t < n.steps; ++t) {
    const int64_t uo = u_offset(n, b, t, dir, j);
    a.grad_u[uo] = T(0);
    a.grad_u[uo + d] = T(0);
    a.grad_u[uo + 2 * d] = T(0);
    a.grad_x_highway[h_offset(n, b, t, dir, j)] = T(0);
  }
  S gc = a.grad_c_last ? a.grad_c_last[so] : S(0);
  S g_vf = 0, g_vr = 0, g_bf = 0, g_br = 0;
  // As in forward_column, the inputs of the next step (s - 1) are loaded
  // before step s is computed; c_{t-1} of one step is c_t of the next, so
  // each c is read once.
  S u0 = 0, u1 = 0, u2 = 0, x = 0, g = 0, c_next = 0, c_prev_next = c_init;
  if (len > 0) {
    const int64_t t = reverse ? 0 : len - 1;
    const int64_t uo = u_offset(n, b, t, dir, j);
    const int64_t ho = h_offset(n, b, t, dir, j);
    u0 = static_cast<S>(a.u[uo]);
    u1 = static_cast<S>(a.u[uo + d]);
    u2 = static_cast<S>(a.u[uo + 2 * d]);
    x = static_cast<S>(a.x_highway[ho]);
    g = static_cast<S>(a.grad_h[ho]);
    c_next = a.c_seq[ho];
    if (len > 1) {
      c_prev_next = a.c_seq[h_offset(n, b, reverse ? 1 : len - 2, dir, j)];
    }
  }
  for (int64_t s = len - 1; s >= 0; --s) {
    const int64_t t = reverse ? len - 1 - s : s;
    const int64_t uo = u_offset(n, b, t, dir, j);
    const int64_t ho = h_offset(n, b, t, dir, j);
    const S cu0 = u0, cu1 = u1, cu2 = u2, cx = x;
    const S c = c_next, c_prev = c_prev_next;
    S gh = g;
    if (s > 0) {
      const int64_t tn = reverse ? t + 1 : t - 1;  // the next step processed
      const int64_t un = u_offset(n, b, tn, dir, j);
      const int64_t hn = h_offset(n, b, tn, dir, j);
      u0 = static_cast<S>(a.u[un]);
      u1 = static_cast<S>(a.u[un + d]);
      u2 = static_cast<S>(a.u[un + 2 * d]);
      x = static_cast<S>(a.x_highway[hn]);
      g = static_cast<S>(a.grad_h[hn]);
      c_next = c_prev;
      c_prev_next = s > 1 ? a.c_seq[h_offset(n, b, reverse ? tn + 1 : tn - 1,
                                             dir, j)]
                          : c_init;
    }
    const S f = sigmoid(cu1 + v_f * c_prev + b_f);
    const S r = sigmoid(cu2 + v_r * c_prev + b_r);

    if (s == len - 1 && a.grad_h_last) gh += static_cast<S>(a.grad_h_last[so]);
    const S gc_total = gc + gh * r;
    const S ga_r = gh * (c - cx * a.alpha) * r * (S(1) - r);
    const S ga_f = gc_total * (c_prev - cu0) * f * (S(1) - f);
    a.grad_u[uo] = static_cast<T>(gc_total * (S(1) - f));
    a.grad_u[uo + d] = static_cast<T>(ga_f);
    a.grad_u[uo + 2 * d] = static_cast<T>(ga_r);
    a.grad_x_highway[ho] = static_cast<T>(gh * (S(1) - r) * a.alpha);
    g_vf += ga_f * c_prev;
    g_vr += ga_r * c_prev;
    g_bf += ga_f;
    g_br += ga_r;
    gc = gc_total * f + ga_f * v_f + ga_r * v_r;
  }
  a.grad_c0[so] = gc;
  const int64_t po = (b * n.dirs + dir) * 2 * d + j;
  a.grad_weight_c_partial[po] = g_vf;
  a.grad_weight_c_partial[po + d] = g_vr;
  a.grad_bias_partial[po] = g_bf;
  a.grad_bias_partial[po + d] = g_br;
}

// Deterministic batch sum of the partials [B, D*2*d] -> [D*2*d], one output
// element per call, summed in batch order.
template <typename S>
SRU_HD void sum_partials(const S* partial, int64_t batch, int64_t width,
                         int64_t k, S* out) {
  S acc = 0;
  for (int64_t b = 0; b < batch; ++b) acc += partial[b * width + k];
  out[k] = acc;
}

}  // namespace sru
}  // namespace keras_ndsru

#endif  // KERAS_NDSRU_SRU_FUNCTOR_H_
