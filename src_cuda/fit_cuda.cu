// CUDA fitting loop: see fit_cuda.h. The loop is fit_loop.h's, shared with fit_image() in fit_cpu.cpp
// (schedule, early stop, trace, cancellation, render budget, finiteness checks); the steps here run on
// the device. No pruning/densification (check_cuda_fit_config refuses them).
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
#include "raster_cpu.h"
#include "raster_cuda.h"

namespace splat {

namespace {

using namespace cuda_kernels;

// The device steps of the fitting loop (fit_loop.h).
struct CudaFitBackend {
  CudaRasterizer& raster;
  float* d_params;
  float* d_m;
  float* d_v;
  float* d_grad;
  const float* d_target;
  std::vector<float>& host_params;  // filled by params_finite() with the final parameters
  int64_t n;
  int stride, channels, width, height;
  cudaStream_t stream;

  void bin(const RenderBudget& budget) { raster.bin(d_params, n, channels, width, height, budget); }
  double mse_step(bool /*want_error_map: only pruning asks, and it is refused*/) {
    return raster.mse_step(d_target, d_grad, nullptr);
  }
  void adam(const AdamStep& a) {
    if (n == 0) return;
    adam_kernel<<<unsigned((n + 255) / 256), 256, 0, stream>>>(d_params, d_grad, d_m, d_v, n, stride, a);
    SPLAT_CUDA_CHECK_LAUNCH();
  }
  void prune_and_densify(FitStats&) {
    throw std::logic_error("the CUDA fitter does not prune (check_cuda_fit_config refuses it)");
  }
  bool params_finite() {
    if (!host_params.empty())
      SPLAT_CUDA_CHECK(cudaMemcpyAsync(host_params.data(), d_params, host_params.size() * sizeof(float),
                                       cudaMemcpyDeviceToHost, stream));
    SPLAT_CUDA_CHECK(cudaStreamSynchronize(stream));
    return std::all_of(host_params.begin(), host_params.end(), [](float v) { return std::isfinite(v); });
  }
};

}  // namespace

void check_cuda_fit_config(const FitConfig& config) {
  if (config.prune_every > 0 || config.densify)
    throw std::invalid_argument(
        "the CUDA fitter does not prune or densify: use prune_every = 0 and densify = false, or the CPU "
        "fitter");
}

FitOutput fit_image_cuda(const float* image, int width, int height, int channels, const FitConfig& config,
                         const float* init_params, int64_t init_num, const CancelToken* cancel,
                         const RenderBudget& budget) {
  check_raster_args(config.num_gaussians, channels, width, height);
  check_fit_config(config, width, height);
  check_cuda_fit_config(config);
  const auto start = std::chrono::steady_clock::now();
  const int stride = kGeometryFloats + channels;
  const int64_t plane = int64_t(width) * height;
  const double values = double(plane) * channels;

  std::vector<float> target(plane * channels);  // planar, as the tile kernels read it
  for (int64_t p = 0; p < plane; ++p)
    for (int c = 0; c < channels; ++c) target[c * plane + p] = image[p * channels + c];

  std::vector<float> params;
  if (config.init == InitMode::kGiven) {
    if (init_params == nullptr || init_num < 1) throw std::invalid_argument("init: no Gaussians given");
    params.assign(init_params, init_params + init_num * stride);
  } else {
    params = initial_gaussians(image, width, height, channels, config);
  }
  const int64_t n = int64_t(params.size()) / stride;
  const size_t count = std::max<size_t>(params.size(), 1);

  CudaStream stream;  // declared first: outlives every buffer freed on it
  const cudaStream_t s = stream.get();
  DeviceBuffer<float> d_params, d_m, d_v, d_grad, d_target;
  for (DeviceBuffer<float>* b : {&d_params, &d_m, &d_v, &d_grad, &d_target}) b->set_stream(s);
  d_params.reserve(count);
  d_m.reserve(count);
  d_v.reserve(count);
  d_grad.reserve(count);
  d_target.reserve(target.size());
  if (!params.empty())
    SPLAT_CUDA_CHECK(cudaMemcpyAsync(d_params.data(), params.data(), params.size() * sizeof(float),
                                     cudaMemcpyHostToDevice, s));
  SPLAT_CUDA_CHECK(cudaMemsetAsync(d_m.data(), 0, count * sizeof(float), s));
  SPLAT_CUDA_CHECK(cudaMemsetAsync(d_v.data(), 0, count * sizeof(float), s));
  SPLAT_CUDA_CHECK(cudaMemcpyAsync(d_target.data(), target.data(), target.size() * sizeof(float),
                                   cudaMemcpyHostToDevice, s));

  FitOutput out;
  out.stats.gaussians_initial = n;
  CudaRasterizer raster(s);
  CudaFitBackend backend{raster, d_params.data(), d_m.data(), d_v.data(), d_grad.data(), d_target.data(),
                         params, n, stride, channels, width, height, s};
  run_fit_loop(backend, config, width, height, values, out.stats, cancel, budget);  // params: the result
  out.stats.gaussians_final = n;
  out.num = n;
  out.params = std::move(params);
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
