// Luminance-aware pruning and error-guided densification, one definition for every fitter. The CPU
// fitter (fit_cpu.cpp) runs it on its own state; the CUDA fitter (fit_cuda.cu) and its emulator
// (tests/cuda_emu/) copy parameters, Adam moments and the error map to the host on the iterations where
// pruning is due (every prune_every iterations: rare), run it there and upload the result. Compacting
// and sorting a few thousand rows is cheap next to a render; a device version would be a second home
// for the same rules. Header-only host code, so that the emulator compiles without other sources.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "fit_cpu.h"
#include "gaussian_math.h"

namespace splat {

constexpr int kErrorBlock = 8;  // densification candidates: the worst pixel of each 8x8 block

// Parameters and Adam moments of the Gaussians (n rows of `stride` floats each), kept side by side so
// that pruning compacts all three together.
struct GaussianState {
  int stride;
  std::vector<float> params, m, v;
  int64_t size() const { return int64_t(params.size()) / stride; }
  // New rows have zero parameters (densify fills them) and fresh (zero) moments.
  void resize(int64_t n) {
    params.resize(n * stride);
    m.resize(n * stride, 0.0f);
    v.resize(n * stride, 0.0f);
  }
};

// Removes Gaussians with luma(|colour|) < threshold (and ones that touch no pixel); returns how many.
inline int64_t prune(GaussianState& s, int channels, float threshold, int width, int height) {
  const int stride = s.stride;
  int64_t kept = 0;
  for (int64_t i = 0; i < s.size(); ++i) {
    const float* p = &s.params[i * stride];
    const Prepared g = prepare_gaussian(p, channels, width, height);
    const bool visible = g.x0 <= g.x1 && g.y0 <= g.y1;
    if (!visible || luma_of_abs(p + kGeometryFloats, channels) < threshold) continue;
    if (kept != i) {
      std::copy_n(&s.params[i * stride], stride, &s.params[kept * stride]);
      std::copy_n(&s.m[i * stride], stride, &s.m[kept * stride]);
      std::copy_n(&s.v[i * stride], stride, &s.v[kept * stride]);
    }
    ++kept;
  }
  const int64_t removed = s.size() - kept;
  s.resize(kept);
  return removed;
}

// Adds up to `count` Gaussians at the worst pixel of the 8x8 blocks with the largest squared error
// (error_map: H x W), coloured with the residual there (target_planar: C x H x W, render_hwc: H x W x C)
// and small (sigma ~ 1 px), so they start by fixing that error. Returns how many were added.
inline int64_t densify(GaussianState& s, int64_t count, const float* error_map, const float* target_planar,
                       const float* render_hwc, int width, int height, int channels, float min_chol) {
  const int bx = (width + kErrorBlock - 1) / kErrorBlock, by = (height + kErrorBlock - 1) / kErrorBlock;
  struct Candidate {
    double block_error;
    int pixel;
  };
  std::vector<Candidate> candidates(size_t(bx) * by);
  for (int b = 0; b < bx * by; ++b) {
    const int x0 = (b % bx) * kErrorBlock, y0 = (b / bx) * kErrorBlock;
    double total = 0.0;
    int worst = y0 * width + x0;
    for (int y = y0; y < std::min(y0 + kErrorBlock, height); ++y)
      for (int x = x0; x < std::min(x0 + kErrorBlock, width); ++x) {
        const int pix = y * width + x;
        total += error_map[pix];
        if (error_map[pix] > error_map[worst]) worst = pix;
      }
    candidates[b] = Candidate{total, worst};
  }
  count = std::min<int64_t>(count, int64_t(candidates.size()));
  if (count <= 0) return 0;
  std::partial_sort(candidates.begin(), candidates.begin() + count, candidates.end(),
                    [](const Candidate& a, const Candidate& b) {
                      return a.block_error != b.block_error ? a.block_error > b.block_error : a.pixel < b.pixel;
                    });
  const int64_t plane = int64_t(width) * height;
  const int64_t old = s.size();
  s.resize(old + count);
  const float sigma = std::max(1.0f, min_chol);
  for (int64_t k = 0; k < count; ++k) {
    const int pix = candidates[k].pixel;
    float* p = &s.params[(old + k) * s.stride];
    p[0] = pix % width + 0.5f;
    p[1] = pix / width + 0.5f;
    p[2] = sigma;
    p[3] = 0.0f;
    p[4] = sigma;
    for (int c = 0; c < channels; ++c)
      p[kGeometryFloats + c] = target_planar[c * plane + pix] - render_hwc[int64_t(pix) * channels + c];
  }
  return count;
}

// The step fit_loop.h runs after an iteration where pruning is due: prune, then (config.densify) refill
// to config.num_gaussians. `error_map` is the per-pixel squared error of that iteration's MSE step, so
// of the parameters before its Adam update: it only guides where to add. `render_hwc(s, out)` renders
// the pruned Gaussians of `s` into the host buffer `out` (H x W x C): the residual colours the new ones.
template <class RenderHwc>
void prune_and_densify(GaussianState& s, const FitConfig& config, const float* error_map,
                       const float* target_planar, int width, int height, int channels, FitStats& stats,
                       RenderHwc&& render_hwc) {
  stats.gaussians_pruned += prune(s, channels, config.prune_threshold, width, height);
  if (!config.densify || s.size() >= config.num_gaussians) return;
  std::vector<float> render(size_t(width) * height * channels);
  render_hwc(static_cast<const GaussianState&>(s), render.data());
  stats.gaussians_added += densify(s, config.num_gaussians - s.size(), error_map, target_planar, render.data(),
                                   width, height, channels, config.min_chol);
}

}  // namespace splat
