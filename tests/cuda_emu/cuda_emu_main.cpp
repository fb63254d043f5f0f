// Runs the CUDA rasteriser and fitting kernels (src_cuda/raster_cuda_kernels.cuh, fit_cuda_kernels.cuh) on the CPU under the emulator in
// cuda_emu.h, with host code that mirrors CudaRasterizer (raster_cuda.cu) step for step; CUB's scan and
// radix sort are replaced by std::partial_sum and std::stable_sort, which compute the same results.
// Used by tests/test_cuda_emu.py. Usage (raw little-endian float32 files):
//   cuda_emu render   C W H N params.f32 out.f32                  -> out: H x W x C
//   cuda_emu render_u8 C W H N params.f32 out.u8                  -> out: H x W x C uint8 (forward_u8)
//   cuda_emu backward C W H N params.f32 grad_image.f32 out.f32   -> out: N x (5 + C)
//   cuda_emu mse      C W H N params.f32 target_planar.f32 grad.f32 error_map.f32 loss.f64
//   cuda_emu fit      C W H N params.f32 image_hwc.f32 ITERATIONS LR_XY LR_CHOL LR_COLOR LR_FINAL_RATIO
//                     MIN_CHOL L1 out_params.f32 out_sse.f64
//                     [MAX_ENTRIES [CANCEL_AT [PRUNE_EVERY PRUNE_THRESHOLD PRUNE_UNTIL DENSIFY]]]
//                     (fit_image_cuda from the given Gaussians: the shared loop of fit_loop.h with the
//                     emulated bin + fused MSE step + Adam kernel, and the shared pruning/densification
//                     of prune_densify.h on the emulated error map and forward render; out_sse has the loss
//                     of every iteration, then of the final parameters; out_params the final Gaussians,
//                     whose count pruning may change; MAX_ENTRIES > 0 is the render budget; CANCEL_AT >= 0
//                     cancels the token during that iteration's step; DENSIFY is 0 or 1)
// Also prints "entries <count>" (tile entries after binning) on stdout, and after a fit
// "gaussians <final> pruned <count> added <count>".
#include "cuda_emu.h"  // first: defines the CUDA keywords the kernels use

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <numeric>
#include <string>

#include "fit_cuda_kernels.cuh"
#include "fit_loop.h"
#include "prune_densify.h"
#include "raster_cuda_kernels.cuh"

using namespace splat;
using namespace splat::cuda_kernels;

namespace {

std::vector<float> read_floats(const std::string& path, size_t count) {
  std::vector<float> v(count);
  std::ifstream f(path, std::ios::binary);
  if (count && !f.read(reinterpret_cast<char*>(v.data()), std::streamsize(count * sizeof(float))))
    throw std::runtime_error("cannot read " + std::to_string(count) + " floats from " + path);
  return v;
}

template <typename T>
void write(const std::string& path, const std::vector<T>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
}

unsigned grid_for(int64_t items, int block) { return unsigned((items + block - 1) / block); }

struct Binned {
  int channels, width, height, tiles_x, tiles_y;
  int64_t n, entries;
  const float* params;
  std::vector<Prepared> prepared;
  std::vector<int64_t> offsets;
  std::vector<int32_t> entry_gaussian, tile_entries, tile_start, tile_end;

  RasterView view() const {
    return RasterView{params, prepared.data(), entry_gaussian.data(), tile_entries.data(), tile_start.data(),
                      tile_end.data(), width, height, tiles_x};
  }
  int tiles() const { return tiles_x * tiles_y; }
};

// CudaRasterizer::bin, with the kernels emulated.
Binned bin(const float* params, int64_t n, int channels, int width, int height) {
  Binned b;
  b.params = params;
  b.n = n;
  b.channels = channels;
  b.width = width;
  b.height = height;
  b.tiles_x = (width + kTileSize - 1) / kTileSize;
  b.tiles_y = (height + kTileSize - 1) / kTileSize;
  b.prepared.resize(std::max<int64_t>(n, 1));
  b.offsets.assign(n + 1, 0);
  if (n > 0) {
    Prepared* prepared = b.prepared.data();
    int64_t* counts = b.offsets.data() + 1;
    emu::launch(grid_for(n, 256), 256, [&] {
      preprocess_kernel(params, n, channels, width, height, prepared, counts);
    });
    std::partial_sum(b.offsets.begin() + 1, b.offsets.end(), b.offsets.begin() + 1);  // CUB InclusiveSum
  }
  b.entries = b.offsets[n];
  const int tiles = b.tiles();
  b.tile_start.assign(tiles, 0);
  b.tile_end.assign(tiles, 0);
  b.tile_entries.assign(std::max<int64_t>(b.entries, 1), 0);
  b.entry_gaussian.assign(std::max<int64_t>(b.entries, 1), 0);
  if (b.entries == 0) return b;
  std::vector<uint32_t> keys(b.entries), keys_out(b.entries);
  std::vector<int32_t> vals(b.entries);
  {
    const Prepared* prepared = b.prepared.data();
    const int64_t* offsets = b.offsets.data();
    uint32_t* k = keys.data();
    int32_t* v = vals.data();
    int32_t* eg = b.entry_gaussian.data();
    const int tx = b.tiles_x;
    emu::launch(grid_for(n, 256), 256, [&] { duplicate_kernel(prepared, offsets, n, tx, k, v, eg); });
  }
  // CUB DeviceRadixSort::SortPairs is a stable sort by key.
  std::vector<int32_t> order(b.entries);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t c) { return keys[a] < keys[c]; });
  for (int64_t k = 0; k < b.entries; ++k) {
    keys_out[k] = keys[order[k]];
    b.tile_entries[k] = vals[order[k]];
  }
  {
    const uint32_t* k = keys_out.data();
    const int32_t entries = int32_t(b.entries);
    int32_t* start = b.tile_start.data();
    int32_t* end = b.tile_end.data();
    emu::launch(grid_for(entries, 256), 256, [&] { tile_ranges_kernel(k, entries, start, end); });
  }
  return b;
}

