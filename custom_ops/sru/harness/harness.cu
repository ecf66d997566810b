// Standalone check and benchmark of the SRU CUDA kernels (no TensorFlow).
//
//   nvcc -std=c++17 -O3 -arch=sm_90 -o sru_harness -ldl
//        harness.cu ../kernels/sru_kernels.cu           (one command line)
//   ./sru_harness [--check] [--bench] [--quick]      (default: both, full)
//
// --check: forward and backward of every storage type (float32, float16,
//   bfloat16, float64), forward / backward / bidirectional directions, ragged
//   lengths with c0 and none of either, at sizes that are not multiples of
//   the block size, against an independent double-precision CPU transcription
//   of eqs. (1)-(4) and their backward (itself checked by central finite
//   differences first). Outputs are poisoned with NaN and have guard elements
//   after them; the batch sums of the weight_c / bias gradients must be
//   bitwise identical across runs.
// --bench: at batch 32 for (L, d) = (32, 256), (128, 512), (128, 1024) and at
//   B=256, L=128, d=2048: the recurrence forward and forward+backward (median
//   of CUDA-event timings), bytes read+written / time and the share of the
//   card's peak bandwidth (memoryBusWidth * memoryClockRate * 2) and of a
//   measured device-to-device copy; and, when cuBLAS can be dlopen'ed, the SRU
//   layer: the x W matmul (cublasSgemm, FP32 and TF32 math) + recurrence, and
//   for forward+backward also the two backward matmuls. One JSON line per
//   shape ("JSON {...}") for bench_vs_cudnn.py, and a table at the end.
//
// Host build (no GPU, no CUDA toolkit; checks the harness's own logic with
// the kernels run by host_emulation.h):
//   g++ -std=c++17 -O2 -DSRU_HOST_EMULATION_BUILD -x c++ harness.cu -o h
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#if defined(SRU_HOST_EMULATION_BUILD)
#include "host_emulation.h"
// The kernels, compiled as host code.
#include "../kernels/sru_kernels.cu"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include "../kernels/sru_kernels_gpu.h"
#endif

namespace {

using keras_ndsru::sru::BackwardArgs;
using keras_ndsru::sru::Dims;
using keras_ndsru::sru::ForwardArgs;
using keras_ndsru::sru::gpu::BFloat16Storage;
using keras_ndsru::sru::gpu::Float16Storage;
using keras_ndsru::sru::gpu::LaunchSruBackward;
using keras_ndsru::sru::gpu::LaunchSruForward;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "FATAL: %s\n", what.c_str());
  std::exit(2);
}
void CheckLaunch(const char* error, const char* what) {
  if (error != nullptr) Fail(std::string(what) + ": " + error);
}

// ---------------------------------------------------------------- device ---
#if defined(SRU_HOST_EMULATION_BUILD)
constexpr bool kEmulated = true;
using HalfConv = keras_ndsru::sru::gpu::DeviceHalf;
using BFloat16Conv = keras_ndsru::sru::gpu::DeviceBFloat16;
using Stream = void*;
void* DeviceAlloc(size_t bytes) { return std::malloc(bytes ? bytes : 1); }
void DeviceFree(void* p) { std::free(p); }
void CopyToDevice(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}
void CopyToHost(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}
void DeviceMemset(void* p, int value, size_t bytes) {
  std::memset(p, value, bytes);
}
void Synchronize(Stream) {}
Stream MakeStream() { return nullptr; }
struct Timer {
  std::chrono::steady_clock::time_point t0;
  void Start(Stream) { t0 = std::chrono::steady_clock::now(); }
  double StopMs(Stream) {
    return std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now() - t0)
        .count();
  }
};
std::string DeviceName() { return "host emulation (no GPU)"; }
double PeakGBs() { return 0.0; }
#else
constexpr bool kEmulated = false;
using HalfConv = __half;
using BFloat16Conv = __nv_bfloat16;
using Stream = cudaStream_t;
#define CUDA_CHECK(call)                                                  \
  do {                                                                    \
    const cudaError_t e = (call);                                         \
    if (e != cudaSuccess) {                                               \
      Fail(std::string(#call) + " failed: " + cudaGetErrorString(e));     \
    }                                                                     \
  } while (0)
void* DeviceAlloc(size_t bytes) {
  void* p = nullptr;
  CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 1));
  return p;
}
void DeviceFree(void* p) { CUDA_CHECK(cudaFree(p)); }
// cudaMemcpy / cudaMemset run on the legacy default stream, which the
// harness's non-blocking stream does not wait for (and a pageable H2D copy
// or a device memset may return before it is done): synchronize the device
// around them so kernels on `stream` see the data and the poison.
void CopyToDevice(void* dst, const void* src, size_t bytes) {
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaDeviceSynchronize());
}
void CopyToHost(void* dst, const void* src, size_t bytes) {
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
void DeviceMemset(void* p, int value, size_t bytes) {
  CUDA_CHECK(cudaMemset(p, value, bytes));
  CUDA_CHECK(cudaDeviceSynchronize());
}
void Synchronize(Stream s) { CUDA_CHECK(cudaStreamSynchronize(s)); }
Stream MakeStream() {
  cudaStream_t s;
  CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return s;
}
struct Timer {
  cudaEvent_t a = nullptr, b = nullptr;
  Timer() {
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
  }
  ~Timer() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
  void Start(Stream s) { CUDA_CHECK(cudaEventRecord(a, s)); }
  double StopMs(Stream s) {
    CUDA_CHECK(cudaEventRecord(b, s));
    CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    return ms;
  }
};
std::string DeviceName() {
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
         std::to_string(prop.minor) + ", " +
         std::to_string(prop.multiProcessorCount) + " SMs)";
}
// memoryBusWidth * memoryClockRate * 2 (DDR); cudaDeviceProp lost the clock
// field in CUDA 13, the attribute remains.
double PeakGBs() {
  int dev = 0, clock_khz = 0, bus_bits = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, dev));
  CUDA_CHECK(
      cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev));
  return 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;
}
#endif

