// CUDA fitting loop: see fit_cuda.h. The loop is fit_loop.h's, shared with fit_image() in fit_cpu.cpp
// (schedule, early stop, trace, cancellation, render budget, finiteness checks); the steps here run on
// the device, except pruning and densification: prune_densify.h's, on a host copy (see there).
#include "fit_cuda.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <thread>

#include "cuda_util.h"
#include "gaussian_math.h"
#include "fit_cuda_kernels.cuh"
#include "fit_loop.h"
#include "prune_densify.h"
#include "raster_cpu.h"
#include "raster_cuda.h"

namespace splat {

namespace {

using namespace cuda_kernels;

// The device steps of the fitting loop (fit_loop.h). Pruning and densification make a host round trip.
struct CudaFitBackend {
  CudaRasterizer& raster;
  DeviceBuffer<float>& d_params;
  DeviceBuffer<float>& d_m;
  DeviceBuffer<float>& d_v;
  DeviceBuffer<float>& d_grad;
  DeviceBuffer<float>& d_error_map;  // H x W, written by the MSE step of an iteration that prunes
  DeviceBuffer<float>& d_render;     // H x W x C, densification's render of the pruned Gaussians
  const float* d_target;
  const std::vector<float>& target;  // planar host copy (densification colours)
  const FitConfig& config;
  GaussianState& host;  // n rows: the pruning round trip, and the final parameters (params_finite)
  int64_t n;
  int stride, channels, width, height;
  cudaStream_t stream;
  RenderBudget budget;
  std::vector<float> error_map;

  void bin(const RenderBudget& b) {
    budget = b;  // densification re-bins under the same budget
    raster.bin(d_params.data(), n, channels, width, height, b);
  }
  double mse_step(bool want_error_map) {
    return raster.mse_step(d_target, d_grad.data(),
                           want_error_map ? d_error_map.reserve(size_t(width) * height) : nullptr);
  }
  void adam(const AdamStep& a) {
    if (n == 0) return;
    adam_kernel<<<unsigned((n + 255) / 256), 256, 0, stream>>>(d_params.data(), d_grad.data(), d_m.data(),
                                                               d_v.data(), n, stride, a);
    SPLAT_CUDA_CHECK_LAUNCH();
  }
  void prune_and_densify(FitStats& stats) {
    host.resize(n);
    to_host(host.params.data(), d_params.data(), host.params.size());
    to_host(host.m.data(), d_m.data(), host.m.size());
    to_host(host.v.data(), d_v.data(), host.v.size());
    error_map.resize(size_t(width) * height);
    to_host(error_map.data(), d_error_map.data(), error_map.size());
    SPLAT_CUDA_CHECK(cudaStreamSynchronize(stream));
    // Densification's render is the CUDA forward pass: the fit's own rasteriser, on the device, taking no
    // CPU threads from concurrent fits; it equals the CPU's render up to rounding.
    splat::prune_and_densify(host, config, error_map.data(), target.data(), width, height, channels, stats,
                             [&](const GaussianState& pruned, float* out) {
                               to_device(d_params.data(), pruned.params.data(), pruned.params.size());
                               raster.bin(d_params.data(), pruned.size(), channels, width, height, budget);
                               const size_t values = size_t(width) * height * channels;
                               raster.forward(d_render.reserve(values));
                               to_host(out, d_render.data(), values);
                               SPLAT_CUDA_CHECK(cudaStreamSynchronize(stream));
                             });
    // The count changed: the per-Gaussian buffers follow (grow-only; the next MSE step fills d_grad).
    n = host.size();
    const size_t count = std::max<size_t>(host.params.size(), 1);
    for (DeviceBuffer<float>* b : {&d_params, &d_m, &d_v, &d_grad}) b->reserve(count);
    to_device(d_params.data(), host.params.data(), host.params.size());
    to_device(d_m.data(), host.m.data(), host.m.size());
    to_device(d_v.data(), host.v.data(), host.v.size());
  }
  bool params_finite() {
    to_host(host.params.data(), d_params.data(), host.params.size());  // host.params: n rows
    SPLAT_CUDA_CHECK(cudaStreamSynchronize(stream));
    return std::all_of(host.params.begin(), host.params.end(), [](float v) { return std::isfinite(v); });
  }

