// pybind11 module splatcodec._core_cuda: the CUDA rasteriser and fitter, with the signatures of
// splatcodec._core (render, render_backward, fit_batch) plus device_count(). Argument errors surface as
// ValueError (std::invalid_argument), CUDA failures as RuntimeError, the budget and cancellation as
// splatcodec's LimitExceededError / CancelledError (as in _core).
//
// FitConfig / InitMode are splatcodec._core's types (the same C++ struct, registered once by _core and
// shared through pybind11's type registry), so a config built for _core.fit_batch works here unchanged.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "../src_cuda/fit_cpu.h"
#include "../src_cuda/fit_cuda.h"
#include "../src_cuda/gaussian_math.h"
#include "../src_cuda/raster_cpu.h"
#include "../src_cuda/raster_cuda.h"

#include "common.h"

namespace py = pybind11;
using splat::FitConfig;
using namespace splat_bindings;

namespace {

// `threads` is accepted for signature compatibility with _core and ignored (the work is on the GPU). The
// budget is checked after binning, before the tile lists are allocated; a render is one kernel launch, so
// `cancel` is honoured before it starts.
// Out: float (the raw render) or uint8_t (converted on the GPU as _core.render_u8 converts on the CPU).
template <typename Out>
py::array_t<Out, py::array::c_style> render_as(const FloatArray& params, int64_t width, int64_t height,
                                               int /*threads*/, int64_t max_entries, double max_work,
                                               const splat::CancelToken* cancel) {
  const int channels = checked_render_args(params, width, height);
  const splat::RenderBudget budget = render_budget(max_entries, max_work);
  return with_splatcodec_errors([&] {
    splat::throw_if_cancelled(cancel);
    py::array_t<Out, py::array::c_style> out({height, width, int64_t(channels)});
    {
      py::gil_scoped_release release;
      splat::cuda_render(params.data(), params.shape(0), channels, int(width), int(height), out.mutable_data(),
                         budget);
    }
    return out;
  });
}

FloatArray render_backward(const FloatArray& params, int64_t width, int64_t height,
                           const FloatArray& grad_image, int /*threads*/) {
  const int channels = checked_render_args(params, width, height);
  check_grad_image(grad_image, width, height, channels);
  FloatArray out({params.shape(0), params.shape(1)});
  {
    py::gil_scoped_release release;
    splat::cuda_render_backward(params.data(), params.shape(0), channels, int(width), int(height),
                                grad_image.data(), out.mutable_data());
  }
  return out;
}

// Fits every image on the GPU. `threads` here is how many images are fitted concurrently (one host
// thread and CUDA stream each; 0: min(images, 4)).
py::list fit_batch(const std::vector<FloatArray>& images, const std::vector<FitConfig>& configs,
                   const std::vector<py::object>& inits, int threads, int64_t max_entries, double max_work,
                   const splat::CancelToken* cancel) {
  const size_t count = images.size();
  const std::vector<FloatArray> init_arrays = checked_fit_inputs(images, configs, inits);
  const splat::RenderBudget budget = render_budget(max_entries, max_work);
  std::vector<splat::CudaFitJob> jobs(count);
  for (size_t i = 0; i < count; ++i) {
    splat::CudaFitJob& job = jobs[i];
    job.image = images[i].data();
    job.width = int(images[i].shape(1));
    job.height = int(images[i].shape(0));
    job.channels = int(images[i].shape(2));
    job.config = configs[i];
    job.cancel = cancel;
    job.budget = budget;
    if (configs[i].init == splat::InitMode::kGiven) {
      job.init_params = init_arrays[i].data();
      job.init_num = init_arrays[i].shape(0);
    }
  }
  if (count > 0 && splat::cuda_device_count() <= 0)
    throw std::runtime_error("no CUDA device is available (splatcodec._core_cuda needs a GPU and driver)");
  return with_splatcodec_errors([&] {
    std::vector<splat::CudaFitResult> outputs;
    {
      py::gil_scoped_release release;
      outputs = splat::fit_batch_cuda(jobs, threads);
    }
    splat::throw_if_cancelled(cancel);
    py::list result;
    for (size_t i = 0; i < count; ++i) {
      // As _core.fit_batch: the first image's error in input order, its type kept.
      if (outputs[i].error) std::rethrow_exception(outputs[i].error);
      result.append(fit_result(outputs[i].output, int(images[i].shape(2))));
    }
    return result;
  });
}

}  // namespace

PYBIND11_MODULE(_core_cuda, m) {
  m.doc() = "splatcodec CUDA core: tile-based 2D Gaussian rasteriser and fitter on the GPU";
  m.attr("TILE_SIZE") = splat::kTileSize;
  m.attr("CUTOFF_SIGMA") = splat::kCutoffSigma;

  // Share _core's FitConfig / InitMode registrations (fit_batch takes _core.FitConfig objects). If
  // _core cannot be imported, register module-local copies so this module still works on its own.
  try {
    py::module_ core = py::module_::import("splatcodec._core");
    m.attr("FitConfig") = core.attr("FitConfig");
    m.attr("InitMode") = core.attr("InitMode");
    m.attr("CancelToken") = core.attr("CancelToken");
  } catch (const py::error_already_set&) {
    PyErr_Clear();
    register_fit_config(m, py::module_local());
  }

  m.def("device_count", &splat::cuda_device_count, "Number of usable CUDA devices (0 without a GPU/driver).");
  m.def("render", &render_as<float>, py::arg("params"), py::arg("width"), py::arg("height"), py::arg("threads") = 0,
        py::arg("max_entries") = 0, py::arg("max_work") = 0.0, py::arg("cancel") = py::none(),
        "Render packed Gaussians (N, 5+C) to a float32 (height, width, C) image on the GPU. max_entries / "
        "max_work (0: none) bound the tile lists and the evaluated pixels (a whole tile per entry) "
        "(splatcodec.errors.LimitExceededError).");
  m.def("render_u8", &render_as<uint8_t>, py::arg("params"), py::arg("width"), py::arg("height"),
        py::arg("threads") = 0, py::arg("max_entries") = 0, py::arg("max_work") = 0.0,
        py::arg("cancel") = py::none(),
        "Like render, converted to uint8 on the GPU as each value is written (round half up, clipped, "
        "NaN -> 0): only the uint8 image is allocated, on the device and the host.");
  m.def("render_backward", &render_backward, py::arg("params"), py::arg("width"), py::arg("height"),
        py::arg("grad_image"), py::arg("threads") = 0,
        "Gradient of sum(grad_image * render(params)) w.r.t. params, shape (N, 5+C), on the GPU.");
  m.def("fit_batch", &fit_batch, py::arg("images"), py::arg("configs"), py::arg("inits"),
        py::arg("threads") = 0, py::arg("max_entries") = 0, py::arg("max_work") = 0.0,
        py::arg("cancel") = py::none(),
        "Fit each float32 (H, W, C) image in [0, 1] on the GPU (pruning and densification as on the CPU); returns a list "
        "of (params, stats dict). threads: images fitted concurrently (0: min(images, 4)). The budget "
        "applies to every iteration's binning; a cancelled CancelToken stops every fit of the call.");
}
