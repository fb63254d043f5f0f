// One Adam step of one Gaussian's packed parameters, with the fitter's projection: the optimiser math
// shared by the CPU loop (fit_cpu.cpp) and the CUDA kernel (fit_cuda_kernels.cuh).
#pragma once

#include <cmath>
#include <cstdint>

#include "gaussian_math.h"

namespace splat {

constexpr float kAdamBeta1 = 0.9f;
constexpr float kAdamBeta2 = 0.999f;
constexpr float kAdamEps = 1e-8f;

// Everything an iteration's Adam step needs beyond the per-Gaussian state.
struct AdamStep {
  float lr_base[3];  // xy, chol, colour
  float lr_scale;    // exponential schedule factor of this iteration
  float bc1, bc2;    // bias corrections 1 - beta^(t+1)
  float l1;          // L1 colour penalty weight
  float min_chol;    // projection: l11, l22 >= min_chol
  float width, height;

  // The step of iteration `it` (0-based) of a run whose learning rates decay by exp(decay) per step.
  static AdamStep at(const float lr_base_in[3], double decay, int it, float l1, float min_chol, int width,
                     int height) {
    AdamStep a;
    for (int k = 0; k < 3; ++k) a.lr_base[k] = lr_base_in[k];
    a.lr_scale = float(std::exp(decay * it));
    a.bc1 = 1.0f - std::pow(kAdamBeta1, float(it + 1));
    a.bc2 = 1.0f - std::pow(kAdamBeta2, float(it + 1));
    a.l1 = l1;
    a.min_chol = min_chol;
    a.width = float(width);
    a.height = float(height);
    return a;
  }
};

// Updates p, m, v (stride floats each) from the gradient g. Non-finite gradients count as 0. After the
// step, the diagonal of L is kept >= min_chol and centres within half an image of the frame (NaN
// passes through, as with std::max / std::clamp).
SPLAT_HD void adam_update(float* p, const float* g, float* m, float* v, int stride, const AdamStep& a) {
  for (int j = 0; j < stride; ++j) {
    float gj = g[j];
    if (j >= kGeometryFloats && a.l1 > 0.0f) gj += a.l1 * (p[j] > 0.0f ? 1.0f : (p[j] < 0.0f ? -1.0f : 0.0f));
    if (!finite_f(gj)) gj = 0.0f;
    m[j] = kAdamBeta1 * m[j] + (1.0f - kAdamBeta1) * gj;
    v[j] = kAdamBeta2 * v[j] + (1.0f - kAdamBeta2) * gj * gj;
    const int group = j < 2 ? 0 : (j < kGeometryFloats ? 1 : 2);
    const float lr = a.lr_base[group] * a.lr_scale;
    p[j] -= lr * (m[j] / a.bc1) / (sqrtf(v[j] / a.bc2) + kAdamEps);
  }
  p[2] = p[2] < a.min_chol ? a.min_chol : p[2];
  p[4] = p[4] < a.min_chol ? a.min_chol : p[4];
  const float x_lo = -0.5f * a.width, x_hi = 1.5f * a.width;
  const float y_lo = -0.5f * a.height, y_hi = 1.5f * a.height;
  p[0] = p[0] < x_lo ? x_lo : (x_hi < p[0] ? x_hi : p[0]);
  p[1] = p[1] < y_lo ? y_lo : (y_hi < p[1] ? y_hi : p[1]);
}

}  // namespace splat