template <typename E>
struct DeviceBuffer {
  static constexpr size_t kGuard = 8;  // poisoned elements after the data
  E* ptr = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(size_t count) : n(count) {
    ptr = static_cast<E*>(DeviceAlloc((n + kGuard) * sizeof(E)));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { DeviceFree(ptr); }
  void Upload(const std::vector<E>& v) {
    CopyToDevice(ptr, v.data(), n * sizeof(E));
  }
  // All-ones bytes: NaN in every float type.
  void Poison() { DeviceMemset(ptr, 0xff, (n + kGuard) * sizeof(E)); }
  std::vector<E> Download(bool* guard_ok = nullptr) const {
    std::vector<E> all(n + kGuard);
    CopyToHost(all.data(), ptr, (n + kGuard) * sizeof(E));
    if (guard_ok != nullptr) {
      const unsigned char* bytes =
          reinterpret_cast<const unsigned char*>(all.data() + n);
      *guard_ok = std::all_of(bytes, bytes + kGuard * sizeof(E),
                              [](unsigned char c) { return c == 0xff; });
    }
    all.resize(n);
    return all;
  }
};

// Storage type <-> double, rounding to nearest even like the GPU does.
template <typename E>
struct Store {
  static E To(double v) { return static_cast<E>(v); }
  static double From(E v) { return static_cast<double>(v); }
  static const char* Name() { return sizeof(E) == 8 ? "float64" : "float32"; }
};
template <>
struct Store<Float16Storage> {
  static Float16Storage To(double v) {
    const HalfConv h(static_cast<float>(v));
    Float16Storage s;
    std::memcpy(&s, &h, sizeof(s));
    return s;
  }
  static double From(Float16Storage s) {
    HalfConv h;
    std::memcpy(&h, &s, sizeof(s));
    return static_cast<float>(h);
  }
  static const char* Name() { return "float16"; }
};
template <>
struct Store<BFloat16Storage> {
  static BFloat16Storage To(double v) {
    const BFloat16Conv h(static_cast<float>(v));
    BFloat16Storage s;
    std::memcpy(&s, &h, sizeof(s));
    return s;
  }
  static double From(BFloat16Storage s) {
    BFloat16Conv h;
    std::memcpy(&h, &s, sizeof(s));
    return static_cast<float>(h);
  }
  static const char* Name() { return "bfloat16"; }
};

// ------------------------------------------------------- CPU reference ---
// Straightforward double-precision transcription, written independently of
// sru_functor.h: per (row, direction) over time, keeping the gates of the
// forward pass for a textbook backpropagation through time.
struct Problem {
  int64_t batch, steps, dirs, units;
  int32_t reverse_mask;
  bool has_c0, has_lengths;
  double alpha;
  std::vector<int32_t> lengths;
  // All in double, already rounded to the storage type the kernel sees.
  std::vector<double> u, x, weight_c, bias, c0, grad_h, grad_h_last,
      grad_c_last;
  int64_t Seq() const { return batch * steps * dirs * units; }
  int64_t State() const { return batch * dirs * units; }
  int64_t Params() const { return dirs * 2 * units; }
  int64_t Len(int64_t b) const {
    if (!has_lengths) return steps;
    return std::min<int64_t>(std::max<int32_t>(lengths[b], 0), steps);
  }
  // [B, L, D, d] and [B, L, D, 3, d] offsets.
  int64_t H(int64_t b, int64_t t, int64_t k, int64_t j) const {
    return ((b * steps + t) * dirs + k) * units + j;
  }
  int64_t U(int64_t b, int64_t t, int64_t k, int64_t g, int64_t j) const {
    return (((b * steps + t) * dirs + k) * 3 + g) * units + j;
  }
  int64_t St(int64_t b, int64_t k, int64_t j) const {
    return (b * dirs + k) * units + j;
  }
  int64_t P(int64_t k, int64_t gate, int64_t j) const {
    return (k * 2 + gate) * units + j;
  }
};

struct RefForward {
  std::vector<double> h, c_seq, h_last, c_last;
};
struct RefGrads {
  std::vector<double> u, x, weight_c, bias, c0;
};

double Sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

RefForward ReferenceForward(const Problem& p) {
  RefForward o;
  o.h.assign(p.Seq(), 0.0);
  o.c_seq.assign(p.Seq(), 0.0);
  o.h_last.assign(p.State(), 0.0);
  o.c_last.assign(p.State(), 0.0);
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t k = 0; k < p.dirs; ++k) {
      const bool rev = (p.reverse_mask >> k) & 1;
      const int64_t len = p.Len(b);
      for (int64_t j = 0; j < p.units; ++j) {
        double c = p.has_c0 ? p.c0[p.St(b, k, j)] : 0.0;
        for (int64_t i = 0; i < len; ++i) {
          const int64_t t = rev ? len - 1 - i : i;
          const double f = Sigmoid(p.u[p.U(b, t, k, 1, j)] +
                                   p.weight_c[p.P(k, 0, j)] * c +
                                   p.bias[p.P(k, 0, j)]);  // eq. (1)
          const double r = Sigmoid(p.u[p.U(b, t, k, 2, j)] +
                                   p.weight_c[p.P(k, 1, j)] * c +
                                   p.bias[p.P(k, 1, j)]);  // eq. (3)
          c = f * c + (1 - f) * p.u[p.U(b, t, k, 0, j)];  // eq. (2)
          const double h =
              r * c + (1 - r) * p.x[p.H(b, t, k, j)] * p.alpha;  // eq. (4)
          o.h[p.H(b, t, k, j)] = h;
          o.c_seq[p.H(b, t, k, j)] = c;
          o.h_last[p.St(b, k, j)] = h;
        }
        for (int64_t t = len; t < p.steps; ++t) o.c_seq[p.H(b, t, k, j)] = c;
        o.c_last[p.St(b, k, j)] = c;
      }
    }
  }
  return o;
}

