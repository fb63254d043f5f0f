// Kernels of the CUDA tile rasteriser (see raster_cuda.h for the pipeline). Kept in a header, apart from
// the host code and CUB, so that tests/cuda_emu can also compile them for the CPU with a small shim that
// emulates blocks, __syncthreads and warp shuffles: the kernel code itself is exercised on machines
// without a GPU.
#pragma once

#include <cstdint>

#include "gaussian_math.h"

namespace splat {
namespace cuda_kernels {

constexpr int kBlock = kTilePixels;          // one thread per pixel of a 16x16 tile
constexpr int kWarps = kBlock / 32;
constexpr int kForwardBatch = kBlock;        // Gaussians staged in shared memory per batch (forward)
constexpr int kBackwardBatch = 64;           // ... in the backward pass (bounded by the partial sums)
constexpr unsigned kFullMask = 0xffffffffu;

// Everything the tile kernels read, passed by value.
struct RasterView {
  const float* params;
  const Prepared* prepared;
  const int32_t* entry_gaussian;
  const int32_t* tile_entries;
  const int32_t* tile_start;
  const int32_t* tile_end;
  int width, height, tiles_x;
};


// ---------------------------------------------------------------------------------------- binning
// prepare_gaussian for every Gaussian (degenerate / non-finite / off-image: empty box) plus the number of
// tiles its box touches.
__global__ void preprocess_kernel(const float* __restrict__ params, int64_t n, int channels, int width,
                                  int height, Prepared* __restrict__ prepared, int64_t* __restrict__ counts) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const Prepared p = prepare_gaussian(params + i * (kGeometryFloats + channels), channels, width, height);
  prepared[i] = p;
  int64_t tiles = 0;
  if (p.x0 <= p.x1 && p.y0 <= p.y1)
    tiles = int64_t(p.x1 / kTileSize - p.x0 / kTileSize + 1) * (p.y1 / kTileSize - p.y0 / kTileSize + 1);
  counts[i] = tiles;
}

// One (tile, entry) pair per tile a Gaussian touches; entries of Gaussian i are [off[i], off[i+1]).
__global__ void duplicate_kernel(const Prepared* __restrict__ prepared, const int64_t* __restrict__ offsets,
                                 int64_t n, int tiles_x, uint32_t* __restrict__ keys,
                                 int32_t* __restrict__ vals, int32_t* __restrict__ entry_gaussian) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  int64_t e = offsets[i];
  if (e == offsets[i + 1]) return;
  const Prepared p = prepared[i];
  for (int ty = p.y0 / kTileSize; ty <= p.y1 / kTileSize; ++ty)
    for (int tx = p.x0 / kTileSize; tx <= p.x1 / kTileSize; ++tx, ++e) {
      keys[e] = uint32_t(ty) * uint32_t(tiles_x) + uint32_t(tx);
      vals[e] = int32_t(e);
      entry_gaussian[e] = int32_t(i);
    }
}

// Tile ranges from the sorted keys (tiles with no entry keep start = end = 0).
__global__ void tile_ranges_kernel(const uint32_t* __restrict__ keys, int32_t entries,
                                   int32_t* __restrict__ start, int32_t* __restrict__ end) {
  const int32_t k = int32_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= entries) return;
  const uint32_t key = keys[k];
  if (k == 0 || keys[k - 1] != key) start[key] = k;
  if (k == entries - 1 || keys[k + 1] != key) end[key] = k + 1;
}

// ------------------------------------------------------------------------------------ tile kernels
struct TilePixel {
  int px, py;   // pixel coordinates (may lie past the image edge in partial tiles)
  bool inside;  // within the image
};

__device__ __forceinline__ TilePixel tile_pixel(const RasterView& v) {
  TilePixel t;
  const int tile = blockIdx.x;
  t.px = (tile % v.tiles_x) * kTileSize + int(threadIdx.x) % kTileSize;
  t.py = (tile / v.tiles_x) * kTileSize + int(threadIdx.x) / kTileSize;
  t.inside = t.px < v.width && t.py < v.height;
  return t;
}

// Stages entries [base, base + count) of the tile list in shared memory (threads < count load one each).
template <int C>
__device__ __forceinline__ void stage_batch(const RasterView& v, int32_t base, int count, Prepared* s_g,
                                            float (*s_c)[C], int32_t* s_e) {
  if (int(threadIdx.x) < count) {
    const int32_t e = v.tile_entries[base + threadIdx.x];
    const int32_t gi = v.entry_gaussian[e];
    s_g[threadIdx.x] = v.prepared[gi];
    const float* colour = v.params + int64_t(gi) * (kGeometryFloats + C) + kGeometryFloats;
#pragma unroll
    for (int c = 0; c < C; ++c) s_c[threadIdx.x][c] = colour[c];
    if (s_e) s_e[threadIdx.x] = e;
  }
}

