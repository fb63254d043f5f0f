// The fitting loop's skeleton, one definition for every backend: the CPU fitter (fit_cpu.cpp), the
// CUDA fitter (fit_cuda.cu) and the CUDA emulator of the tests (tests/cuda_emu/). What must never
// differ between them lives here: cancellation polled every iteration, the render budget on every
// binning, the learning-rate schedule, early stop at the target PSNR, the PSNR trace, the pruning
// calendar, and the refusal of non-finite results. A backend supplies the steps:
//
//   void   bin(const RenderBudget&)         bin the current Gaussians (LimitExceeded over budget)
//   double mse_step(bool want_error_map)    loss gradients of the binned Gaussians; returns the SSE
//   void   adam(const AdamStep&)            one Adam update of every Gaussian
//   void   prune_and_densify(FitStats&)     pruning (and densification) after a step where it is due
//   bool   params_finite()                  whether every parameter is finite
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "adam_math.h"
#include "core_limits.h"
#include "fit_cpu.h"

namespace splat {

// PSNR (data range 1) of a sum of squared errors over `count` values; 99 dB for an exact fit.
inline double psnr_from_sse(double sse, double count) {
  const double mse = sse / count;
  return mse > 0.0 ? -10.0 * std::log10(mse) : 99.0;
}

// Samples the training PSNR into the stats' trace (about 50 points per run) and returns true, setting
// reached_target, once the target PSNR (if any) is reached.
inline bool record_progress(FitStats& stats, const FitConfig& config, int it, double psnr) {
  const int trace_every = std::max(1, config.iterations / 50);
  if (it % trace_every == 0) {
    stats.trace_iterations.push_back(it);
    stats.trace_psnr.push_back(float(psnr));
  }
  if (config.target_psnr > 0.0f && psnr >= config.target_psnr) stats.reached_target = true;
  return stats.reached_target;
}

// A loss that is not finite means the fit diverged (learning rates too high, or non-finite init).
inline void check_finite_loss(double sse, int it) {
  if (!std::isfinite(sse))
    throw std::invalid_argument("the fit diverged at iteration " + std::to_string(it) +
                                " (non-finite loss): lower the learning rates, or check the initial Gaussians");
}

// Whether iteration `it` ends with pruning (every prune_every iterations up to prune_until of the run).
inline bool prune_due(const FitConfig& config, int it) {
  const int prune_last = int(config.prune_until * config.iterations);
  return config.prune_every > 0 && it > 0 && it % config.prune_every == 0 && it <= prune_last;
}

// Runs config.iterations steps (fewer once the target PSNR is reached), then measures the returned
// parameters: fills stats.iterations and stats.final_psnr. `values` = pixels x channels.
template <class Backend>
void run_fit_loop(Backend& backend, const FitConfig& config, int width, int height, double values,
                  FitStats& stats, const CancelToken* cancel, const RenderBudget& budget) {
  const float lr_base[3] = {config.lr_xy, config.lr_chol, config.lr_color};
  // Learning rates decay exponentially to lr * lr_final_ratio over the run.
  const double decay = config.iterations > 1 ? std::log(config.lr_final_ratio) / (config.iterations - 1) : 0.0;
  int it = 0;
  for (; it < config.iterations; ++it) {
    throw_if_cancelled(cancel);
    const bool prune_now = prune_due(config, it);
    backend.bin(budget);
    const double sse = backend.mse_step(prune_now);
    check_finite_loss(sse, it);
    if (record_progress(stats, config, it, psnr_from_sse(sse, values))) break;
    backend.adam(AdamStep::at(lr_base, decay, it, config.l1_color, config.min_chol, width, height));
    if (prune_now) backend.prune_and_densify(stats);
  }
  // Final quality of the returned parameters.
  throw_if_cancelled(cancel);
  backend.bin(budget);
  const double sse = backend.mse_step(false);
  check_finite_loss(sse, it);
  // A Gaussian whose parameters went non-finite may touch no pixel and leave the loss finite.
  if (!backend.params_finite()) check_finite_loss(std::numeric_limits<double>::quiet_NaN(), it);
  stats.final_psnr = psnr_from_sse(sse, values);
  stats.iterations = it;
}

}  // namespace splat
