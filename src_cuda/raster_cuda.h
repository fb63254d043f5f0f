// Tile-based CUDA rasteriser of the 2DGS model, with the semantics of CpuRasterizer (raster_cpu.h):
// the same 16x16 tiles, the same per-pixel math (gaussian_math.h), every Gaussian that touches a tile
// counted, degenerate / non-finite Gaussians contributing nothing.
//
// Pipeline of bin(): preprocess (prepare_gaussian + tile count per Gaussian) -> inclusive scan of the
// counts (CUB) -> duplicate (one (tile, entry) pair per touched tile) -> stable radix sort by tile (CUB)
// -> per-tile [start, end) ranges. Within a tile the entries stay in Gaussian order, as on the CPU.
// forward(): one block per tile, one thread per pixel, the tile's list walked in shared-memory batches
// (no per-tile cap). backward()/mse_step(): the same per tile, then per-Gaussian sums reduced across the
// block deterministically (warp shuffles + fixed-order sum over warps) into one gradient slot per entry,
// and per Gaussian over its entries in order: no float atomics, so results are run-to-run deterministic.
//
// All pointers passed to the CudaRasterizer methods are device pointers; work is enqueued on the
// stream given at construction. bin() synchronises once (to size the entry buffers); mse_step()
// synchronises to return the loss.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core_limits.h"
#include "cuda_util.h"
#include "gaussian_math.h"

namespace splat {

class CudaRasterizer {
 public:
  explicit CudaRasterizer(cudaStream_t stream);

  // Prepares and bins `n` packed Gaussians (device rows of 5 + channels floats) for a width x height
  // image. The params must stay valid (and unchanged) until the next bin(). Over `budget` (entries, or
  // work = entries x a whole tile of pixels), throws LimitExceeded before the tile lists are allocated.
  void bin(const float* d_params, int64_t n, int channels, int width, int height,
           const RenderBudget& budget = RenderBudget{});

  // Renders into d_out (height x width x channels, interleaved); forward_u8 converts every value with
  // to_u8 (gaussian_math.h) as it is written, as the CPU's render_u8 does: no float image is held.
  void forward(float* d_out);
  void forward_u8(uint8_t* d_out);

  // Gradient of sum(grad_image * render) w.r.t. every packed parameter: d_grad_image is HWC,
  // d_grad_params n x (5 + C).
  void backward(const float* d_grad_image, float* d_grad_params);

  // Fused fitting step for loss = mean((render - target)^2): d_target_planar is C x H x W. Writes
  // dLoss/dparams to d_grad_params, the per-pixel squared error to d_error_map if not null (H x W),
  // and returns the sum of squared errors (synchronises the stream).
  double mse_step(const float* d_target_planar, float* d_grad_params, float* d_error_map);

  int64_t num_entries() const { return entries_; }
  int tiles_x() const { return tiles_x_; }
  int tiles_y() const { return tiles_y_; }
  cudaStream_t stream() const { return stream_; }

 private:
  void reduce_entry_grads(float* d_grad_params);
  template <typename Out>
  void forward_as(Out* d_out);

  cudaStream_t stream_;
  const float* params_ = nullptr;
  int64_t n_ = 0, entries_ = 0;
  int channels_ = 0, width_ = 0, height_ = 0, tiles_x_ = 0, tiles_y_ = 0;

  DeviceBuffer<Prepared> prepared_;
  DeviceBuffer<int64_t> gauss_offsets_;   // n + 1: entries of Gaussian i are [off[i], off[i+1])
  DeviceBuffer<int32_t> entry_gaussian_;  // Gaussian of each entry
  DeviceBuffer<uint32_t> keys_in_, keys_out_;   // tile of each entry, before / after sorting
  DeviceBuffer<int32_t> vals_in_, tile_entries_;  // entry ids, before / after sorting by tile
  DeviceBuffer<int32_t> tile_start_, tile_end_;   // tile t lists tile_entries_[start[t] .. end[t])
  DeviceBuffer<float> entry_grads_;       // (5 + C) per entry
  DeviceBuffer<double> tile_loss_, loss_;
  DeviceBuffer<unsigned char> temp_;      // CUB scratch
};

// Number of CUDA devices usable by this process (0 when there is no driver or no device; never throws).
int cuda_device_count();

// One-shot host wrappers used by the Python bindings (host pointers in and out, a private stream).
// Arguments are validated as for the CPU path (std::invalid_argument).
void cuda_render(const float* params, int64_t n, int channels, int width, int height, float* out,
                 const RenderBudget& budget = RenderBudget{});
void cuda_render(const float* params, int64_t n, int channels, int width, int height, uint8_t* out,
                 const RenderBudget& budget = RenderBudget{});
void cuda_render_backward(const float* params, int64_t n, int channels, int width, int height,
                          const float* grad_image, float* grad_params);

}  // namespace splat