// CudaRasterizer::forward (Out = float) / forward_u8 (Out = uint8_t) with the kernel emulated: out is H x W x C.
template <typename Out>
void forward(const Binned& b, Out* out) {
  const RasterView v = b.view();
  if (b.channels == 1)
    emu::launch(unsigned(b.tiles()), kBlock, [&] { forward_kernel<1, Out>(v, out); });
  else
    emu::launch(unsigned(b.tiles()), kBlock, [&] { forward_kernel<3, Out>(v, out); });
}

void reduce(const Binned& b, const std::vector<float>& entry_grads, std::vector<float>& grad_params) {
  const int stride = kGeometryFloats + b.channels;
  grad_params.assign(b.n * stride, 0.0f);
  if (b.n == 0) return;
  const float* eg = entry_grads.data();
  const int64_t* off = b.offsets.data();
  float* out = grad_params.data();
  const int64_t n = b.n;
  emu::launch(grid_for(n * stride, 256), 256, [&] { reduce_entries_kernel(eg, off, n, stride, out); });
}

// CudaRasterizer::mse_step with the kernels emulated; returns the sum of squared errors.
double mse_step(const Binned& b, const float* target_planar, std::vector<float>& grad, float* error_map) {
  const int stride = kGeometryFloats + b.channels;
  const unsigned tiles = unsigned(b.tiles());
  std::vector<float> entry_grads(std::max<int64_t>(b.entries, 1) * stride, NAN);
  std::vector<double> tile_loss(tiles, NAN), loss(1, NAN);
  const float scale = 2.0f / (float(b.width) * float(b.height) * float(b.channels));
  const RasterView v = b.view();
  float* eg = entry_grads.data();
  double* tl = tile_loss.data();
  if (b.channels == 1)
    emu::launch(tiles, kBlock, [&] { backward_kernel<1, true>(v, nullptr, target_planar, error_map, scale, tl, eg); });
  else
    emu::launch(tiles, kBlock, [&] { backward_kernel<3, true>(v, nullptr, target_planar, error_map, scale, tl, eg); });
  reduce(b, entry_grads, grad);
  double* l = loss.data();
  const int ntiles = int(tiles);
  emu::launch(1, 1024, [&] { sum_loss_kernel(tl, ntiles, l); });
  return loss[0];
}

// fit_image_cuda's steps (fit_cuda.cu) with the kernels emulated, run by the shared loop (fit_loop.h).
// Records the loss of every mse_step; cancels `token` during the step of iteration `cancel_at` (>= 0).
struct EmuFitBackend {
  GaussianState s;  // the device's params, m and v (host memory here: no round trip to make)
  int channels, width, height;
  const FitConfig& config;
  std::vector<float> grad, target, error_map;  // target planar
  Binned binned;
  RenderBudget budget;
  int cancel_at;
  std::vector<double> losses;
  CancelToken* token = nullptr;

  // CudaRasterizer::bin and its budget check.
  Binned bin_checked(const GaussianState& g, const RenderBudget& b) const {
    Binned out = ::bin(g.params.data(), g.size(), channels, width, height);
    check_render_budget(out.entries, out.entries * kTileSize * kTileSize, b, "a whole 16x16 tile per entry");
    return out;
  }
  void bin(const RenderBudget& b) {
    budget = b;
    binned = bin_checked(s, b);
  }
  double mse_step(bool want_error_map) {
    if (int(losses.size()) == cancel_at) token->cancel();
    if (want_error_map) error_map.assign(size_t(width) * height, NAN);  // NAN: every pixel must be written
    losses.push_back(::mse_step(binned, target.data(), grad, want_error_map ? error_map.data() : nullptr));
    return losses.back();
  }
  void adam(const AdamStep& a) {
    const int stride = s.stride;
    const int64_t n = s.size();
    float* pp = s.params.data();
    const float* gg = grad.data();
    float* mm = s.m.data();
    float* vp = s.v.data();
    emu::launch(grid_for(n, 256), 256, [&] { adam_kernel(pp, gg, mm, vp, n, stride, a); });
  }
  // As CudaFitBackend: the shared step on the error map of this iteration and the emulated forward pass.
  void prune_and_densify(FitStats& stats) {
    splat::prune_and_densify(s, config, error_map.data(), target.data(), width, height, channels, stats,
                             [&](const GaussianState& pruned, float* out) {
                               forward(bin_checked(pruned, budget), out);
                             });
  }
  bool params_finite() const {
    return std::all_of(s.params.begin(), s.params.end(), [](float x) { return std::isfinite(x); });
  }
};