// Gradients of loss = <h, grad_h> + <h_last, grad_h_last> + <c_last,
// grad_c_last>.
RefGrads ReferenceBackward(const Problem& p) {
  RefGrads g;
  g.u.assign(p.u.size(), 0.0);
  g.x.assign(p.x.size(), 0.0);
  g.weight_c.assign(p.Params(), 0.0);
  g.bias.assign(p.Params(), 0.0);
  g.c0.assign(p.State(), 0.0);
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t k = 0; k < p.dirs; ++k) {
      const bool rev = (p.reverse_mask >> k) & 1;
      const int64_t len = p.Len(b);
      for (int64_t j = 0; j < p.units; ++j) {
        const double vf = p.weight_c[p.P(k, 0, j)], vr = p.weight_c[p.P(k, 1, j)];
        const double bf = p.bias[p.P(k, 0, j)], br = p.bias[p.P(k, 1, j)];
        // Forward again, keeping c_{t-1}, f, r, c per processed step i.
        std::vector<double> cp(len), f(len), r(len), c(len);
        double state = p.has_c0 ? p.c0[p.St(b, k, j)] : 0.0;
        for (int64_t i = 0; i < len; ++i) {
          const int64_t t = rev ? len - 1 - i : i;
          cp[i] = state;
          f[i] = Sigmoid(p.u[p.U(b, t, k, 1, j)] + vf * state + bf);
          r[i] = Sigmoid(p.u[p.U(b, t, k, 2, j)] + vr * state + br);
          state = f[i] * state + (1 - f[i]) * p.u[p.U(b, t, k, 0, j)];
          c[i] = state;
        }
        double dc = p.grad_c_last[p.St(b, k, j)];
        for (int64_t i = len - 1; i >= 0; --i) {
          const int64_t t = rev ? len - 1 - i : i;
          double dh = p.grad_h[p.H(b, t, k, j)];
          if (i == len - 1) dh += p.grad_h_last[p.St(b, k, j)];
          const double xa = p.x[p.H(b, t, k, j)] * p.alpha;
          // h = r c + (1 - r) xa
          const double dr = dh * (c[i] - xa);
          dc += dh * r[i];
          g.x[p.H(b, t, k, j)] = dh * (1 - r[i]) * p.alpha;
          // c = f cp + (1 - f) u0
          const double df = dc * (cp[i] - p.u[p.U(b, t, k, 0, j)]);
          g.u[p.U(b, t, k, 0, j)] = dc * (1 - f[i]);
          const double daf = df * f[i] * (1 - f[i]);
          const double dar = dr * r[i] * (1 - r[i]);
          g.u[p.U(b, t, k, 1, j)] = daf;
          g.u[p.U(b, t, k, 2, j)] = dar;
          g.weight_c[p.P(k, 0, j)] += daf * cp[i];
          g.weight_c[p.P(k, 1, j)] += dar * cp[i];
          g.bias[p.P(k, 0, j)] += daf;
          g.bias[p.P(k, 1, j)] += dar;
          dc = dc * f[i] + daf * vf + dar * vr;
        }
        g.c0[p.St(b, k, j)] = p.has_c0 ? dc : 0.0;
      }
    }
  }
  return g;
}

double Loss(const Problem& p) {
  const RefForward o = ReferenceForward(p);
  double loss = 0;
  for (size_t i = 0; i < o.h.size(); ++i) loss += o.h[i] * p.grad_h[i];
  for (size_t i = 0; i < o.h_last.size(); ++i) {
    loss += o.h_last[i] * p.grad_h_last[i] + o.c_last[i] * p.grad_c_last[i];
  }
  return loss;
}

uint64_t g_rng = 0x9e3779b97f4a7c15ull;
double Uniform() {  // splitmix64 -> [0, 1)
  uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (z >> 11) * (1.0 / 9007199254740992.0);
}
double Normal() {
  const double a = Uniform() + 1e-300, b = Uniform();
  return std::sqrt(-2 * std::log(a)) * std::cos(6.283185307179586 * b);
}

