#include "raster_cpu.h"

#include <omp.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace splat {

namespace {

// SIMD width the hot loops are written for: columns are processed in chunks of kLanes with a fixed
// trip count, so they vectorise without remainder loops (pixels past the image edge are computed but
// never written out).
#if defined(SPLAT_LANES)
constexpr int kLanes = SPLAT_LANES;
#elif defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
static_assert(kTileSize % kLanes == 0, "tiles must split into whole SIMD chunks");
static_assert(kTileSize % kWorkChunk == 0 && kWorkChunk >= kLanes, "work chunks must cover the SIMD chunks");

// Columns of a tile row covered by a Gaussian's box, [first, last], and the same widened to whole
// chunks, [begin, end). Columns of a chunk outside the box are masked, not left to the cutoff, so a
// pixel whose float q rounds to <= 9 just outside the exact box never counts: results do not depend on
// the SIMD width, and match the CUDA kernels, which apply the same box rule.
struct ColumnSpan {
  int first, last, begin, end;
};

inline ColumnSpan column_span(const Prepared& g, const TileRect& tr) {
  const int first = std::max(g.x0 - tr.x0, 0), last = std::min(g.x1 - tr.x0, kTileSize - 1);
  return ColumnSpan{first, last, first & ~(kLanes - 1), (last + kLanes) & ~(kLanes - 1)};
}

inline bool inside(int x, int first, int last) { return x >= first && x <= last; }

// Zeroes per-lane accumulators with vector stores. An `= {}` initialiser (or a plain loop, which
// GCC turns into memset) becomes a `rep stos` here, whose start-up costs as much as a small
// Gaussian's whole backward pass in a tile.
template <int kRows>
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif
inline void zero_lanes(float (*v)[kLanes]) {
  for (int j = 0; j < kRows; ++j)
#pragma omp simd
    for (int i = 0; i < kLanes; ++i) v[j][i] = 0.0f;
}

// Sum of kLanes partial sums, folded in halves (16 -> 8 -> 4 -> 2 -> 1): fixed-size vector adds
// instead of a chain of kLanes scalar ones.
inline float fold_lanes(float* v) {
  if constexpr (kLanes >= 16)
    for (int i = 0; i < 8; ++i) v[i] += v[i + 8];
  if constexpr (kLanes >= 8)
    for (int i = 0; i < 4; ++i) v[i] += v[i + 4];
  for (int i = 0; i < 2; ++i) v[i] += v[i + 2];
  return v[0] + v[1];
}

inline TileRect tile_rect(int tile, int tiles_x, int width, int height) {
  TileRect r;
  r.x0 = (tile % tiles_x) * kTileSize;
  r.y0 = (tile / tiles_x) * kTileSize;
  r.w = std::min(kTileSize, width - r.x0);
  r.h = std::min(kTileSize, height - r.y0);
  return r;
}


}  // namespace

void check_raster_args(int64_t num_gaussians, int channels, int64_t width, int64_t height) {
  if (channels != 1 && channels != 3)
    throw std::invalid_argument("channels must be 1 or 3, got " + std::to_string(channels));
  if (width <= 0 || height <= 0 || width > kMaxSide || height > kMaxSide || width * height > kMaxPixels)
    throw std::invalid_argument("image size " + std::to_string(width) + "x" + std::to_string(height) +
                                " is outside 1.." + std::to_string(kMaxSide) + " per side");
  if (num_gaussians < 0 || num_gaussians > kMaxGaussians)
    throw std::invalid_argument("Gaussian count " + std::to_string(num_gaussians) + " is out of range");
}

int simd_lanes() { return kLanes; }

int resolve_threads(int requested) {
  return requested > 0 ? requested : std::max(1, omp_get_max_threads());
}

