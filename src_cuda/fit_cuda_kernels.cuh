// Kernels of the CUDA fitting loop (see fit_cuda.h), in a header so that tests/cuda_emu can also run
// them on the CPU.
#pragma once

#include <cstdint>

#include "adam_math.h"
#include "gaussian_math.h"

namespace splat {
namespace cuda_kernels {

// One Adam step per Gaussian: the same adam_update as the CPU loop.
__global__ void adam_kernel(float* __restrict__ params, const float* __restrict__ grad, float* __restrict__ m,
                            float* __restrict__ v, int64_t n, int stride, AdamStep a) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  adam_update(params + i * stride, grad + i * stride, m + i * stride, v + i * stride, stride, a);
}

}  // namespace cuda_kernels
}  // namespace splat
