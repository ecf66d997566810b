// The float and double entry points of the CPU recurrence (sru_cpu.h),
// compiled once per x86-64 level (SSE2, x86-64-v3 = AVX2+FMA, x86-64-v4 =
// AVX-512) with the best one chosen at load time. Framework-free: each op
// library (TensorFlow, PyTorch, JAX) links its own copy.
#include "sru_cpu.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(KERAS_NDSRU_NO_CLONES)
#define SRU_CPU_CLONES \
  __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define SRU_CPU_CLONES
#endif

namespace keras_ndsru {
namespace sru {
namespace cpu {

SRU_CPU_CLONES void run_forward_block(const Dims& n,
                                      const ForwardArgs<float, float>& a,
                                      const Block& k, float* scratch) {
  forward_block(n, a, k, scratch);
}

SRU_CPU_CLONES void run_forward_block(const Dims& n,
                                      const ForwardArgs<double, double>& a,
                                      const Block& k, double* scratch) {
  forward_block(n, a, k, scratch);
}

SRU_CPU_CLONES void run_backward_block(const Dims& n,
                                       const BackwardArgs<float, float>& a,
                                       const Block& k, float* scratch) {
  backward_block(n, a, k, scratch);
}

SRU_CPU_CLONES void run_backward_block(const Dims& n,
                                       const BackwardArgs<double, double>& a,
                                       const Block& k, double* scratch) {
  backward_block(n, a, k, scratch);
}

}  // namespace cpu
}  // namespace sru
}  // namespace keras_ndsru
