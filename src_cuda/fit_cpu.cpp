#include "fit_cpu.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "adam_math.h"
#include "fit_loop.h"
#include "gaussian_math.h"
#include "prune_densify.h"
#include "raster_cpu.h"

namespace splat {

void check_fit_config(const FitConfig& c, int width, int height) {
  auto fail = [](const std::string& what) { throw std::invalid_argument(what); };
  const int64_t pixels = int64_t(width) * height;
  if (c.num_gaussians < 1 || c.num_gaussians > pixels)
    fail("num_gaussians must be between 1 and the pixel count " + std::to_string(pixels) + ", got " +
         std::to_string(c.num_gaussians));
  if (c.iterations < 0) fail("iterations must be >= 0");
  auto positive = [&](float v, const char* name) {
    if (!(v > 0.0f) || !std::isfinite(v)) fail(std::string(name) + " must be a positive finite number");
  };
  auto non_negative = [&](float v, const char* name) {
    if (!(v >= 0.0f) || !std::isfinite(v)) fail(std::string(name) + " must be a finite number >= 0");
  };
  // A learning rate of 0 freezes its group (e.g. refit colours on fixed geometry).
  non_negative(c.lr_xy, "lr_xy");
  non_negative(c.lr_chol, "lr_chol");
  non_negative(c.lr_color, "lr_color");
  positive(c.lr_final_ratio, "lr_final_ratio");
  positive(c.init_scale, "init_scale");
  positive(c.min_chol, "min_chol");
  non_negative(c.l1_color, "l1_color");
  non_negative(c.prune_threshold, "prune_threshold");
  non_negative(c.adaptive_uniformity, "adaptive_uniformity");
  if (!std::isfinite(c.target_psnr)) fail("target_psnr must be finite");
  if (c.prune_every < 0) fail("prune_every must be >= 0");
  if (!(c.prune_until >= 0.0f && c.prune_until <= 1.0f)) fail("prune_until must be in [0, 1]");
}

namespace {

// The CPU steps of the fitting loop (fit_loop.h): the tile rasteriser, OpenMP Adam, and the shared
// pruning and error-guided densification (prune_densify.h) run in place.
struct CpuFitBackend {
  GaussianState& s;
  const std::vector<float>& target;  // planar
  const FitConfig& config;
  int width, height, channels, threads;
  const CancelToken* cancel;
  CpuRasterizer raster;
  std::vector<float> grad, error_map;
  RenderBudget budget;

  void bin(const RenderBudget& b) {
    budget = b;  // densification re-bins under the same budget
    raster.bin(s.params.data(), s.size(), channels, width, height, threads, b);
  }
  double mse_step(bool want_error_map) {
    grad.resize(s.params.size());  // follows the count, which pruning and densification change
    if (want_error_map) error_map.resize(int64_t(width) * height);
    return raster.mse_step(target.data(), grad.data(), want_error_map ? error_map.data() : nullptr);
  }
  void adam(const AdamStep& step) {
    const int64_t n = s.size();
    const int stride = s.stride;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; ++i)
      adam_update(&s.params[i * stride], &grad[i * stride], &s.m[i * stride], &s.v[i * stride], stride, step);
  }
  void prune_and_densify(FitStats& stats) {
    splat::prune_and_densify(s, config, error_map.data(), target.data(), width, height, channels, stats,
                             [&](const GaussianState& pruned, float* out) {
                               raster.bin(pruned.params.data(), pruned.size(), channels, width, height,
                                          threads, budget);
                               raster.forward(out, cancel);
                             });
  }
  bool params_finite() const {
    return std::all_of(s.params.begin(), s.params.end(), [](float v) { return std::isfinite(v); });
  }
};

}  // namespace

FitOutput fit_image(const float* image, int width, int height, int channels, const FitConfig& config,
                    const float* init_params, int64_t init_num, const CancelToken* cancel,
                    const RenderBudget& budget) {
  check_raster_args(config.num_gaussians, channels, width, height);
  check_fit_config(config, width, height);
  const auto start = std::chrono::steady_clock::now();
  const int stride = kGeometryFloats + channels;
  const int64_t plane = int64_t(width) * height;
  const double values = double(plane) * channels;
  const int threads = resolve_threads(config.threads);

  std::vector<float> target(plane * channels);  // planar copy: tiles read rows of one channel
  for (int64_t p = 0; p < plane; ++p)
    for (int c = 0; c < channels; ++c) target[c * plane + p] = image[p * channels + c];

  GaussianState s{stride, {}, {}, {}};
  if (config.init == InitMode::kGiven) {
    if (init_params == nullptr || init_num < 1) throw std::invalid_argument("init: no Gaussians given");
    s.params.assign(init_params, init_params + init_num * stride);
  } else {
    s.params = initial_gaussians(image, width, height, channels, config);
  }
  s.resize(s.size());

  FitOutput out;
  out.stats.gaussians_initial = s.size();
  CpuFitBackend backend{s, target, config, width, height, channels, threads, cancel, {}, {}, {}, {}};
  run_fit_loop(backend, config, width, height, values, out.stats, cancel, budget);
  out.stats.gaussians_final = s.size();
  out.num = s.size();
  out.params = std::move(s.params);
  out.stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace splat