// Random problem whose values are representable in T (inputs) and S (state).
template <typename T, typename S>
Problem MakeProblem(int64_t batch, int64_t steps, int dirs, int32_t reverse,
                    int64_t units, bool ragged) {
  Problem p{batch, steps, dirs, units, reverse, ragged, ragged, 1.25, {},
            {},    {},    {},   {},    {},      {},     {},     {}};
  auto fill = [](std::vector<double>* v, int64_t n, double scale, auto round) {
    v->resize(n);
    for (double& e : *v) e = round(scale * Normal());
  };
  auto round_t = [](double v) { return Store<T>::From(Store<T>::To(v)); };
  auto round_s = [](double v) { return Store<S>::From(Store<S>::To(v)); };
  fill(&p.u, p.Seq() * 3, 1.0, round_t);
  fill(&p.x, p.Seq(), 1.0, round_t);
  fill(&p.weight_c, p.Params(), 0.5, round_s);
  fill(&p.bias, p.Params(), 0.5, round_s);
  fill(&p.c0, p.State(), 1.0, round_s);
  fill(&p.grad_h, p.Seq(), 1.0, round_t);
  fill(&p.grad_h_last, p.State(), 1.0, round_t);
  fill(&p.grad_c_last, p.State(), 1.0, round_s);
  p.lengths.resize(batch);
  for (int64_t b = 0; b < batch; ++b) {
    p.lengths[b] = static_cast<int32_t>(Uniform() * (steps + 1));
  }
  if (batch > 1) p.lengths[0] = static_cast<int32_t>(steps), p.lengths[1] = 0;
  return p;
}

// Central differences of Loss against ReferenceBackward on a tiny problem.
bool CheckReferenceByFiniteDifferences() {
  Problem p = MakeProblem<double, double>(3, 5, 2, 2, 3, true);
  const RefGrads g = ReferenceBackward(p);
  double worst = 0;
  auto check = [&](std::vector<double>* v, const std::vector<double>& grad) {
    for (size_t i = 0; i < v->size(); ++i) {
      const double keep = (*v)[i], eps = 1e-6;
      (*v)[i] = keep + eps;
      const double up = Loss(p);
      (*v)[i] = keep - eps;
      const double down = Loss(p);
      (*v)[i] = keep;
      const double numeric = (up - down) / (2 * eps);
      worst = std::max(worst, std::abs(numeric - grad[i]) / (1 + std::abs(numeric)));
    }
  };
  check(&p.u, g.u);
  check(&p.x, g.x);
  check(&p.weight_c, g.weight_c);
  check(&p.bias, g.bias);
  check(&p.c0, g.c0);
  const bool ok = worst < 1e-6;
  std::printf("%-4s reference backward vs central differences: max err %.2e\n",
              ok ? "PASS" : "FAIL", worst);
  return ok;
}

// ------------------------------------------------------------- checks ---
template <typename E>
std::vector<E> ToStore(const std::vector<double>& v) {
  std::vector<E> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = Store<E>::To(v[i]);
  return out;
}

// Max |a - b| / (1 + |b|); NaN (an unwritten output) counts as infinite.
template <typename E>
double MaxErr(const std::vector<E>& got, const std::vector<double>& want) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double a = Store<E>::From(got[i]);
    const double e = std::abs(a - want[i]) / (1 + std::abs(want[i]));
    if (!(e <= worst)) worst = std::isnan(e) ? INFINITY : e;
  }
  return worst;
}

