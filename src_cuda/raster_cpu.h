// Tile-based CPU rasteriser of the 2DGS model: binning, forward render, backward pass, and the fused
// forward + MSE + backward step the fitter runs each iteration.
//
// Determinism: every tile sums its Gaussians in index order, every Gaussian sums its per-tile gradient
// pieces in tile order, and the loss is summed in tile order, so results do not depend on the thread
// count or the scheduling.
#pragma once

#include <cstdint>
#include <vector>

#include "gaussian_math.h"
#include "core_limits.h"

namespace splat {

// Validates raster arguments against the maxima in core_limits.h; throws std::invalid_argument.
void check_raster_args(int64_t num_gaussians, int channels, int64_t width, int64_t height);

// Threads to use: `requested` if positive, else all OpenMP threads.
int resolve_threads(int requested);

// Floats per SIMD chunk the kernels were compiled for (4: SSE2 baseline, 8: AVX2, 16: AVX-512).
int simd_lanes();

// A tile's origin in pixels and its extent clipped to the image.
struct TileRect {
  int x0, y0;
  int w, h;
};

class CpuRasterizer {
 public:
  // Prepares and bins `n` packed Gaussians (rows of 5 + channels floats) for a width x height image.
  // Buffers are kept between calls, so a fitting loop allocates only when the entry count grows.
  // The entry count and the work of a pass are counted first: over `budget`, it throws LimitExceeded
  // before the tile lists are allocated. A cancelled `cancel` token stops the tile-list passes (throws
  // Cancelled): with image-sized Gaussians they are most of a render's time.
  void bin(const float* params, int64_t n, int channels, int width, int height, int threads,
           const RenderBudget& budget = RenderBudget{}, const CancelToken* cancel = nullptr);

  // Renders the binned Gaussians into `out` (height x width x channels, interleaved). A cancelled
  // `cancel` token stops it between tiles (throws Cancelled).
  void forward(float* out, const CancelToken* cancel = nullptr) const;

  // The same render converted tile by tile to uint8 like numpy's
  // clip(nan_to_num(v * 255 + 0.5), 0, 255).astype(uint8) in float32: no float image is allocated.
  void forward_u8(uint8_t* out, const CancelToken* cancel = nullptr) const;

  // Gradient of sum(grad_image * render) w.r.t. every packed parameter, into grad_params (n x (5+C)).
  void backward(const float* grad_image, float* grad_params);

  // One fitting step for loss = mean((render - target)^2) over pixels and channels. `target_planar` is
  // channels x height x width. Writes dLoss/dparams into grad_params and returns the sum of squared
  // errors. If `error_map` is given (height x width), it receives the per-pixel squared error.
  double mse_step(const float* target_planar, float* grad_params, float* error_map);

  // W W^T c for the binned Gaussians' colours c, with W (N x pixels) their footprints: the colour part
  // of backward(render()), in one fused pass. The normal-equation operator of least-squares colours on
  // fixed geometry (splatcodec.codec.colors). Writes n x (5+C) rows, geometry entries 0.
  void normal_colors(float* out);

  int64_t num_entries() const { return static_cast<int64_t>(entry_gaussian_.size()); }
  // Pixels one pass evaluates, counted in kWorkChunk-wide chunks (set by bin()).
  int64_t work() const { return work_; }

 private:
  template <int C, typename Out>
  void forward_impl(Out* out, const CancelToken* cancel) const;
  // Adds tile t's Gaussians into acc (C planes of kTilePixels, row stride kTileSize). kKeepWeights:
  // also writes every evaluated weight to `weights`, kLanes per chunk in loop order (at most
  // kTilePixels per entry of the tile); a template flag, so the plain render has no store to skip.
  template <int C, bool kKeepWeights>
  void render_tile(int t, const TileRect& tr, float (*acc)[kTilePixels], float* weights = nullptr) const;
  enum class Pass { kGradImage, kMseStep, kNormalColors };
  // One backward pass of kind P into grad_params (n x (5+C)), through the per-entry gradients.
  template <Pass P>
  void backward_pass(const float* grad_image, const float* target_planar, float* error_map, float grad_scale,
                     float* grad_params);
  template <int C, Pass P>
  void backward_impl(const float* grad_image, const float* target_planar, float* error_map,
                     float grad_scale);
  void reduce_entry_grads(float* grad_params) const;

  const float* params_ = nullptr;
  int64_t n_ = 0;
  int channels_ = 0, width_ = 0, height_ = 0, threads_ = 1;
  int tiles_x_ = 0, tiles_y_ = 0;
  int64_t work_ = 0;
  std::vector<Prepared> prepared_;
  std::vector<int64_t> gauss_offsets_;   // n + 1: entries of Gaussian i are [off[i], off[i+1])
  std::vector<int32_t> entry_gaussian_;  // Gaussian of each entry
  std::vector<int64_t> tile_offsets_;    // tiles + 1: tile t lists tile_entries_[off[t] .. off[t+1])
  std::vector<int64_t> tile_cursor_;
  std::vector<int64_t> tile_entries_;    // entry ids, grouped by tile, in Gaussian order
  std::vector<int32_t> entry_rows_;      // 2 per entry: first and last image row it visits in its tile
  std::vector<float> entry_grads_;       // (5 + C) per entry
  std::vector<double> tile_loss_;
};

}  // namespace splat
