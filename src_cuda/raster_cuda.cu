// CUDA tile rasteriser: see raster_cuda.h for the pipeline and the accumulation strategy.
#include "raster_cuda.h"

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "raster_cpu.h"  // check_raster_args
#include "raster_cuda_kernels.cuh"

namespace splat {

namespace {

using namespace cuda_kernels;

inline unsigned grid_for(int64_t items, int block) { return unsigned((items + block - 1) / block); }

int bits_for(uint32_t max_value) {
  int bits = 1;
  while (bits < 32 && (max_value >> bits) != 0) ++bits;
  return bits;
}

}  // namespace

// ------------------------------------------------------------------------------------ CudaRasterizer
CudaRasterizer::CudaRasterizer(cudaStream_t stream) : stream_(stream) {
  prepared_.set_stream(stream);
  gauss_offsets_.set_stream(stream);
  entry_gaussian_.set_stream(stream);
  keys_in_.set_stream(stream);
  keys_out_.set_stream(stream);
  vals_in_.set_stream(stream);
  tile_entries_.set_stream(stream);
  tile_start_.set_stream(stream);
  tile_end_.set_stream(stream);
  entry_grads_.set_stream(stream);
  tile_loss_.set_stream(stream);
  loss_.set_stream(stream);
  temp_.set_stream(stream);
}

void CudaRasterizer::bin(const float* d_params, int64_t n, int channels, int width, int height,
                         const RenderBudget& budget) {
  check_raster_args(n, channels, width, height);
  if (n > INT32_MAX) throw std::invalid_argument("too many Gaussians for the CUDA rasteriser");
  params_ = d_params;
  n_ = n;
  channels_ = channels;
  width_ = width;
  height_ = height;
  tiles_x_ = (width + kTileSize - 1) / kTileSize;
  tiles_y_ = (height + kTileSize - 1) / kTileSize;
  const int num_tiles = tiles_x_ * tiles_y_;

  prepared_.reserve(std::max<int64_t>(n, 1));
  int64_t* offsets = gauss_offsets_.reserve(n + 1);
  SPLAT_CUDA_CHECK(cudaMemsetAsync(offsets, 0, sizeof(int64_t), stream_));
  int64_t entries = 0;
  if (n > 0) {
    // counts go to offsets + 1 and are scanned in place into the offsets.
    preprocess_kernel<<<grid_for(n, 256), 256, 0, stream_>>>(d_params, n, channels, width, height,
                                                              prepared_.data(), offsets + 1);
    SPLAT_CUDA_CHECK_LAUNCH();
    size_t scan_bytes = 0;
    SPLAT_CUDA_CHECK(cub::DeviceScan::InclusiveSum(nullptr, scan_bytes, offsets + 1, offsets + 1, int(n),
                                                   stream_));
    temp_.reserve(std::max<size_t>(scan_bytes, 1));
    SPLAT_CUDA_CHECK(cub::DeviceScan::InclusiveSum(temp_.data(), scan_bytes, offsets + 1, offsets + 1,
                                                   int(n), stream_));
    SPLAT_CUDA_CHECK(cudaMemcpyAsync(&entries, offsets + n, sizeof(int64_t), cudaMemcpyDeviceToHost, stream_));
    SPLAT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  check_render_budget(entries, entries * kTileSize * kTileSize, budget, "a whole 16x16 tile per entry");
  if (entries >= INT32_MAX)
    throw std::invalid_argument("the Gaussians touch " + std::to_string(entries) +
                                " (tile, Gaussian) pairs, more than the CUDA rasteriser's 2^31 - 1");
  entries_ = entries;

  int32_t* start = tile_start_.reserve(num_tiles);
  int32_t* end = tile_end_.reserve(num_tiles);
  SPLAT_CUDA_CHECK(cudaMemsetAsync(start, 0, sizeof(int32_t) * num_tiles, stream_));
  SPLAT_CUDA_CHECK(cudaMemsetAsync(end, 0, sizeof(int32_t) * num_tiles, stream_));
  if (entries == 0) {
    tile_entries_.reserve(1);
    entry_gaussian_.reserve(1);
    return;
  }
  const size_t count = size_t(entries);
  uint32_t* keys_in = keys_in_.reserve(count);
  uint32_t* keys_out = keys_out_.reserve(count);
  int32_t* vals_in = vals_in_.reserve(count);
  int32_t* vals_out = tile_entries_.reserve(count);
  int32_t* entry_gaussian = entry_gaussian_.reserve(count);
  duplicate_kernel<<<grid_for(n, 256), 256, 0, stream_>>>(prepared_.data(), offsets, n, tiles_x_, keys_in,
                                                          vals_in, entry_gaussian);
  SPLAT_CUDA_CHECK_LAUNCH();
  // Stable LSD radix sort on the tile bits only: entries of a tile keep their (Gaussian) order.
  const int end_bit = bits_for(uint32_t(num_tiles - 1));
  size_t sort_bytes = 0;
  SPLAT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, keys_in, keys_out, vals_in, vals_out,
                                                   int(entries), 0, end_bit, stream_));
  temp_.reserve(std::max<size_t>(sort_bytes, 1));
  SPLAT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp_.data(), sort_bytes, keys_in, keys_out, vals_in,
                                                   vals_out, int(entries), 0, end_bit, stream_));
  tile_ranges_kernel<<<grid_for(entries, 256), 256, 0, stream_>>>(keys_out, int32_t(entries), start, end);
  SPLAT_CUDA_CHECK_LAUNCH();
}