void CpuRasterizer::bin(const float* params, int64_t n, int channels, int width, int height,
                        int threads, const RenderBudget& budget, const CancelToken* cancel) {
  check_raster_args(n, channels, width, height);
  params_ = params;
  n_ = n;
  channels_ = channels;
  width_ = width;
  height_ = height;
  threads_ = resolve_threads(threads);
  tiles_x_ = (width + kTileSize - 1) / kTileSize;
  tiles_y_ = (height + kTileSize - 1) / kTileSize;
  const int num_tiles = tiles_x_ * tiles_y_;
  const int stride = kGeometryFloats + channels;

  prepared_.resize(n);
  gauss_offsets_.resize(n + 1);
  int64_t work = 0;  // integers: the reduction's order cannot change the sum
#pragma omp parallel for schedule(static) num_threads(threads_) reduction(+ : work)
  for (int64_t i = 0; i < n; ++i) {
    prepared_[i] = prepare_gaussian(params + i * stride, channels, width, height);
    const Prepared& p = prepared_[i];
    int64_t tiles = 0;
    if (p.x0 <= p.x1 && p.y0 <= p.y1) {
      // Each tile row a Gaussian crosses is evaluated in whole SIMD chunks (kTileSize is a multiple
      // of kWorkChunk, so a chunk never straddles tiles).
      const int64_t first_chunk = p.x0 / kWorkChunk, last_chunk = p.x1 / kWorkChunk;
      tiles = int64_t(p.x1 / kTileSize - p.x0 / kTileSize + 1) * (p.y1 / kTileSize - p.y0 / kTileSize + 1);
      work += (last_chunk - first_chunk + 1) * kWorkChunk * int64_t(p.y1 - p.y0 + 1);
    }
    gauss_offsets_[i + 1] = tiles;
  }
  gauss_offsets_[0] = 0;
  for (int64_t i = 0; i < n; ++i) gauss_offsets_[i + 1] += gauss_offsets_[i];
  const int64_t entries = gauss_offsets_[n];
  work_ = work;
  check_render_budget(entries, work, budget);
  throw_if_cancelled(cancel);
  constexpr int64_t kCancelEvery = 64;  // Gaussians between two looks at the token (a relaxed load)

  // Count, then fill, each tile's list in Gaussian order: every Gaussian that touches a tile is listed,
  // and the buffers are exactly as large as what they hold.
  tile_offsets_.assign(num_tiles + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    if (i % kCancelEvery == 0) throw_if_cancelled(cancel);
    const Prepared& p = prepared_[i];
    if (gauss_offsets_[i + 1] == gauss_offsets_[i]) continue;
    for (int ty = p.y0 / kTileSize; ty <= p.y1 / kTileSize; ++ty)
      for (int tx = p.x0 / kTileSize; tx <= p.x1 / kTileSize; ++tx) ++tile_offsets_[ty * tiles_x_ + tx + 1];
  }
  for (int t = 0; t < num_tiles; ++t) tile_offsets_[t + 1] += tile_offsets_[t];
  tile_cursor_.assign(tile_offsets_.begin(), tile_offsets_.end() - 1);
  entry_gaussian_.resize(entries);
  tile_entries_.resize(entries);
  for (int64_t i = 0; i < n; ++i) {
    if (i % kCancelEvery == 0) throw_if_cancelled(cancel);
    const Prepared& p = prepared_[i];
    int64_t e = gauss_offsets_[i];
    if (gauss_offsets_[i + 1] == e) continue;
    for (int ty = p.y0 / kTileSize; ty <= p.y1 / kTileSize; ++ty)
      for (int tx = p.x0 / kTileSize; tx <= p.x1 / kTileSize; ++tx, ++e) {
        entry_gaussian_[e] = static_cast<int32_t>(i);
        tile_entries_[tile_cursor_[ty * tiles_x_ + tx]++] = e;
      }
  }
  // Each entry's rows: the box's rows in the tile, cut to those the ellipse reaches within the box's
  // columns there (strip_row_span; the same pixels count, fewer rows are visited).
  entry_rows_.resize(2 * entries);
#pragma omp parallel for schedule(static) num_threads(threads_)
  for (int64_t i = 0; i < n; ++i) {
    const Prepared& p = prepared_[i];
    const int64_t e = gauss_offsets_[i];
    if (gauss_offsets_[i + 1] == e) continue;
    const int tx0 = p.x0 / kTileSize, columns = p.x1 / kTileSize - tx0 + 1;
    for (int tx = tx0; tx < tx0 + columns; ++tx) {  // one span per tile column, cut to each tile row
      int span0 = p.y0, span1 = p.y1;
      if (columns > 1)
        strip_row_span(p, std::max(p.x0, tx * kTileSize) + 0.5,
                       std::min(p.x1, tx * kTileSize + kTileSize - 1) + 0.5, &span0, &span1);
      for (int ty = p.y0 / kTileSize, k = tx - tx0; ty <= p.y1 / kTileSize; ++ty, k += columns) {
        entry_rows_[2 * (e + k)] = std::max(span0, ty * kTileSize);
        entry_rows_[2 * (e + k) + 1] = std::min(span1, ty * kTileSize + kTileSize - 1);
      }
    }
  }
}