template <typename T, typename S>
bool CheckCase(Stream stream, int64_t batch, int64_t steps, int dirs,
               int32_t reverse, int64_t units, bool ragged, double tol) {
  const Problem p = MakeProblem<T, S>(batch, steps, dirs, reverse, units, ragged);
  const RefForward rf = ReferenceForward(p);
  const RefGrads rg = ReferenceBackward(p);
  Dims dims{p.batch, p.steps, p.dirs, p.units, p.reverse_mask};

  DeviceBuffer<T> u(p.u.size()), x(p.Seq()), gh(p.Seq()), ghl(p.State());
  DeviceBuffer<S> wc(p.Params()), bias(p.Params()), c0(p.State()), gcl(p.State());
  DeviceBuffer<int32_t> lengths(batch);
  u.Upload(ToStore<T>(p.u));
  x.Upload(ToStore<T>(p.x));
  gh.Upload(ToStore<T>(p.grad_h));
  ghl.Upload(ToStore<T>(p.grad_h_last));
  wc.Upload(ToStore<S>(p.weight_c));
  bias.Upload(ToStore<S>(p.bias));
  c0.Upload(ToStore<S>(p.c0));
  gcl.Upload(ToStore<S>(p.grad_c_last));
  lengths.Upload(p.lengths);

  DeviceBuffer<T> h(p.Seq()), h_last(p.State()), gu(p.u.size()), gx(p.Seq());
  DeviceBuffer<S> c_seq(p.Seq()), c_last(p.State()), gc0(p.State());
  DeviceBuffer<S> gwc(p.Params()), gbias(p.Params());
  DeviceBuffer<S> pwc(batch * p.Params()), pbias(batch * p.Params());
  for (auto* b : {&h, &h_last, &gu, &gx}) b->Poison();
  for (auto* b : {&c_seq, &c_last, &gc0, &gwc, &gbias, &pwc, &pbias}) b->Poison();

  ForwardArgs<T, S> fa{u.ptr,  x.ptr,    wc.ptr,     bias.ptr,
                       p.has_c0 ? c0.ptr : nullptr,
                       p.has_lengths ? lengths.ptr : nullptr,
                       static_cast<S>(p.alpha),
                       h.ptr,  c_seq.ptr, h_last.ptr, c_last.ptr};
  CheckLaunch(LaunchSruForward<T, S>(stream, dims, fa), "forward launch");
  BackwardArgs<T, S> ba{u.ptr,   x.ptr,   wc.ptr,    bias.ptr, fa.c0,  fa.lengths,
                        fa.alpha, c_seq.ptr, gh.ptr, ghl.ptr, gcl.ptr, gu.ptr,
                        gx.ptr,  gc0.ptr, pwc.ptr,   pbias.ptr};
  CheckLaunch(LaunchSruBackward<T, S>(stream, dims, ba, gwc.ptr, gbias.ptr),
              "backward launch");
  Synchronize(stream);

  bool guards = true, g;
  double err = 0;
  auto acc = [&](double e) { err = std::max(err, e); };
  acc(MaxErr(h.Download(&g), rf.h)); guards &= g;
  acc(MaxErr(c_seq.Download(&g), rf.c_seq)); guards &= g;
  acc(MaxErr(h_last.Download(&g), rf.h_last)); guards &= g;
  acc(MaxErr(c_last.Download(&g), rf.c_last)); guards &= g;
  const double fwd_err = err;
  err = 0;
  acc(MaxErr(gu.Download(&g), rg.u)); guards &= g;
  acc(MaxErr(gx.Download(&g), rg.x)); guards &= g;
  const std::vector<S> wc1 = gwc.Download(&g);
  guards &= g;
  const std::vector<S> bias1 = gbias.Download(&g);
  guards &= g;
  acc(MaxErr(wc1, rg.weight_c));
  acc(MaxErr(bias1, rg.bias));
  if (p.has_c0) acc(MaxErr(gc0.Download(&g), rg.c0)), guards &= g;
  const double bwd_err = err;

  // Deterministic weight gradients: a second backward gives the same bits.
  CheckLaunch(LaunchSruBackward<T, S>(stream, dims, ba, gwc.ptr, gbias.ptr),
              "backward launch");
  Synchronize(stream);
  const std::vector<S> wc2 = gwc.Download(), bias2 = gbias.Download();
  const bool same = std::memcmp(wc1.data(), wc2.data(), wc1.size() * sizeof(S)) == 0 &&
                    std::memcmp(bias1.data(), bias2.data(), bias1.size() * sizeof(S)) == 0;

  const bool ok = fwd_err <= tol && bwd_err <= tol && guards && same;
  static const char* kDir[] = {"forward", "backward", "bidirectional"};
  std::printf(
      "%-4s %-8s %-13s B=%-3lld L=%-3lld d=%-4lld %-17s fwd err %.1e  bwd err "
      "%.1e  (tol %.0e)%s%s\n",
      ok ? "PASS" : "FAIL", Store<T>::Name(), kDir[dirs == 2 ? 2 : reverse],
      static_cast<long long>(batch), static_cast<long long>(steps),
      static_cast<long long>(units), ragged ? "lengths+c0" : "no lengths/c0",
      fwd_err, bwd_err, tol, guards ? "" : "  GUARD OVERWRITTEN",
      same ? "" : "  NOT DETERMINISTIC");
  return ok;
}

template <typename T, typename S>
int CheckType(Stream stream, double tol, bool quick) {
  int failures = 0;
  const int64_t d = quick ? 13 : 67;
  for (int dir = 0; dir < 3; ++dir) {
    const int dirs = dir == 2 ? 2 : 1;
    const int32_t reverse = dir == 2 ? 2 : dir;
    for (bool ragged : {true, false}) {
      failures += !CheckCase<T, S>(stream, 5, quick ? 6 : 17, dirs, reverse, d,
                                   ragged, tol);
    }
  }
  return failures;
}

int RunChecks(Stream stream, bool quick) {
  int failures = !CheckReferenceByFiniteDifferences();
  failures += CheckType<double, double>(stream, 1e-12, quick);
  failures += CheckType<float, float>(stream, 2e-5, quick);
  failures += CheckType<Float16Storage, float>(stream, 2e-3, quick);
  failures += CheckType<BFloat16Storage, float>(stream, 1.6e-2, quick);
  // Long sequence and more columns than a few blocks, not a block multiple.
  failures += !CheckCase<float, float>(stream, 3, quick ? 9 : 300, 2, 2,
                                       quick ? 77 : 1001, true, 2e-5);
  std::printf("%s: %d failed check(s)\n", failures ? "CHECKS FAILED" : "ALL CHECKS PASSED",
              failures);
  return failures;
}

// -------------------------------------------------------------- cuBLAS ---
// Loaded at run time so the harness builds without cuBLAS headers; the C API
// of cuBLAS v2 (handles are pointers, enums are ints) is stable.
struct Cublas {
  using Handle = void*;
  int (*create)(Handle*) = nullptr;
  int (*set_stream)(Handle, Stream) = nullptr;
  int (*set_math_mode)(Handle, int) = nullptr;
  int (*sgemm)(Handle, int, int, int, int, int, const float*, const float*, int,
               const float*, int, const float*, float*, int) = nullptr;
  Handle handle = nullptr;
  std::string source;
  static constexpr int kOpN = 0, kOpT = 1, kDefaultMath = 0, kTf32Math = 3;