namespace {
RasterView make_view(const float* params, const Prepared* prepared, const int32_t* entry_gaussian,
                     const int32_t* tile_entries, const int32_t* start, const int32_t* end, int width,
                     int height, int tiles_x) {
  return RasterView{params, prepared, entry_gaussian, tile_entries, start, end, width, height, tiles_x};
}
}  // namespace

template <typename Out>
void CudaRasterizer::forward_as(Out* d_out) {
  const RasterView v = make_view(params_, prepared_.data(), entry_gaussian_.data(), tile_entries_.data(),
                                 tile_start_.data(), tile_end_.data(), width_, height_, tiles_x_);
  const unsigned tiles = unsigned(tiles_x_) * unsigned(tiles_y_);
  if (channels_ == 1)
    forward_kernel<1, Out><<<tiles, kBlock, 0, stream_>>>(v, d_out);
  else
    forward_kernel<3, Out><<<tiles, kBlock, 0, stream_>>>(v, d_out);
  SPLAT_CUDA_CHECK_LAUNCH();
}

void CudaRasterizer::forward(float* d_out) { forward_as(d_out); }
void CudaRasterizer::forward_u8(uint8_t* d_out) { forward_as(d_out); }

void CudaRasterizer::backward(const float* d_grad_image, float* d_grad_params) {
  const int stride = kGeometryFloats + channels_;
  entry_grads_.reserve(std::max<size_t>(size_t(entries_) * stride, 1));
  const RasterView v = make_view(params_, prepared_.data(), entry_gaussian_.data(), tile_entries_.data(),
                                 tile_start_.data(), tile_end_.data(), width_, height_, tiles_x_);
  const unsigned tiles = unsigned(tiles_x_) * unsigned(tiles_y_);
  if (channels_ == 1)
    backward_kernel<1, false><<<tiles, kBlock, 0, stream_>>>(v, d_grad_image, nullptr, nullptr, 1.0f, nullptr,
                                                              entry_grads_.data());
  else
    backward_kernel<3, false><<<tiles, kBlock, 0, stream_>>>(v, d_grad_image, nullptr, nullptr, 1.0f, nullptr,
                                                              entry_grads_.data());
  SPLAT_CUDA_CHECK_LAUNCH();
  reduce_entry_grads(d_grad_params);
}

double CudaRasterizer::mse_step(const float* d_target_planar, float* d_grad_params, float* d_error_map) {
  const int stride = kGeometryFloats + channels_;
  const int tiles = tiles_x_ * tiles_y_;
  entry_grads_.reserve(std::max<size_t>(size_t(entries_) * stride, 1));
  double* tile_loss = tile_loss_.reserve(tiles);
  double* loss = loss_.reserve(1);
  const float scale = 2.0f / (float(width_) * float(height_) * float(channels_));
  const RasterView v = make_view(params_, prepared_.data(), entry_gaussian_.data(), tile_entries_.data(),
                                 tile_start_.data(), tile_end_.data(), width_, height_, tiles_x_);
  if (channels_ == 1)
    backward_kernel<1, true><<<unsigned(tiles), kBlock, 0, stream_>>>(v, nullptr, d_target_planar, d_error_map,
                                                                       scale, tile_loss, entry_grads_.data());
  else
    backward_kernel<3, true><<<unsigned(tiles), kBlock, 0, stream_>>>(v, nullptr, d_target_planar, d_error_map,
                                                                       scale, tile_loss, entry_grads_.data());
  SPLAT_CUDA_CHECK_LAUNCH();
  reduce_entry_grads(d_grad_params);
  sum_loss_kernel<<<1, 1024, 0, stream_>>>(tile_loss, tiles, loss);
  SPLAT_CUDA_CHECK_LAUNCH();
  double sse = 0.0;
  SPLAT_CUDA_CHECK(cudaMemcpyAsync(&sse, loss, sizeof(double), cudaMemcpyDeviceToHost, stream_));
  SPLAT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return sse;
}