template <int C, bool kKeepWeights>
void CpuRasterizer::render_tile(int t, const TileRect& tr, float (*acc)[kTilePixels], float* weights) const {
  const int stride = kGeometryFloats + C;
  for (int64_t k = tile_offsets_[t]; k < tile_offsets_[t + 1]; ++k) {
    const int64_t e = tile_entries_[k];
    const int32_t gi = entry_gaussian_[e];
    // Local copies: the compiler then knows the accumulator stores cannot change them.
    const Prepared g = prepared_[gi];
    float color[C];
    for (int c = 0; c < C; ++c) color[c] = params_[int64_t(gi) * stride + kGeometryFloats + c];
    const int y0 = entry_rows_[2 * e] - tr.y0, y1 = entry_rows_[2 * e + 1] - tr.y0;
    const ColumnSpan span = column_span(g, tr);
    const int first = span.first, last = span.last;
    for (int y = y0; y <= y1; ++y) {
      const float py = tr.y0 + y + 0.5f;
      float* row[C];
      for (int c = 0; c < C; ++c) row[c] = acc[c] + y * kTileSize;
      for (int xb = span.begin; xb < span.end; xb += kLanes) {
#pragma omp simd
        for (int i = 0; i < kLanes; ++i) {
          const int x = xb + i;
          const Mahalanobis m = mahalanobis(g, tr.x0 + x + 0.5f, py);
          const float w_all = gaussian_weight(m.q);  // unconditionally: a plain select vectorises
          const float w = inside(x, first, last) ? w_all : 0.0f;
          for (int c = 0; c < C; ++c) row[c][x] += color[c] * w;
          if constexpr (kKeepWeights) weights[i] = w;
        }
        if constexpr (kKeepWeights) weights += kLanes;
      }
    }
  }
}

void CpuRasterizer::forward(float* out, const CancelToken* cancel) const {
  if (channels_ == 1)
    forward_impl<1>(out, cancel);
  else
    forward_impl<3>(out, cancel);
}

void CpuRasterizer::forward_u8(uint8_t* out, const CancelToken* cancel) const {
  if (channels_ == 1)
    forward_impl<1>(out, cancel);
  else
    forward_impl<3>(out, cancel);
}

template <int C, typename Out>
void CpuRasterizer::forward_impl(Out* out, const CancelToken* cancel) const {
  const int num_tiles = tiles_x_ * tiles_y_;
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads_)
  for (int t = 0; t < num_tiles; ++t) {
    if (is_cancelled(cancel)) continue;  // no exception may leave the parallel region
    const TileRect tr = tile_rect(t, tiles_x_, width_, height_);
    alignas(64) float acc[C][kTilePixels] = {};
    render_tile<C, false>(t, tr, acc);
    for (int y = 0; y < tr.h; ++y)
      for (int x = 0; x < tr.w; ++x)
        for (int c = 0; c < C; ++c)
          store_pixel(&out[(int64_t(tr.y0 + y) * width_ + tr.x0 + x) * C + c], acc[c][y * kTileSize + x]);
  }
  throw_if_cancelled(cancel);
}

void CpuRasterizer::backward(const float* grad_image, float* grad_params) {
  backward_pass<Pass::kGradImage>(grad_image, nullptr, nullptr, 1.0f, grad_params);
}

