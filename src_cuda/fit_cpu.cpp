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
#include "raster_cpu.h"

namespace splat {

namespace {

constexpr int kErrorBlock = 8;  // densification candidates: the worst pixel of each 8x8 block

// Parameters and Adam moments, kept packed side by side so pruning compacts all three together.
struct State {
  int stride;
  std::vector<float> params, m, v, grad;
  int64_t size() const { return int64_t(params.size()) / stride; }
  void resize(int64_t n) {
    params.resize(n * stride);
    m.resize(n * stride, 0.0f);
    v.resize(n * stride, 0.0f);
    grad.resize(n * stride, 0.0f);
  }
};

// Removes Gaussians with luma(|colour|) < threshold (and ones that touch no pixel); returns how many.
int64_t prune(State& s, int channels, float threshold, int width, int height) {
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
  s.params.resize(kept * stride);
  s.m.resize(kept * stride);
  s.v.resize(kept * stride);
  s.grad.resize(kept * stride);
  return removed;
}

// Adds up to `count` Gaussians at the worst pixel of the 8x8 blocks with the largest squared error,
// coloured with the residual there and small (sigma ~ 1 px), so they start by fixing that error.
int64_t densify(State& s, int64_t count, const std::vector<float>& error_map, const float* target_planar,
                const std::vector<float>& render_planar, int width, int height, int channels,
                float min_chol) {
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
      p[kGeometryFloats + c] = target_planar[c * plane + pix] - render_planar[c * plane + pix];
  }
  return count;
}

}  // namespace

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

// The CPU steps of the fitting loop (fit_loop.h): the tile rasteriser, OpenMP Adam, pruning and
// error-guided densification.
struct CpuFitBackend {
  State& s;
  const std::vector<float>& target;  // planar
  const FitConfig& config;
  int width, height, channels, threads;
  const CancelToken* cancel;
  CpuRasterizer raster;
  std::vector<float> error_map, render_hwc, render_planar;
  RenderBudget budget;

  void bin(const RenderBudget& b) {
    budget = b;  // densification re-bins under the same budget
    raster.bin(s.params.data(), s.size(), channels, width, height, threads, b);
  }
  double mse_step(bool want_error_map) {
    if (want_error_map) error_map.resize(int64_t(width) * height);
    return raster.mse_step(target.data(), s.grad.data(), want_error_map ? error_map.data() : nullptr);
  }
  void adam(const AdamStep& step) {
    const int64_t n = s.size();
    const int stride = s.stride;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; ++i)
      adam_update(&s.params[i * stride], &s.grad[i * stride], &s.m[i * stride], &s.v[i * stride], stride, step);
  }
  void prune_and_densify(FitStats& stats) {
    stats.gaussians_pruned += prune(s, channels, config.prune_threshold, width, height);
    if (!config.densify || s.size() >= config.num_gaussians) return;
    // The error map is of the parameters before this step's update; it is only a guide.
    const int64_t plane = int64_t(width) * height;
    render_hwc.resize(plane * channels);
    render_planar.resize(plane * channels);
    raster.bin(s.params.data(), s.size(), channels, width, height, threads, budget);
    raster.forward(render_hwc.data(), cancel);
    for (int64_t p = 0; p < plane; ++p)
      for (int c = 0; c < channels; ++c) render_planar[c * plane + p] = render_hwc[p * channels + c];
    stats.gaussians_added += densify(s, config.num_gaussians - s.size(), error_map, target.data(),
                                     render_planar, width, height, channels, config.min_chol);
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

  State s{stride, {}, {}, {}, {}};
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
