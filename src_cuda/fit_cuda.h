// The 2DGS fitting loop on a CUDA device: the loss, Adam update, projection and learning-rate schedule
// of fit_cpu.cpp, with rendering and gradients from CudaRasterizer and the Adam step in a kernel.
// Initialisation (grid / adaptive / random / given) is computed on the CPU with initial_gaussians() and
// uploaded. Not on the GPU: pruning and densification (a config asking for them is refused with
// std::invalid_argument, rather than silently fitting something else).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fit_cpu.h"

namespace splat {

// Throws std::invalid_argument for settings the CUDA fitter does not support (pruning, densification).
void check_cuda_fit_config(const FitConfig& config);

// Fits one image (height x width x channels, interleaved, values in [0,1]) on the current CUDA device,
// on a private stream. Same contract as fit_image(); stats.seconds includes initialisation and uploads.
FitOutput fit_image_cuda(const float* image, int width, int height, int channels, const FitConfig& config,
                         const float* init_params = nullptr, int64_t init_num = 0);

struct CudaFitJob {
  const float* image = nullptr;  // host, height x width x channels
  int width = 0, height = 0, channels = 0;
  FitConfig config;
  const float* init_params = nullptr;  // for InitMode::kGiven
  int64_t init_num = 0;
};

struct CudaFitResult {
  FitOutput output;
  std::string error;  // non-empty: the job failed with this message (output is then empty)
  bool invalid_argument = false;  // the failure was a bad argument (vs a CUDA / runtime error)
};

// Fits every job on the calling thread's current device. `concurrency` jobs run at once, each on its
// own host thread and CUDA stream (<= 0: min(jobs, 4)), so small images overlap on the GPU. Per-job
// failures are reported in the result, never thrown.
std::vector<CudaFitResult> fit_batch_cuda(const std::vector<CudaFitJob>& jobs, int concurrency);

}  // namespace splat
