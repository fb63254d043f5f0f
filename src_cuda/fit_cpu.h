// The whole 2DGS fitting loop on the CPU: initialisation, Adam with per-group learning rates and an
// exponential schedule, luminance-aware pruning, error-guided densification and early stopping.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "core_limits.h"

namespace splat {

enum class InitMode { kGrid = 0, kAdaptive = 1, kRandom = 2, kGiven = 3 };

struct FitConfig {
  int64_t num_gaussians = 10000;
  int iterations = 2000;
  float target_psnr = 0.0f;        // stop once the training PSNR reaches this (<= 0: never)
  uint64_t seed = 0;
  InitMode init = InitMode::kAdaptive;
  float init_scale = 1.0f;         // initial sigma as a multiple of half the cell size
  float adaptive_uniformity = 0.01f;  // adaptive init: 0 = split by detail only, larger = closer to a grid
  // Adam learning rates per parameter group (pixels for xy and chol, [0,1] units for colour); they decay
  // exponentially to lr * lr_final_ratio over the run.
  float lr_xy = 0.2f;
  float lr_chol = 0.1f;
  float lr_color = 0.01f;
  float lr_final_ratio = 0.3f;
  float l1_color = 0.0f;           // weight of the L1 colour penalty (drives weak Gaussians to 0)
  float min_chol = 0.3f;           // projection: diagonal of L kept >= this (pixels)
  // Luminance-aware pruning: every prune_every iterations until prune_until * iterations, drop
  // Gaussians whose luma(|colour|) < prune_threshold.
  int prune_every = 0;             // 0: no pruning
  float prune_threshold = 0.0f;
  float prune_until = 0.7f;
  // Error-guided densification: after each pruning step, add Gaussians where the error is largest to
  // return to num_gaussians.
  bool densify = false;
  int threads = 0;                 // 0: all OpenMP threads
};

struct FitStats {
  int iterations = 0;
  double final_psnr = 0.0;         // float render vs target, data range 1
  double seconds = 0.0;
  int64_t gaussians_initial = 0;
  int64_t gaussians_final = 0;
  int64_t gaussians_pruned = 0;
  int64_t gaussians_added = 0;
  bool reached_target = false;
  std::vector<int> trace_iterations;  // training PSNR sampled during the run
  std::vector<float> trace_psnr;
};

struct FitOutput {
  std::vector<float> params;  // num x (5 + C)
  int64_t num = 0;
  FitStats stats;
};

// Fits Gaussians to one image (height x width x channels, interleaved, values in [0,1]).
// For InitMode::kGiven, `init_params` holds `init_num` packed Gaussians to start from.
// Every binning is held to `budget` (LimitExceeded); a cancelled `cancel` stops the loop at its next
// iteration (Cancelled); a loss that turns non-finite (diverging learning rates, non-finite init)
// throws std::invalid_argument instead of returning non-finite Gaussians.
FitOutput fit_image(const float* image, int width, int height, int channels, const FitConfig& config,
                    const float* init_params = nullptr, int64_t init_num = 0,
                    const CancelToken* cancel = nullptr, const RenderBudget& budget = RenderBudget{});

// Initial Gaussians for an image, as fit_image would start with (exposed for tests and benchmarks).
std::vector<float> initial_gaussians(const float* image, int width, int height, int channels,
                                     const FitConfig& config);

// The loop itself, its schedule and its checks are shared with the CUDA fitter: fit_loop.h.

// Validates a configuration; throws std::invalid_argument naming the bad field.
void check_fit_config(const FitConfig& config, int width, int height);

}  // namespace splat