void CpuRasterizer::normal_colors(float* out) {
  backward_pass<Pass::kNormalColors>(nullptr, nullptr, nullptr, 1.0f, out);
}

double CpuRasterizer::mse_step(const float* target_planar, float* grad_params, float* error_map) {
  tile_loss_.assign(tiles_x_ * tiles_y_, 0.0);
  const float scale = 2.0f / (float(width_) * float(height_) * float(channels_));
  backward_pass<Pass::kMseStep>(nullptr, target_planar, error_map, scale, grad_params);
  double sse = 0.0;
  for (double v : tile_loss_) sse += v;
  return sse;
}

template <CpuRasterizer::Pass P>
void CpuRasterizer::backward_pass(const float* grad_image, const float* target_planar, float* error_map,
                                  float grad_scale, float* grad_params) {
  entry_grads_.resize(num_entries() * (kGeometryFloats + channels_));
  if (channels_ == 1)
    backward_impl<1, P>(grad_image, target_planar, error_map, grad_scale);
  else
    backward_impl<3, P>(grad_image, target_planar, error_map, grad_scale);
  reduce_entry_grads(grad_params);
}

// Backward pass per tile. kGradImage reads the gradient image from grad_image (HWC). The fused passes
// render the tile first: kMseStep compares it with the target (gradient image grad_scale * (render -
// target)), kNormalColors takes the render itself as the gradient image and sums only the colour part.
template <int C, CpuRasterizer::Pass P>
void CpuRasterizer::backward_impl(const float* grad_image, const float* target_planar,
                                  float* error_map, float grad_scale) {
  const int num_tiles = tiles_x_ * tiles_y_;
  const int stride = kGeometryFloats + C;
  const int64_t plane = int64_t(width_) * height_;
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads_)
  for (int t = 0; t < num_tiles; ++t) {
    const TileRect tr = tile_rect(t, tiles_x_, width_, height_);
    const int64_t begin = tile_offsets_[t], end = tile_offsets_[t + 1];
    // The fused passes keep the forward pass's weights, chunk by chunk in loop order, so the backward
    // pass below reads them instead of evaluating exp again (the same values, bit for bit).
    constexpr bool kFused = P != Pass::kGradImage;
    thread_local std::vector<float> weight_buffer;
    const float* weights = nullptr;
    if constexpr (kFused) {
      weight_buffer.resize(size_t(end - begin) * kTilePixels + kLanes);
      weights = weight_buffer.data();
    }
    // Columns past the image edge are read by the masked SIMD lanes (times a zero weight), so they
    // must hold zeros, not garbage that could be NaN; only partial tiles have them.
    alignas(64) float grad[C][kTilePixels];
    if (tr.w < kTileSize || P == Pass::kNormalColors)
      for (int c = 0; c < C; ++c) std::fill(grad[c], grad[c] + kTilePixels, 0.0f);
    if constexpr (P == Pass::kNormalColors) {
      render_tile<C, true>(t, tr, grad, weight_buffer.data());  // the gradient image is the render
    } else if constexpr (P == Pass::kMseStep) {
      alignas(64) float acc[C][kTilePixels] = {};
      render_tile<C, true>(t, tr, acc, weight_buffer.data());
      // Squared errors summed per column in double down the rows, then across the columns: the
      // loops vectorise (a single running sum would not), and the order is fixed.
      alignas(64) double column_sse[kTileSize] = {};
      for (int y = 0; y < tr.h; ++y) {
        const int64_t pix = int64_t(tr.y0 + y) * width_ + tr.x0;
        alignas(64) float e2[kTileSize];
        for (int x = 0; x < tr.w; ++x) {
          float sum = 0.0f;
          for (int c = 0; c < C; ++c) {
            const float r = acc[c][y * kTileSize + x] - target_planar[c * plane + pix + x];
            sum += r * r;
            grad[c][y * kTileSize + x] = grad_scale * r;
          }
          e2[x] = sum;
        }
        for (int x = 0; x < tr.w; ++x) column_sse[x] += e2[x];
        if (error_map) std::copy(e2, e2 + tr.w, error_map + pix);
      }
      double sse = 0.0;
      for (int x = 0; x < kTileSize; ++x) sse += column_sse[x];
      tile_loss_[t] = sse;
    } else {
      for (int y = 0; y < tr.h; ++y)
        for (int x = 0; x < tr.w; ++x)
          for (int c = 0; c < C; ++c)
            grad[c][y * kTileSize + x] = grad_image[(int64_t(tr.y0 + y) * width_ + tr.x0 + x) * C + c];
    }

    for (int64_t k = begin; k < end; ++k) {
      const int64_t e = tile_entries_[k];
      const int32_t gi = entry_gaussian_[e];
      const Prepared& g = prepared_[gi];
      const float* color = params_ + int64_t(gi) * stride + kGeometryFloats;
      const int y0 = entry_rows_[2 * e] - tr.y0, y1 = entry_rows_[2 * e + 1] - tr.y0;
      const ColumnSpan span = column_span(g, tr);
      const int first = span.first, last = span.last;
      const float ratio = g.l21 * g.inv_l22;
      // Per-lane partial sums, reduced across lanes once per Gaussian: a horizontal reduction per
      // chunk would cost more than the chunk itself with wide vectors.
      constexpr int kSums = 5 + C;  // S_x, S_11, S_y, S_21, S_22, then dL/dc_k
      alignas(64) float lanes[kSums][kLanes];
      zero_lanes<kSums>(lanes);
      for (int y = y0; y <= y1; ++y) {
        const float py = tr.y0 + y + 0.5f;
        const float* grow[C];
        for (int c = 0; c < C; ++c) grow[c] = grad[c] + y * kTileSize;
        for (int xb = span.begin; xb < span.end; xb += kLanes) {
#pragma omp simd
          for (int i = 0; i < kLanes; ++i) {
            const int x = xb + i;
            const Mahalanobis m = mahalanobis(g, tr.x0 + x + 0.5f, py);
            const float w = kFused ? weights[i] : (inside(x, first, last) ? gaussian_weight(m.q) : 0.0f);
            float dot = 0.0f;
            for (int c = 0; c < C; ++c) {
              dot += grow[c][x] * color[c];
              lanes[5 + c][i] += grow[c][x] * w;
            }
            if constexpr (P == Pass::kNormalColors) continue;  // colours only
            // Outside the cutoff z may be huge or infinite (an extreme l21): zero it there so that
            // 0 * inf cannot turn the sums into NaN.
            const float z1 = w > 0.0f ? m.z1 : 0.0f, z2 = w > 0.0f ? m.z2 : 0.0f;
            const float gq = -0.5f * w * dot;
            const float e1 = gq * (z1 - ratio * z2);
            const float gz2 = gq * z2;
            lanes[0][i] += e1;
            lanes[1][i] += e1 * z1;
            lanes[2][i] += gz2;
            lanes[3][i] += gz2 * z1;
            lanes[4][i] += gz2 * z2;
          }
          if constexpr (kFused) weights += kLanes;
        }
      }
      float sums[kSums] = {};
      for (int j = P == Pass::kNormalColors ? 5 : 0; j < kSums; ++j) sums[j] = fold_lanes(lanes[j]);
      float* out = entry_grads_.data() + e * stride;
      if constexpr (P == Pass::kNormalColors)
        std::fill(out, out + kGeometryFloats, 0.0f);
      else
        geometry_gradient(g, GradSums{sums[0], sums[1], sums[2], sums[3], sums[4]}, out);
      for (int c = 0; c < C; ++c) out[kGeometryFloats + c] = sums[5 + c];
    }
  }
}

void CpuRasterizer::reduce_entry_grads(float* grad_params) const {
  const int stride = kGeometryFloats + channels_;
#pragma omp parallel for schedule(static) num_threads(threads_)
  for (int64_t i = 0; i < n_; ++i) {
    float* out = grad_params + i * stride;
    for (int j = 0; j < stride; ++j) out[j] = 0.0f;
    for (int64_t e = gauss_offsets_[i]; e < gauss_offsets_[i + 1]; ++e)
      for (int j = 0; j < stride; ++j) out[j] += entry_grads_[e * stride + j];
  }
}

}  // namespace splat
