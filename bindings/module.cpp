// pybind11 module splatcodec._core: thin bindings over the native CPU core. Argument errors surface as
// ValueError (std::invalid_argument); the Python layer turns them into splatcodec's own error types.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "../src_cuda/fit_cpu.h"
#include "../src_cuda/raster_cpu.h"

namespace py = pybind11;
using splat::FitConfig;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

namespace {

// Checks a packed parameter array (N, 5 + C) and returns C.
int packed_channels(const FloatArray& params) {
  if (params.ndim() != 2 || (params.shape(1) != 6 && params.shape(1) != 8))
    throw std::invalid_argument("params must have shape (N, 6) or (N, 8): x, y, l11, l21, l22, colour");
  return int(params.shape(1)) - splat::kGeometryFloats;
}

// Checks an image array (H, W, C) with C in {1, 3}.
void check_image(const FloatArray& image) {
  if (image.ndim() != 3 || (image.shape(2) != 1 && image.shape(2) != 3))
    throw std::invalid_argument("image must have shape (H, W, 1) or (H, W, 3)");
}

FloatArray render(const FloatArray& params, int64_t width, int64_t height, int threads) {
  const int channels = packed_channels(params);
  splat::check_raster_args(params.shape(0), channels, width, height);
  FloatArray out({height, width, int64_t(channels)});
  {
    py::gil_scoped_release release;
    splat::CpuRasterizer raster;
    raster.bin(params.data(), params.shape(0), channels, int(width), int(height), threads);
    raster.forward(out.mutable_data());
  }
  return out;
}

FloatArray render_backward(const FloatArray& params, int64_t width, int64_t height,
                           const FloatArray& grad_image, int threads) {
  const int channels = packed_channels(params);
  splat::check_raster_args(params.shape(0), channels, width, height);
  if (grad_image.ndim() != 3 || grad_image.shape(0) != height || grad_image.shape(1) != width ||
      grad_image.shape(2) != channels)
    throw std::invalid_argument("grad_image must have shape (height, width, channels) of the render");
  FloatArray out({params.shape(0), params.shape(1)});
  {
    py::gil_scoped_release release;
    splat::CpuRasterizer raster;
    raster.bin(params.data(), params.shape(0), channels, int(width), int(height), threads);
    raster.backward(grad_image.data(), out.mutable_data());
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

// Fits every image; images run in parallel (one thread each) when there are at least as many images
// as threads, otherwise one after another with all threads on each.
py::list fit_batch(const std::vector<FloatArray>& images, const std::vector<FitConfig>& configs,
                   const std::vector<py::object>& inits, int threads) {
  const size_t count = images.size();
  if (configs.size() != count || inits.size() != count)
    throw std::invalid_argument("fit_batch needs one config and one init (or None) per image");
  std::vector<FloatArray> init_arrays(count);
  std::vector<FitConfig> cfg = configs;
  for (size_t i = 0; i < count; ++i) {
    check_image(images[i]);
    const int channels = int(images[i].shape(2));
    splat::check_raster_args(cfg[i].num_gaussians, channels, images[i].shape(1), images[i].shape(0));
    splat::check_fit_config(cfg[i], int(images[i].shape(1)), int(images[i].shape(0)));
    if (cfg[i].init == splat::InitMode::kGiven) {
      if (inits[i].is_none()) throw std::invalid_argument("init mode 'given' needs initial Gaussians");
      init_arrays[i] = inits[i].cast<FloatArray>();
      if (packed_channels(init_arrays[i]) != channels)
        throw std::invalid_argument("initial Gaussians have a different channel count than the image");
    }
  }
  const int total_threads = splat::resolve_threads(threads);
  const bool across_images = count >= size_t(total_threads) && total_threads > 1;
  std::vector<splat::FitOutput> outputs(count);
  std::vector<std::string> errors(count);
  {
    py::gil_scoped_release release;
#pragma omp parallel for schedule(dynamic, 1) num_threads(across_images ? total_threads : 1)
    for (size_t i = 0; i < count; ++i) {
      FitConfig c = cfg[i];
      c.threads = across_images ? 1 : total_threads;
      try {
        const bool given = c.init == splat::InitMode::kGiven;
        outputs[i] = splat::fit_image(images[i].data(), int(images[i].shape(1)), int(images[i].shape(0)),
                                      int(images[i].shape(2)), c, given ? init_arrays[i].data() : nullptr,
                                      given ? init_arrays[i].shape(0) : 0);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
  }
  py::list result;
  for (size_t i = 0; i < count; ++i) {
    if (!errors[i].empty()) throw std::invalid_argument("image " + std::to_string(i) + ": " + errors[i]);
    const int64_t cols = splat::kGeometryFloats + images[i].shape(2);
    FloatArray params({outputs[i].num, cols});
    std::copy(outputs[i].params.begin(), outputs[i].params.end(), params.mutable_data());
    result.append(py::make_tuple(params, stats_dict(outputs[i].stats)));
  }
  return result;
}

FloatArray initial_gaussians(const FloatArray& image, const FitConfig& config) {
  check_image(image);
  const int width = int(image.shape(1)), height = int(image.shape(0)), channels = int(image.shape(2));
  splat::check_raster_args(config.num_gaussians, channels, width, height);
  splat::check_fit_config(config, width, height);
  std::vector<float> params;
  {
    py::gil_scoped_release release;
    params = splat::initial_gaussians(image.data(), width, height, channels, config);
  }
  FloatArray out({int64_t(params.size()) / (splat::kGeometryFloats + channels),
                  int64_t(splat::kGeometryFloats + channels)});
  std::copy(params.begin(), params.end(), out.mutable_data());
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "splatcodec native core: tile-based 2D Gaussian rasteriser and fitter (CPU, OpenMP)";
  m.attr("TILE_SIZE") = splat::kTileSize;
  m.attr("CUTOFF_SIGMA") = splat::kCutoffSigma;

  py::enum_<splat::InitMode>(m, "InitMode")
      .value("grid", splat::InitMode::kGrid)
      .value("adaptive", splat::InitMode::kAdaptive)
      .value("random", splat::InitMode::kRandom)
      .value("given", splat::InitMode::kGiven);

  py::class_<FitConfig>(m, "FitConfig")
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

  m.def("render", &render, py::arg("params"), py::arg("width"), py::arg("height"), py::arg("threads") = 0,
        "Render packed Gaussians (N, 5+C) to a float32 (height, width, C) image.");
  m.def("render_backward", &render_backward, py::arg("params"), py::arg("width"), py::arg("height"),
        py::arg("grad_image"), py::arg("threads") = 0,
        "Gradient of sum(grad_image * render(params)) w.r.t. params, shape (N, 5+C).");
  m.def("fit_batch", &fit_batch, py::arg("images"), py::arg("configs"), py::arg("inits"),
        py::arg("threads") = 0,
        "Fit each float32 (H, W, C) image in [0, 1]; returns a list of (params, stats dict).");
  m.def("initial_gaussians", &initial_gaussians, py::arg("image"), py::arg("config"),
        "The Gaussians a fit would start from.");
}