// Whether pixel tp lies in g's box (prepare_gaussian's exact 3-sigma extent, computed in double). Only
// such pixels are evaluated: a pixel outside it has q > 9 in exact arithmetic, so this also settles
// float rounding of q at the cutoff the same way on every backend and SIMD width.
__device__ __forceinline__ bool in_box(const Prepared& g, const TilePixel& tp) {
  return tp.px >= g.x0 && tp.px <= g.x1 && tp.py >= g.y0 && tp.py <= g.y1;
}

// The pixel's value: the tile's Gaussians summed in list (= Gaussian index) order, each evaluated only
// inside its box (in_box). Must be called by the whole block.
template <int C, int kBatch>
__device__ void render_pixel(const RasterView& v, int32_t begin, int32_t end, const TilePixel& tp,
                             Prepared* s_g, float (*s_c)[C], float* acc) {
  const float fx = tp.px + 0.5f, fy = tp.py + 0.5f;
  for (int32_t base = begin; base < end; base += kBatch) {
    const int count = min(kBatch, int(end - base));
    __syncthreads();  // the previous batch is consumed
    stage_batch<C>(v, base, count, s_g, s_c, nullptr);
    __syncthreads();
    for (int j = 0; j < count; ++j) {
      const Prepared& g = s_g[j];
      if (!in_box(g, tp)) continue;
      const Mahalanobis m = mahalanobis(g, fx, fy);
      const float w = gaussian_weight(m.q);
#pragma unroll
      for (int c = 0; c < C; ++c) acc[c] += s_c[j][c] * w;
    }
  }
}

// Out: float (the raw render) or uint8_t (converted by to_u8, as the CPU's render_u8 does).
template <int C, typename Out>
__global__ void __launch_bounds__(kBlock) forward_kernel(RasterView v, Out* __restrict__ out) {
  __shared__ Prepared s_g[kForwardBatch];
  __shared__ float s_c[kForwardBatch][C];
  const TilePixel tp = tile_pixel(v);
  float acc[C];
#pragma unroll
  for (int c = 0; c < C; ++c) acc[c] = 0.0f;
  render_pixel<C, kForwardBatch>(v, v.tile_start[blockIdx.x], v.tile_end[blockIdx.x], tp, s_g, s_c, acc);
  if (tp.inside) {
    Out* o = out + (int64_t(tp.py) * v.width + tp.px) * C;
#pragma unroll
    for (int c = 0; c < C; ++c) store_pixel(o + c, acc[c]);
  }
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) x += __shfl_xor_sync(kFullMask, x, off);
  return x;
}

__device__ __forceinline__ double warp_sum(double x) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) x += __shfl_xor_sync(kFullMask, x, off);
  return x;
}