  bool Load(Stream stream) {
#if defined(SRU_HOST_EMULATION_BUILD)
    (void)stream;
    return false;
#else
    std::vector<std::string> names;
    if (const char* env = std::getenv("SRU_CUBLAS_LIB")) names.push_back(env);
    names.insert(names.end(), {"libcublas.so.13", "libcublas.so.12", "libcublas.so"});
    for (const std::string& name : names) {
      void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (lib == nullptr) continue;
      create = reinterpret_cast<decltype(create)>(dlsym(lib, "cublasCreate_v2"));
      set_stream =
          reinterpret_cast<decltype(set_stream)>(dlsym(lib, "cublasSetStream_v2"));
      set_math_mode =
          reinterpret_cast<decltype(set_math_mode)>(dlsym(lib, "cublasSetMathMode"));
      sgemm = reinterpret_cast<decltype(sgemm)>(dlsym(lib, "cublasSgemm_v2"));
      if (create && set_stream && set_math_mode && sgemm && create(&handle) == 0 &&
          set_stream(handle, stream) == 0) {
        source = name;
        return true;
      }
    }
    return false;
#endif
  }
  // Row-major C[m, n] (+)= A[m, k] B[k, n], with A or B transposed as asked:
  // column-major cuBLAS computes C^T = B^T A^T.
  void Gemm(bool trans_a, bool trans_b, int m, int n, int k, const float* a,
            const float* b, float* c, float beta) const {
    const float one = 1.0f;
    const int lda = trans_a ? m : k, ldb = trans_b ? k : n;
    const int status = sgemm(handle, trans_b ? kOpT : kOpN, trans_a ? kOpT : kOpN,
                             n, m, k, &one, b, ldb, a, lda, &beta, c, n);
    if (status != 0) Fail("cublasSgemm failed with status " + std::to_string(status));
  }
};

// The matmul against a CPU product on a small case.
bool CheckGemm(const Cublas& blas, Stream stream) {
  const int m = 37, k = 19, n = 23;
  std::vector<float> a(m * k), b(k * n), c(m * n);
  for (float& v : a) v = static_cast<float>(Normal());
  for (float& v : b) v = static_cast<float>(Normal());
  DeviceBuffer<float> da(a.size()), db(b.size()), dc(c.size()), dt(k * m);
  da.Upload(a);
  db.Upload(b);
  blas.Gemm(false, false, m, n, k, da.ptr, db.ptr, dc.ptr, 0.0f);
  Synchronize(stream);
  c = dc.Download();
  double worst = 0;
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double want = 0;
      for (int l = 0; l < k; ++l) want += double(a[i * k + l]) * b[l * n + j];
      worst = std::max(worst, std::abs(c[i * n + j] - want) / (1 + std::abs(want)));
    }
  }
  const bool ok = worst < 1e-4;
  std::printf("%-4s cuBLAS row-major matmul vs CPU: max err %.1e (%s)\n",
              ok ? "PASS" : "FAIL", worst, blas.source.c_str());
  return ok;
}

// -------------------------------------------------------------- bench ---
#if !defined(SRU_HOST_EMULATION_BUILD)
template <typename E>
__global__ void FillKernel(E* p, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull + seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    const float unit = ((z >> 40) & 0xffffff) * (1.0f / 16777216.0f);
    p[i] = E(scale * (2.0f * unit - 1.0f));
  }
}
template <typename E>
void FillRandom(E* p, int64_t n, uint64_t seed, float scale, Stream stream) {
  using D = std::conditional_t<std::is_same_v<E, Float16Storage>, __half,
            std::conditional_t<std::is_same_v<E, BFloat16Storage>, __nv_bfloat16, E>>;
  if (n == 0) return;
  FillKernel<<<1024, 256, 0, stream>>>(reinterpret_cast<D*>(p), n, seed, scale);
  CUDA_CHECK(cudaGetLastError());
}
double MeasuredCopyGBs(Stream stream) {
  const size_t bytes = size_t(1) << 30;
  DeviceBuffer<char> a(bytes), b(bytes);
  Timer timer;
  std::vector<double> ms;
  for (int i = 0; i < 6; ++i) {
    timer.Start(stream);
    CUDA_CHECK(cudaMemcpyAsync(b.ptr, a.ptr, bytes, cudaMemcpyDeviceToDevice, stream));
    ms.push_back(timer.StopMs(stream));
  }
  std::sort(ms.begin(), ms.end());
  return 2.0 * bytes / (ms[ms.size() / 2] * 1e-3) / 1e9;
}
#else
template <typename E>
void FillRandom(E* p, int64_t n, uint64_t seed, float scale, Stream) {
  g_rng = seed;
  for (int64_t i = 0; i < n; ++i) p[i] = Store<E>::To(scale * (2 * Uniform() - 1));
}
double MeasuredCopyGBs(Stream) { return 0.0; }
#endif