void CudaRasterizer::reduce_entry_grads(float* d_grad_params) {
  const int stride = kGeometryFloats + channels_;
  if (n_ == 0) return;
  reduce_entries_kernel<<<grid_for(n_ * stride, 256), 256, 0, stream_>>>(entry_grads_.data(),
                                                                         gauss_offsets_.data(), n_, stride,
                                                                         d_grad_params);
  SPLAT_CUDA_CHECK_LAUNCH();
}

// --------------------------------------------------------------------------------- host wrappers
int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

namespace {
void require_device() {
  if (cuda_device_count() <= 0)
    throw std::runtime_error("no CUDA device is available (splatcodec._core_cuda needs a GPU and driver)");
}
}  // namespace

namespace {
template <typename Out>
void render_to_host(const float* params, int64_t n, int channels, int width, int height, Out* out,
                    const RenderBudget& budget) {
  check_raster_args(n, channels, width, height);
  require_device();
  CudaStream stream;
  const size_t param_count = size_t(n) * (kGeometryFloats + channels);
  const size_t values = size_t(width) * height * channels;
  DeviceBuffer<float> d_params;  // declared after the stream: freed before it is destroyed
  DeviceBuffer<Out> d_out;
  d_params.set_stream(stream.get());
  d_out.set_stream(stream.get());
  d_params.reserve(std::max<size_t>(param_count, 1));
  if (param_count)
    SPLAT_CUDA_CHECK(cudaMemcpyAsync(d_params.data(), params, param_count * sizeof(float),
                                     cudaMemcpyHostToDevice, stream.get()));
  {
    CudaRasterizer raster(stream.get());
    raster.bin(d_params.data(), n, channels, width, height, budget);
    d_out.reserve(values);  // after binning: a render over its budget allocates nothing this size
    if constexpr (std::is_same_v<Out, float>)
      raster.forward(d_out.data());
    else
      raster.forward_u8(d_out.data());
    SPLAT_CUDA_CHECK(cudaMemcpyAsync(out, d_out.data(), values * sizeof(Out), cudaMemcpyDeviceToHost,
                                     stream.get()));
    stream.synchronize();
  }
}
}  // namespace

void cuda_render(const float* params, int64_t n, int channels, int width, int height, float* out,
                 const RenderBudget& budget) {
  render_to_host(params, n, channels, width, height, out, budget);
}

void cuda_render(const float* params, int64_t n, int channels, int width, int height, uint8_t* out,
                 const RenderBudget& budget) {
  render_to_host(params, n, channels, width, height, out, budget);
}

void cuda_render_backward(const float* params, int64_t n, int channels, int width, int height,
                          const float* grad_image, float* grad_params) {
  check_raster_args(n, channels, width, height);
  require_device();
  CudaStream stream;
  const size_t param_count = size_t(n) * (kGeometryFloats + channels);
  const size_t pixels = size_t(width) * height * channels;
  DeviceBuffer<float> d_params, d_grad_image, d_grad_params;
  d_params.set_stream(stream.get());
  d_grad_image.set_stream(stream.get());
  d_grad_params.set_stream(stream.get());
  d_params.reserve(std::max<size_t>(param_count, 1));
  d_grad_params.reserve(std::max<size_t>(param_count, 1));
  d_grad_image.reserve(pixels);
  if (param_count)
    SPLAT_CUDA_CHECK(cudaMemcpyAsync(d_params.data(), params, param_count * sizeof(float),
                                     cudaMemcpyHostToDevice, stream.get()));
  SPLAT_CUDA_CHECK(cudaMemcpyAsync(d_grad_image.data(), grad_image, pixels * sizeof(float),
                                   cudaMemcpyHostToDevice, stream.get()));
  {
    CudaRasterizer raster(stream.get());
    raster.bin(d_params.data(), n, channels, width, height);
    raster.backward(d_grad_image.data(), d_grad_params.data());
    if (param_count)
      SPLAT_CUDA_CHECK(cudaMemcpyAsync(grad_params, d_grad_params.data(), param_count * sizeof(float),
                                       cudaMemcpyDeviceToHost, stream.get()));
    stream.synchronize();
  }
}

}  // namespace splat
