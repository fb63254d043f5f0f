// The 2DGS fitting loop on a CUDA device: the loss, Adam update, projection and learning-rate schedule
// of fit_cpu.cpp, with rendering and gradients from CudaRasterizer and the Adam step in a kernel.
// Initialisation (grid / adaptive / random / given) is computed on the CPU with initial_gaussians() and
// uploaded. Pruning and densification (prune_densify.h, the CPU's own code) run on a host copy of the
// parameters and Adam moments on the iterations where pruning is due; the rest of the loop stays on the
// device.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "fit_cpu.h"

namespace splat {

// Fits one image (height x width x channels, interleaved, values in [0,1]) on the current CUDA device,
// on a private stream. Same contract as fit_image() (the same loop, fit_loop.h: cancellation, budget,
// non-finite results refused); stats.seconds includes initialisation and uploads.
FitOutput fit_image_cuda(const float* image, int width, int height, int channels, const FitConfig& config,
                         const float* init_params = nullptr, int64_t init_num = 0,
                         const CancelToken* cancel = nullptr, const RenderBudget& budget = RenderBudget{});

struct CudaFitJob {
  const float* image = nullptr;  // host, height x width x channels
  int width = 0, height = 0, channels = 0;
  FitConfig config;
  const float* init_params = nullptr;  // for InitMode::kGiven
  int64_t init_num = 0;
  const CancelToken* cancel = nullptr;  // shared by the jobs of one call
  RenderBudget budget;
};

struct CudaFitResult {
  FitOutput output;
  std::exception_ptr error;  // set: the job failed with this exception, type kept (output is then empty)
};

// Fits every job on the calling thread's current device. `concurrency` jobs run at once, each on its
// own host thread and CUDA stream (<= 0: min(jobs, 4)), so small images overlap on the GPU. Per-job
// failures are reported in the result, never thrown.
std::vector<CudaFitResult> fit_batch_cuda(const std::vector<CudaFitJob>& jobs, int concurrency);

}  // namespace splat