template <typename F>
double MedianMs(Stream stream, int reps, F&& body) {
  Timer timer;
  body();  // warm-up (module load, first touch)
  body();
  Synchronize(stream);
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    timer.Start(stream);
    body();
    ms.push_back(timer.StopMs(stream));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

struct BenchRow {
  std::string dtype;
  int64_t batch, steps, units;
  double fwd_ms, fwdbwd_ms, fwd_gbs, bwd_gbs, fwdbwd_gbs;
  double layer_fwd_ms = -1, layer_fwdbwd_ms = -1, layer_fwd_tf32_ms = -1,
         layer_fwdbwd_tf32_ms = -1, gemm_fwd_ms = -1, gemm_bwd_ms = -1;
};

template <typename T, typename S>
BenchRow Bench(Stream stream, const Cublas* blas, int64_t batch, int64_t steps,
               int64_t units, int reps) {
  const int64_t seq = batch * steps * units, state = batch * units;
  Dims dims{batch, steps, 1, units, 0};
  DeviceBuffer<T> u(3 * seq), x(seq), h(seq), h_last(state), gh(seq), ghl(state),
      gu(3 * seq), gx(seq);
  DeviceBuffer<S> c_seq(seq), c_last(state), wc(2 * units), bias(2 * units),
      c0(state), gcl(state), gc0(state), gwc(2 * units), gbias(2 * units),
      pwc(batch * 2 * units), pbias(batch * 2 * units);
  DeviceBuffer<int32_t> lengths(batch);
  FillRandom(u.ptr, u.n, 1, 1.0f, stream);
  FillRandom(x.ptr, x.n, 2, 1.0f, stream);
  FillRandom(gh.ptr, gh.n, 3, 1.0f, stream);
  FillRandom(ghl.ptr, ghl.n, 4, 1.0f, stream);
  FillRandom(wc.ptr, wc.n, 5, 0.5f, stream);
  FillRandom(bias.ptr, bias.n, 6, 0.5f, stream);
  FillRandom(c0.ptr, c0.n, 7, 1.0f, stream);
  FillRandom(gcl.ptr, gcl.n, 8, 1.0f, stream);
  Synchronize(stream);
  lengths.Upload(std::vector<int32_t>(batch, static_cast<int32_t>(steps)));

  ForwardArgs<T, S> fa{u.ptr, x.ptr, wc.ptr, bias.ptr, c0.ptr, lengths.ptr, S(1.25),
                       h.ptr, c_seq.ptr, h_last.ptr, c_last.ptr};
  BackwardArgs<T, S> ba{u.ptr,  x.ptr,   wc.ptr,  bias.ptr, c0.ptr, lengths.ptr,
                        S(1.25), c_seq.ptr, gh.ptr, ghl.ptr, gcl.ptr, gu.ptr,
                        gx.ptr, gc0.ptr, pwc.ptr, pbias.ptr};
  auto fwd = [&] { CheckLaunch(LaunchSruForward<T, S>(stream, dims, fa), "forward"); };
  auto bwd = [&] {
    CheckLaunch(LaunchSruBackward<T, S>(stream, dims, ba, gwc.ptr, gbias.ptr),
                "backward");
  };
  BenchRow row{Store<T>::Name(), batch, steps, units, 0, 0, 0, 0, 0};
  row.fwd_ms = MedianMs(stream, reps, fwd);
  row.fwdbwd_ms = MedianMs(stream, reps, [&] { fwd(), bwd(); });
  // Bytes each pass must move (every input read once, every output written
  // once), the parameters included.
  const double ts = sizeof(T), ss = sizeof(S);
  const double params = 4.0 * units * ss + batch * 4.0;
  const double fwd_bytes = seq * (4 * ts + ts + ss) + state * (ss + ts + ss) + params;
  const double bwd_bytes = seq * (4 * ts + ss + ts + 4 * ts) +
                           state * (ts + ss + ss + ss) + params +
                           2.0 * (2 * batch * 2 * units * ss) + 4.0 * units * ss;
  const double bwd_ms = std::max(row.fwdbwd_ms - row.fwd_ms, 1e-6);
  row.fwd_gbs = fwd_bytes / (row.fwd_ms * 1e-3) / 1e9;
  row.bwd_gbs = bwd_bytes / (bwd_ms * 1e-3) / 1e9;
  row.fwdbwd_gbs = (fwd_bytes + bwd_bytes) / (row.fwdbwd_ms * 1e-3) / 1e9;

  if constexpr (std::is_same_v<T, float>) {
    if (blas != nullptr) {
      // SRU layer with input_dim == units: U = X W (X: [B*L, d], W: [d, 3d]),
      // x_highway = X. Backward: dX = dU W^T + dx_highway (the recurrence
      // writes dx_highway into dX, the matmul adds with beta = 1), dW = X^T dU.
      const int m = static_cast<int>(batch * steps), k = static_cast<int>(units),
                n = static_cast<int>(3 * units);
      DeviceBuffer<float> w(k * n), gw(k * n);
      FillRandom(w.ptr, w.n, 9, 0.05f, stream);
      BackwardArgs<T, S> lba = ba;
      auto gemm_fwd = [&] { blas->Gemm(false, false, m, n, k, x.ptr, w.ptr, u.ptr, 0.0f); };
      auto gemm_bwd = [&] {
        blas->Gemm(false, true, m, k, n, gu.ptr, w.ptr, gx.ptr, 1.0f);
        blas->Gemm(true, false, k, n, m, x.ptr, gu.ptr, gw.ptr, 0.0f);
      };
      auto layer_bwd = [&] {
        CheckLaunch(LaunchSruBackward<T, S>(stream, dims, lba, gwc.ptr, gbias.ptr),
                    "backward");
        gemm_bwd();
      };
      for (int math : {Cublas::kDefaultMath, Cublas::kTf32Math}) {
        if (blas->set_math_mode(blas->handle, math) != 0) Fail("cublasSetMathMode");
        const double f = MedianMs(stream, reps, [&] { gemm_fwd(), fwd(); });
        const double fb =
            MedianMs(stream, reps, [&] { gemm_fwd(), fwd(), layer_bwd(); });
        if (math == Cublas::kDefaultMath) {
          row.layer_fwd_ms = f, row.layer_fwdbwd_ms = fb;
          row.gemm_fwd_ms = MedianMs(stream, reps, gemm_fwd);
          row.gemm_bwd_ms = MedianMs(stream, reps, gemm_bwd);
        } else {
          row.layer_fwd_tf32_ms = f, row.layer_fwdbwd_tf32_ms = fb;
        }
      }
      blas->set_math_mode(blas->handle, Cublas::kDefaultMath);
    }
  }
  return row;
}

void PrintJson(const BenchRow& r, double peak, double copy) {
  std::printf(
      "JSON {\"kind\": \"sru\", \"dtype\": \"%s\", \"batch\": %lld, \"steps\": %lld, "
      "\"units\": %lld, \"rec_fwd_ms\": %.5f, \"rec_fwdbwd_ms\": %.5f, "
      "\"rec_fwd_gbs\": %.1f, \"rec_bwd_gbs\": %.1f, \"rec_fwdbwd_gbs\": %.1f, "
      "\"peak_gbs\": %.1f, \"copy_gbs\": %.1f, \"gemm_fwd_ms\": %.5f, "
      "\"gemm_bwd_ms\": %.5f, \"layer_fwd_ms\": %.5f, \"layer_fwdbwd_ms\": %.5f, "
      "\"layer_fwd_tf32_ms\": %.5f, \"layer_fwdbwd_tf32_ms\": %.5f}\n",
      r.dtype.c_str(), static_cast<long long>(r.batch), static_cast<long long>(r.steps),
      static_cast<long long>(r.units), r.fwd_ms, r.fwdbwd_ms, r.fwd_gbs, r.bwd_gbs,
      r.fwdbwd_gbs, peak, copy, r.gemm_fwd_ms, r.gemm_bwd_ms, r.layer_fwd_ms,
      r.layer_fwdbwd_ms, r.layer_fwd_tf32_ms, r.layer_fwdbwd_tf32_ms);
}

void RunBench(Stream stream, const Cublas* blas, bool quick) {
  const double peak = PeakGBs(), copy = MeasuredCopyGBs(stream);
  struct Shape {
    int64_t batch, steps, units;
  };
  std::vector<Shape> shapes = {{32, 32, 256}, {32, 128, 512}, {32, 128, 1024},
                               {256, 128, 2048}};
  if (quick) shapes = {{4, 8, 16}, {8, 16, 64}};
  std::vector<BenchRow> rows;
  for (const Shape& s : shapes) {
    const int reps = quick ? 3 : (s.batch * s.units >= 100000 ? 10 : 30);
    rows.push_back(Bench<float, float>(stream, blas, s.batch, s.steps, s.units, reps));
    PrintJson(rows.back(), peak, copy);
    if (s.batch == 256 || quick) {  // 16-bit storage where bandwidth matters
      rows.push_back(
          Bench<BFloat16Storage, float>(stream, nullptr, s.batch, s.steps, s.units, reps));
      PrintJson(rows.back(), peak, copy);
    }
  }
  std::printf("\nSRU recurrence, forward direction, %s\n", DeviceName().c_str());
  std::printf("peak bandwidth %.0f GB/s (bus width x memory clock x 2), "
              "measured device copy %.0f GB/s\n", peak, copy);
  std::printf("%-9s %-17s %9s %11s %8s %8s %7s %7s %10s %13s\n", "dtype", "B,L,d",
              "fwd ms", "fwd+bwd ms", "fwd GB/s", "bwd GB/s", "%peak", "%copy",
              "layer fwd", "layer fwd+bwd");
  for (const BenchRow& r : rows) {
    char shape[48];
    std::snprintf(shape, sizeof(shape), "%lld,%lld,%lld", static_cast<long long>(r.batch),
                  static_cast<long long>(r.steps), static_cast<long long>(r.units));
    const double best = std::max(r.fwd_gbs, r.fwdbwd_gbs);
    std::printf("%-9s %-17s %9.4f %11.4f %8.0f %8.0f %6.0f%% %6.0f%% %10.4f %13.4f\n",
                r.dtype.c_str(), shape, r.fwd_ms, r.fwdbwd_ms, r.fwd_gbs, r.bwd_gbs,
                peak > 0 ? 100 * best / peak : 0.0, copy > 0 ? 100 * best / copy : 0.0,
                r.layer_fwd_ms, r.layer_fwdbwd_ms);
  }
  std::printf("(%%peak, %%copy: the better of fwd and fwd+bwd GB/s; layer = FP32 "
              "cublasSgemm x W + recurrence, -1 without cuBLAS)\n");
}

}  // namespace

int main(int argc, char** argv) {
  bool check = false, bench = false, quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--check") check = true;
    else if (a == "--bench") bench = true;
    else if (a == "--quick") quick = true;
    else Fail("unknown argument " + a + " (use --check, --bench, --quick)");
  }
  if (!check && !bench) check = bench = true;
  std::printf("device: %s\n", DeviceName().c_str());
  Stream stream = MakeStream();
  Cublas blas;
  const bool have_blas = blas.Load(stream);
  int failures = 0;
  if (check) {
    failures += RunChecks(stream, quick);
    if (have_blas) failures += !CheckGemm(blas, stream);
  }
  if (!have_blas && !kEmulated) {
    std::printf("note: cuBLAS could not be dlopen'ed (set SRU_CUBLAS_LIB): "
                "layer timings skipped\n");
  }
  if (bench) RunBench(stream, have_blas ? &blas : nullptr, quick);
  return failures == 0 ? 0 : 1;
}
