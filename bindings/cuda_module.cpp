// pybind11 module splatcodec._core_cuda: the CUDA rasteriser and fitter, with the signatures of
// splatcodec._core (render, render_backward, fit_batch) plus device_count(). Argument errors surface as
// ValueError (std::invalid_argument), CUDA failures as RuntimeError.
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

namespace py = pybind11;
using splat::FitConfig;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

namespace {

int packed_channels(const FloatArray& params) {
  if (params.ndim() != 2 || (params.shape(1) != 6 && params.shape(1) != 8))
    throw std::invalid_argument("params must have shape (N, 6) or (N, 8): x, y, l11, l21, l22, colour");
  return int(params.shape(1)) - splat::kGeometryFloats;
}

void check_image(const FloatArray& image) {
  if (image.ndim() != 3 || (image.shape(2) != 1 && image.shape(2) != 3))
    throw std::invalid_argument("image must have shape (H, W, 1) or (H, W, 3)");
}

// `threads` is accepted for signature compatibility with _core and ignored (the work is on the GPU).
FloatArray render(const FloatArray& params, int64_t width, int64_t height, int /*threads*/) {
  const int channels = packed_channels(params);
  splat::check_raster_args(params.shape(0), channels, width, height);
  FloatArray out({height, width, int64_t(channels)});
  {
    py::gil_scoped_release release;
    splat::cuda_render(params.data(), params.shape(0), channels, int(width), int(height), out.mutable_data());
  }
  return out;
}

FloatArray render_backward(const FloatArray& params, int64_t width, int64_t height,
                           const FloatArray& grad_image, int /*threads*/) {
  const int channels = packed_channels(params);
  splat::check_raster_args(params.shape(0), channels, width, height);
  if (grad_image.ndim() != 3 || grad_image.shape(0) != height || grad_image.shape(1) != width ||
      grad_image.shape(2) != channels)
    throw std::invalid_argument("grad_image must have shape (height, width, channels) of the render");
  FloatArray out({params.shape(0), params.shape(1)});
  {
    py::gil_scoped_release release;
    splat::cuda_render_backward(params.data(), params.shape(0), channels, int(width), int(height),
                                grad_image.data(), out.mutable_data());
  }
  return out;
}

py::dict stats_dict(const splat::FitStats& s) {
  py::dict d;
  d["iterations"] = s.iterations;
  d["final_psnr"] = s.final_psnr;
  d["seconds"] = s.seconds;
  d["gaussians_initial"] = s.gaussians_initial;
  d["gaussians_final"] = s.gaussians_final;
  d["gaussians_pruned"] = s.gaussians_pruned;
  d["gaussians_added"] = s.gaussians_added;
  d["reached_target"] = s.reached_target;
  d["trace_iterations"] = s.trace_iterations;
  d["trace_psnr"] = s.trace_psnr;
  return d;
}

// Fits every image on the GPU. `threads` here is how many images are fitted concurrently (one host
// thread and CUDA stream each; 0: min(images, 4)).
py::list fit_batch(const std::vector<FloatArray>& images, const std::vector<FitConfig>& configs,
                   const std::vector<py::object>& inits, int threads) {
  const size_t count = images.size();
  if (configs.size() != count || inits.size() != count)
    throw std::invalid_argument("fit_batch needs one config and one init (or None) per image");
  std::vector<FloatArray> init_arrays(count);
  std::vector<splat::CudaFitJob> jobs(count);
  for (size_t i = 0; i < count; ++i) {
    check_image(images[i]);
    const int channels = int(images[i].shape(2));
    splat::check_raster_args(configs[i].num_gaussians, channels, images[i].shape(1), images[i].shape(0));
    splat::check_fit_config(configs[i], int(images[i].shape(1)), int(images[i].shape(0)));
    splat::check_cuda_fit_config(configs[i]);
    splat::CudaFitJob& job = jobs[i];
    job.image = images[i].data();
    job.width = int(images[i].shape(1));
    job.height = int(images[i].shape(0));
    job.channels = channels;
    job.config = configs[i];
    if (configs[i].init == splat::InitMode::kGiven) {
      if (inits[i].is_none()) throw std::invalid_argument("init mode 'given' needs initial Gaussians");
      init_arrays[i] = inits[i].cast<FloatArray>();
      if (packed_channels(init_arrays[i]) != channels)
        throw std::invalid_argument("initial Gaussians have a different channel count than the image");
      job.init_params = init_arrays[i].data();
      job.init_num = init_arrays[i].shape(0);
    }
  }
  if (count > 0 && splat::cuda_device_count() <= 0)
    throw std::runtime_error("no CUDA device is available (splatcodec._core_cuda needs a GPU and driver)");
  std::vector<splat::CudaFitResult> outputs;
  {
    py::gil_scoped_release release;
    outputs = splat::fit_batch_cuda(jobs, threads);
  }
  py::list result;
  for (size_t i = 0; i < count; ++i) {
    const splat::CudaFitResult& r = outputs[i];
    if (!r.error.empty()) {
      const std::string message = "image " + std::to_string(i) + ": " + r.error;
      if (r.invalid_argument) throw std::invalid_argument(message);
      throw std::runtime_error(message);
    }
    const int64_t cols = splat::kGeometryFloats + images[i].shape(2);
    FloatArray params({r.output.num, cols});
    std::copy(r.output.params.begin(), r.output.params.end(), params.mutable_data());
    result.append(py::make_tuple(params, stats_dict(r.output.stats)));
  }
  return result;
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
  } catch (const py::error_already_set&) {
    PyErr_Clear();
    py::enum_<splat::InitMode>(m, "InitMode", py::module_local())
        .value("grid", splat::InitMode::kGrid)
        .value("adaptive", splat::InitMode::kAdaptive)
        .value("random", splat::InitMode::kRandom)
        .value("given", splat::InitMode::kGiven);
    py::class_<FitConfig>(m, "FitConfig", py::module_local())
        .def(py::init<>())
        .def_readwrite("num_gaussians", &FitConfig::num_gaussians)
        .def_readwrite("iterations", &FitConfig::iterations)
        .def_readwrite("target_psnr", &FitConfig::target_psnr)
        .def_readwrite("seed", &FitConfig::seed)
        .def_readwrite("init", &FitConfig::init)
        .def_readwrite("init_scale", &FitConfig::init_scale)
        .def_readwrite("adaptive_uniformity", &FitConfig::adaptive_uniformity)
        .def_readwrite("lr_xy", &FitConfig::lr_xy)
        .def_readwrite("lr_chol", &FitConfig::lr_chol)
        .def_readwrite("lr_color", &FitConfig::lr_color)
        .def_readwrite("lr_final_ratio", &FitConfig::lr_final_ratio)
        .def_readwrite("l1_color", &FitConfig::l1_color)
        .def_readwrite("min_chol", &FitConfig::min_chol)
        .def_readwrite("prune_every", &FitConfig::prune_every)
        .def_readwrite("prune_threshold", &FitConfig::prune_threshold)
        .def_readwrite("prune_until", &FitConfig::prune_until)
        .def_readwrite("densify", &FitConfig::densify)
        .def_readwrite("threads", &FitConfig::threads);
  }

  m.def("device_count", &splat::cuda_device_count, "Number of usable CUDA devices (0 without a GPU/driver).");
  m.def("render", &render, py::arg("params"), py::arg("width"), py::arg("height"), py::arg("threads") = 0,
        "Render packed Gaussians (N, 5+C) to a float32 (height, width, C) image on the GPU.");
  m.def("render_backward", &render_backward, py::arg("params"), py::arg("width"), py::arg("height"),
        py::arg("grad_image"), py::arg("threads") = 0,
        "Gradient of sum(grad_image * render(params)) w.r.t. params, shape (N, 5+C), on the GPU.");
  m.def("fit_batch", &fit_batch, py::arg("images"), py::arg("configs"), py::arg("inits"),
        py::arg("threads") = 0,
        "Fit each float32 (H, W, C) image in [0, 1] on the GPU (no pruning/densification); returns a list "
        "of (params, stats dict). threads: images fitted concurrently (0: min(images, 4)).");
}