CancelToken token;

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 8) throw std::invalid_argument("usage: see the header of cuda_emu_main.cpp");
    const std::string mode = argv[1];
    const int channels = std::atoi(argv[2]), width = std::atoi(argv[3]), height = std::atoi(argv[4]);
    const int64_t n = std::atoll(argv[5]);
    const int stride = kGeometryFloats + channels;
    const std::vector<float> params = read_floats(argv[6], size_t(n) * stride);
    Binned b = bin(params.data(), n, channels, width, height);
    std::printf("entries %lld\n", static_cast<long long>(b.entries));
    const RasterView v = b.view();
    const unsigned tiles = unsigned(b.tiles());
    const size_t pixels = size_t(width) * height;
    if (mode == "render") {
      std::vector<float> out(pixels * channels, -1.0f);
      forward(b, out.data());
      write(argv[7], out);
    } else if (mode == "render_u8") {
      std::vector<uint8_t> out(pixels * channels, 77);
      forward(b, out.data());
      write(argv[7], out);
    } else if (mode == "backward") {
      const std::vector<float> grad_image = read_floats(argv[7], pixels * channels);
      std::vector<float> entry_grads(std::max<int64_t>(b.entries, 1) * stride, NAN), grad;
      float* eg = entry_grads.data();
      const float* gi = grad_image.data();
      if (channels == 1)
        emu::launch(tiles, kBlock, [&] { backward_kernel<1, false>(v, gi, nullptr, nullptr, 1.0f, nullptr, eg); });
      else
        emu::launch(tiles, kBlock, [&] { backward_kernel<3, false>(v, gi, nullptr, nullptr, 1.0f, nullptr, eg); });
      reduce(b, entry_grads, grad);
      write(argv[8], grad);
    } else if (mode == "mse") {
      if (argc < 11) throw std::invalid_argument("mse needs target, grad, error map and loss paths");
      const std::vector<float> target = read_floats(argv[7], pixels * channels);
      std::vector<float> grad, error_map(pixels, -1.0f);
      const double loss = mse_step(b, target.data(), grad, error_map.data());
      write(argv[8], grad);
      write(argv[9], error_map);
      write(argv[10], std::vector<double>{loss});
    } else if (mode == "fit") {
      if (argc < 17) throw std::invalid_argument("fit needs image, iterations, 6 settings and 2 output paths");
      const std::vector<float> image = read_floats(argv[7], pixels * channels);
      FitConfig config;
      config.num_gaussians = n;
      config.iterations = std::atoi(argv[8]);
      config.lr_xy = std::strtof(argv[9], nullptr);
      config.lr_chol = std::strtof(argv[10], nullptr);
      config.lr_color = std::strtof(argv[11], nullptr);
      config.lr_final_ratio = std::strtof(argv[12], nullptr);
      config.min_chol = std::strtof(argv[13], nullptr);
      config.l1_color = std::strtof(argv[14], nullptr);
      RenderBudget budget;
      budget.max_entries = argc > 17 ? std::atoll(argv[17]) : 0;
      if (argc > 19) {
        if (argc < 23) throw std::invalid_argument("fit needs all four prune settings");
        config.prune_every = std::atoi(argv[19]);
        config.prune_threshold = std::strtof(argv[20], nullptr);
        config.prune_until = std::strtof(argv[21], nullptr);
        config.densify = std::atoi(argv[22]) != 0;
      }
      EmuFitBackend backend{GaussianState{stride, params, {}, {}}, channels, width, height, config, {}, {}, {},
                            {}, {}, argc > 18 ? std::atoi(argv[18]) : -1, {}};
      backend.s.resize(n);  // fresh moments
      backend.target.resize(pixels * channels);
      for (size_t q = 0; q < pixels; ++q)
        for (int c = 0; c < channels; ++c) backend.target[c * pixels + q] = image[q * channels + c];
      FitStats stats;
      backend.token = &token;
      run_fit_loop(backend, config, width, height, double(pixels) * channels, stats, &token, budget);
      write(argv[15], backend.s.params);
      write(argv[16], backend.losses);
      std::printf("gaussians %lld pruned %lld added %lld\n", static_cast<long long>(backend.s.size()),
                  static_cast<long long>(stats.gaussians_pruned), static_cast<long long>(stats.gaussians_added));
    } else {
      throw std::invalid_argument("unknown mode " + mode);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cuda_emu: %s\n", e.what());
    return 2;
  }
  return 0;
}