  // Stream-ordered copies of `count` floats.
  void to_host(float* to, const float* from, size_t count) {
    if (count)
      SPLAT_CUDA_CHECK(cudaMemcpyAsync(to, from, count * sizeof(float), cudaMemcpyDeviceToHost, stream));
  }
  void to_device(float* to, const float* from, size_t count) {
    if (count)
      SPLAT_CUDA_CHECK(cudaMemcpyAsync(to, from, count * sizeof(float), cudaMemcpyHostToDevice, stream));
  }
};

}  // namespace

FitOutput fit_image_cuda(const float* image, int width, int height, int channels, const FitConfig& config,
                         const float* init_params, int64_t init_num, const CancelToken* cancel,
                         const RenderBudget& budget) {
  check_raster_args(config.num_gaussians, channels, width, height);
  check_fit_config(config, width, height);
  const auto start = std::chrono::steady_clock::now();
  const int stride = kGeometryFloats + channels;
  const int64_t plane = int64_t(width) * height;
  const double values = double(plane) * channels;

  std::vector<float> target(plane * channels);  // planar, as the tile kernels read it
  for (int64_t p = 0; p < plane; ++p)
    for (int c = 0; c < channels; ++c) target[c * plane + p] = image[p * channels + c];

  GaussianState host{stride, {}, {}, {}};
  if (config.init == InitMode::kGiven) {
    if (init_params == nullptr || init_num < 1) throw std::invalid_argument("init: no Gaussians given");
    host.params.assign(init_params, init_params + init_num * stride);
  } else {
    host.params = initial_gaussians(image, width, height, channels, config);
  }
  const int64_t n = host.size();
  const size_t count = std::max<size_t>(host.params.size(), 1);

  CudaStream stream;  // declared first: outlives every buffer freed on it
  const cudaStream_t s = stream.get();
  DeviceBuffer<float> d_params, d_m, d_v, d_grad, d_target, d_error_map, d_render;
  for (DeviceBuffer<float>* b : {&d_params, &d_m, &d_v, &d_grad, &d_target, &d_error_map, &d_render})
    b->set_stream(s);
  d_params.reserve(count);
  d_m.reserve(count);
  d_v.reserve(count);
  d_grad.reserve(count);
  d_target.reserve(target.size());
  if (!host.params.empty())
    SPLAT_CUDA_CHECK(cudaMemcpyAsync(d_params.data(), host.params.data(), host.params.size() * sizeof(float),
                                     cudaMemcpyHostToDevice, s));
  SPLAT_CUDA_CHECK(cudaMemsetAsync(d_m.data(), 0, count * sizeof(float), s));
  SPLAT_CUDA_CHECK(cudaMemsetAsync(d_v.data(), 0, count * sizeof(float), s));
  SPLAT_CUDA_CHECK(cudaMemcpyAsync(d_target.data(), target.data(), target.size() * sizeof(float),
                                   cudaMemcpyHostToDevice, s));

  FitOutput out;
  out.stats.gaussians_initial = n;
  CudaRasterizer raster(s);
  CudaFitBackend backend{raster, d_params, d_m, d_v, d_grad, d_error_map, d_render, d_target.data(), target,
                         config, host, n, stride, channels, width, height, s, {}, {}};
  run_fit_loop(backend, config, width, height, values, out.stats, cancel, budget);  // host: the result
  out.stats.gaussians_final = backend.n;
  out.num = backend.n;
  out.params = std::move(host.params);
  out.stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

std::vector<CudaFitResult> fit_batch_cuda(const std::vector<CudaFitJob>& jobs, int concurrency) {
  std::vector<CudaFitResult> results(jobs.size());
  if (jobs.empty()) return results;
  int device = 0;
  SPLAT_CUDA_CHECK(cudaGetDevice(&device));
  const int workers = int(std::min<size_t>(jobs.size(), size_t(concurrency > 0 ? concurrency : 4)));
  std::atomic<size_t> next{0};
  auto work = [&]() {
    const cudaError_t set = cudaSetDevice(device);
    for (size_t i = next++; i < jobs.size(); i = next++) {
      CudaFitResult& r = results[i];
      if (set != cudaSuccess) {
        r.error = std::make_exception_ptr(std::runtime_error(std::string("cudaSetDevice failed: ") +
                                                             cudaGetErrorString(set)));
        continue;
      }
      const CudaFitJob& job = jobs[i];
      FitConfig config = job.config;
      // CPU-side initialisation: one OpenMP thread per worker when several images run at once.
      if (workers > 1 && config.threads <= 0) config.threads = 1;
      try {
        r.output = fit_image_cuda(job.image, job.width, job.height, job.channels, config, job.init_params,
                                  job.init_num, job.cancel, job.budget);
      } catch (...) {  // nothing may leave a worker thread
        r.error = std::current_exception();
      }
    }
  };
  if (workers == 1) {
    work();
  } else {
    std::vector<std::thread> threads;
    threads.reserve(workers);
    for (int w = 0; w < workers; ++w) threads.emplace_back(work);
    for (std::thread& t : threads) t.join();
  }
  return results;
}

}  // namespace splat