// Backward pass per tile. With kFused the tile is first rendered and compared with the target and the
// gradient image is grad_scale * (render - target) (the tile's squared error goes to tile_loss);
// otherwise the gradient image is read from grad_image (HWC).
//
// Per Gaussian of the tile's list, each pixel computes its terms of the GradSums (and dL/dc_k); they are
// summed over each warp by a butterfly of shuffles (skipped when the whole warp has zero weight: its
// terms are then exactly 0), written per warp to shared memory, and summed over the warps in a fixed
// order by one thread per Gaussian, which turns them into the entry's gradient with
// geometry_gradient(). One slot per (tile, Gaussian) entry: no atomics, deterministic.
template <int C, bool kFused>
__global__ void __launch_bounds__(kBlock)
    backward_kernel(RasterView v, const float* __restrict__ grad_image, const float* __restrict__ target,
                    float* __restrict__ error_map, float grad_scale, double* __restrict__ tile_loss,
                    float* __restrict__ entry_grads) {
  constexpr int kSums = 5 + C;  // S_x, S_11, S_y, S_21, S_22, then dL/dc_k
  __shared__ Prepared s_g[kBackwardBatch];
  __shared__ float s_c[kBackwardBatch][C];
  __shared__ int32_t s_e[kBackwardBatch];
  __shared__ float s_part[kWarps][kBackwardBatch][kSums];
  __shared__ double s_loss[kWarps];

  const TilePixel tp = tile_pixel(v);
  const int32_t begin = v.tile_start[blockIdx.x], end = v.tile_end[blockIdx.x];
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  const int64_t pix = int64_t(tp.py) * v.width + tp.px;

  float grad[C];
  if constexpr (kFused) {
    float acc[C];
#pragma unroll
    for (int c = 0; c < C; ++c) acc[c] = 0.0f;
    render_pixel<C, kBackwardBatch>(v, begin, end, tp, s_g, s_c, acc);
    const int64_t plane = int64_t(v.width) * v.height;
    float e2 = 0.0f;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const float r = tp.inside ? acc[c] - target[c * plane + pix] : 0.0f;
      e2 += r * r;
      grad[c] = grad_scale * r;
    }
    if (tp.inside && error_map) error_map[pix] = e2;
    const double wsum = warp_sum(double(e2));
    if (lane == 0) s_loss[warp] = wsum;
    __syncthreads();
    if (threadIdx.x == 0) {
      double sse = 0.0;
      for (int k = 0; k < kWarps; ++k) sse += s_loss[k];
      tile_loss[blockIdx.x] = sse;
    }
  } else {
#pragma unroll
    for (int c = 0; c < C; ++c) grad[c] = tp.inside ? grad_image[pix * C + c] : 0.0f;
  }

  const float fx = tp.px + 0.5f, fy = tp.py + 0.5f;
  for (int32_t base = begin; base < end; base += kBackwardBatch) {
    const int count = min(kBackwardBatch, int(end - base));
    __syncthreads();  // the previous batch (and its partial sums) is consumed
    stage_batch<C>(v, base, count, s_g, s_c, s_e);
    __syncthreads();
    for (int j = 0; j < count; ++j) {
      const Prepared& g = s_g[j];
      float sums[kSums];
#pragma unroll
      for (int k = 0; k < kSums; ++k) sums[k] = 0.0f;
      float w = 0.0f;
      if (in_box(g, tp)) {
        const Mahalanobis m = mahalanobis(g, fx, fy);
        w = gaussian_weight(m.q);
        if (w != 0.0f) {
          float dot = 0.0f;
#pragma unroll
          for (int c = 0; c < C; ++c) {
            dot += grad[c] * s_c[j][c];
            sums[5 + c] = grad[c] * w;
          }
          const float gq = -0.5f * w * dot;
          const float e1 = gq * (m.z1 - g.l21 * g.inv_l22 * m.z2);
          const float gz2 = gq * m.z2;
          sums[0] = e1;
          sums[1] = e1 * m.z1;
          sums[2] = gz2;
          sums[3] = gz2 * m.z1;
          sums[4] = gz2 * m.z2;
        }
      }
      if (__any_sync(kFullMask, w != 0.0f)) {
#pragma unroll
        for (int k = 0; k < kSums; ++k) sums[k] = warp_sum(sums[k]);
      }
      if (lane == 0) {
#pragma unroll
        for (int k = 0; k < kSums; ++k) s_part[warp][j][k] = sums[k];
      }
    }
    __syncthreads();
    if (int(threadIdx.x) < count) {
      const int j = threadIdx.x;
      float total[kSums];
#pragma unroll
      for (int k = 0; k < kSums; ++k) {
        float s = 0.0f;
        for (int w = 0; w < kWarps; ++w) s += s_part[w][j][k];
        total[k] = s;
      }
      float* out = entry_grads + int64_t(s_e[j]) * (kGeometryFloats + C);
      geometry_gradient(s_g[j], GradSums{total[0], total[1], total[2], total[3], total[4]}, out);
#pragma unroll
      for (int c = 0; c < C; ++c) out[kGeometryFloats + c] = total[5 + c];
    }
  }
}

// grad_params[i][j] = sum over Gaussian i's entries, in entry order (deterministic).
__global__ void reduce_entries_kernel(const float* __restrict__ entry_grads, const int64_t* __restrict__ offsets,
                                      int64_t n, int stride, float* __restrict__ grad_params) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n * stride) return;
  const int64_t i = idx / stride;
  const int j = int(idx - i * stride);
  float total = 0.0f;
  for (int64_t e = offsets[i]; e < offsets[i + 1]; ++e) total += entry_grads[e * stride + j];
  grad_params[idx] = total;
}

// Sum of the per-tile losses in a fixed order (one block).
__global__ void __launch_bounds__(1024) sum_loss_kernel(const double* __restrict__ tile_loss, int tiles,
                                                        double* __restrict__ out) {
  __shared__ double s[1024];
  double acc = 0.0;
  for (int t = threadIdx.x; t < tiles; t += blockDim.x) acc += tile_loss[t];
  s[threadIdx.x] = acc;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (int(threadIdx.x) < stride) s[threadIdx.x] += s[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = s[0];
}

}  // namespace cuda_kernels
}  // namespace splat
