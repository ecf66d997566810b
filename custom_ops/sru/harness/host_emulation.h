// Just enough of CUDA to compile ../kernels/sru_kernels.cu as host C++ and
// run its kernels over every (block, thread) index in turn. Used by
// host_driver.cc (the CI check of the CUDA kernels' logic) and by the
// harness built with -DSRU_HOST_EMULATION. No CUDA and no TensorFlow needed.
//
// Sequential emulation is exact for these kernels: threads share no memory
// and never wait on each other.
#ifndef KERAS_NDSRU_SRU_HOST_EMULATION_H_
#define KERAS_NDSRU_SRU_HOST_EMULATION_H_

#if defined(__CUDACC__)
#error "host_emulation.h is for host compilers only"
#endif

#include <cstdint>
#include <cstring>

#define SRU_HOST_EMULATION 1
#define __global__
#define __launch_bounds__(...)

struct EmulatedDim3 {
  unsigned int x = 0, y = 1, z = 1;
};
inline EmulatedDim3 blockIdx, blockDim, gridDim, threadIdx;

namespace keras_ndsru {
namespace sru {
namespace gpu {

// IEEE binary16 with round-to-nearest-even conversions (what __half does).
struct DeviceHalf {
  uint16_t bits;
  DeviceHalf() = default;
  DeviceHalf(float f) : bits(FromFloat(f)) {}  // NOLINT: like __half
  operator float() const { return ToFloat(bits); }

  static uint16_t FromFloat(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = x & 0x80000000u;
    x ^= sign;
    uint32_t out;
    if (x >= 0x47800000u) {  // >= 65536 (or inf / nan)
      out = x > 0x7f800000u ? 0x7e00u : 0x7c00u;
    } else if (x < 0x38800000u) {  // subnormal or zero: align with a magic add
      float g;
      std::memcpy(&g, &x, 4);
      g += 0.5f;
      uint32_t y;
      std::memcpy(&y, &g, 4);
      out = y - 0x3f000000u;
    } else {
      const uint32_t odd = (x >> 13) & 1u;
      x += (static_cast<uint32_t>(15 - 127) << 23) + 0xfffu + odd;
      out = x >> 13;  // a carry into the exponent gives inf: correct
    }
    return static_cast<uint16_t>(out | (sign >> 16));
  }
  static float ToFloat(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu;
    const uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0) {
      const float magnitude = static_cast<float>(mantissa) * 5.9604645e-8f;
      return sign ? -magnitude : magnitude;
    }
    const uint32_t x = exponent == 31
                           ? sign | 0x7f800000u | (mantissa << 13)
                           : sign | ((exponent + 112) << 23) | (mantissa << 13);
    float f;
    std::memcpy(&f, &x, 4);
    return f;
  }
};

// bfloat16 with round-to-nearest-even conversions (what __nv_bfloat16 does).
struct DeviceBFloat16 {
  uint16_t bits;
  DeviceBFloat16() = default;
  DeviceBFloat16(float f) : bits(FromFloat(f)) {}  // NOLINT: like the CUDA type
  operator float() const {
    const uint32_t x = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &x, 4);
    return f;
  }
  static uint16_t FromFloat(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return static_cast<uint16_t>(x >> 16);
  }
};

inline int& EmulatedMultiprocessorCountRef() {
  static int count = 132;  // an H100 / H200
  return count;
}
inline int EmulatedMultiprocessorCount() {
  return EmulatedMultiprocessorCountRef();
}

// The last launch's configuration, for the index-mapping tests.
struct EmulatedLaunchRecord {
  int64_t launches = 0;
  int64_t blocks = 0;
  int threads = 0;
};
inline EmulatedLaunchRecord& LastEmulatedLaunch() {
  static EmulatedLaunchRecord record;
  return record;
}

// Runs body() once per thread of a 1-D grid, as the GPU would (in some
// order), after the same configuration checks the CUDA runtime makes.
template <typename Body>
const char* EmulateLaunch(int64_t blocks, int threads, Body&& body) {
  if (blocks <= 0 || blocks > 2147483647 || threads <= 0 || threads > 1024) {
    return "invalid configuration argument";
  }
  EmulatedLaunchRecord& record = LastEmulatedLaunch();
  ++record.launches;
  record.blocks = blocks;
  record.threads = threads;
  gridDim.x = static_cast<unsigned int>(blocks);
  blockDim.x = static_cast<unsigned int>(threads);
  for (int64_t b = 0; b < blocks; ++b) {
    blockIdx.x = static_cast<unsigned int>(b);
    for (int t = 0; t < threads; ++t) {
      threadIdx.x = static_cast<unsigned int>(t);
      body();
    }
  }
  return nullptr;
}

}  // namespace gpu
}  // namespace sru
}  // namespace keras_ndsru

#endif  // KERAS_NDSRU_SRU_HOST_EMULATION_H_
