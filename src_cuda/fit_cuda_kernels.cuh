// Kernels of the CUDA fitting loop (see fit_cuda.h), in a header so that tests/cuda_emu can also run
// them on the CPU.
#pragma once

#include <cstdint>

#include "gaussian_math.h"

namespace splat {
namespace cuda_kernels {

constexpr float kAdamBeta1 = 0.9f;
constexpr float kAdamBeta2 = 0.999f;
constexpr float kAdamEps = 1e-8f;

struct AdamStep {
  float lr_base[3];  // xy, chol, colour
  float lr_scale, bc1, bc2, l1, min_chol;
  float width, height;
};

// One Adam step per Gaussian, written exactly as the CPU loop (same expression order).
__global__ void adam_kernel(float* __restrict__ params, const float* __restrict__ grad, float* __restrict__ m,
                            float* __restrict__ v, int64_t n, int stride, AdamStep a) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float* p = params + i * stride;
  const float* g = grad + i * stride;
  float* mi = m + i * stride;
  float* vi = v + i * stride;
  for (int j = 0; j < stride; ++j) {
    float gj = g[j];
    if (j >= kGeometryFloats && a.l1 > 0.0f) gj += a.l1 * (p[j] > 0.0f ? 1.0f : (p[j] < 0.0f ? -1.0f : 0.0f));
    if (!finite_f(gj)) gj = 0.0f;
    mi[j] = kAdamBeta1 * mi[j] + (1.0f - kAdamBeta1) * gj;
    vi[j] = kAdamBeta2 * vi[j] + (1.0f - kAdamBeta2) * gj * gj;
    const int group = j < 2 ? 0 : (j < kGeometryFloats ? 1 : 2);
    const float lr = a.lr_base[group] * a.lr_scale;
    p[j] -= lr * (mi[j] / a.bc1) / (sqrtf(vi[j] / a.bc2) + kAdamEps);
  }
  // Projection (std::max / std::clamp semantics, NaN passes through as on the CPU).
  p[2] = p[2] < a.min_chol ? a.min_chol : p[2];
  p[4] = p[4] < a.min_chol ? a.min_chol : p[4];
  const float x_lo = -0.5f * a.width, x_hi = 1.5f * a.width;
  const float y_lo = -0.5f * a.height, y_hi = 1.5f * a.height;
  p[0] = p[0] < x_lo ? x_lo : (x_hi < p[0] ? x_hi : p[0]);
  p[1] = p[1] < y_lo ? y_lo : (y_hi < p[1] ? y_hi : p[1]);
}

}  // namespace cuda_kernels
}  // namespace splat
