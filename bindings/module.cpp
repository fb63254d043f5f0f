// pybind11 module splatcodec._core: thin bindings over the native CPU core. Argument errors surface as
// ValueError (std::invalid_argument); the Python layer turns them into splatcodec's own error types.
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "../src_cuda/fit_cpu.h"
#include "../src_cuda/raster_cpu.h"

#include "common.h"

namespace py = pybind11;
using splat::FitConfig;
using namespace splat_bindings;

namespace {

FloatArray render(const FloatArray& params, int64_t width, int64_t height, int threads) {
  const int channels = checked_render_args(params, width, height);
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
  const int channels = checked_render_args(params, width, height);
  check_grad_image(grad_image, width, height, channels);
  FloatArray out({params.shape(0), params.shape(1)});
  {
    py::gil_scoped_release release;
    splat::CpuRasterizer raster;
    raster.bin(params.data(), params.shape(0), channels, int(width), int(height), threads);
    raster.backward(grad_image.data(), out.mutable_data());
  }
  return out;
}

// Fits every image; images run in parallel (one thread each) when there are at least as many images
// as threads, otherwise one after another with all threads on each.
py::list fit_batch(const std::vector<FloatArray>& images, const std::vector<FitConfig>& configs,
                   const std::vector<py::object>& inits, int threads) {
  const size_t count = images.size();
  const std::vector<FloatArray> init_arrays = checked_fit_inputs(images, configs, inits);
  const int total_threads = splat::resolve_threads(threads);
  const bool across_images = count >= size_t(total_threads) && total_threads > 1;
  std::vector<splat::FitOutput> outputs(count);
  std::vector<std::string> errors(count);
  bool cancelled = false;
  splat::clear_fit_cancel();
  {
    py::gil_scoped_release release;
#pragma omp parallel for schedule(dynamic, 1) num_threads(across_images ? total_threads : 1)
    for (size_t i = 0; i < count; ++i) {
      FitConfig c = configs[i];
      c.threads = across_images ? 1 : total_threads;
      try {
        const bool given = c.init == splat::InitMode::kGiven;
        outputs[i] = splat::fit_image(images[i].data(), int(images[i].shape(1)), int(images[i].shape(0)),
                                      int(images[i].shape(2)), c, given ? init_arrays[i].data() : nullptr,
                                      given ? init_arrays[i].shape(0) : 0);
      } catch (const splat::FitCancelled&) {
#pragma omp atomic write
        cancelled = true;
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
  }
  if (cancelled) throw splat::FitCancelled();  // surfaces as RuntimeError("fit cancelled")
  py::list result;
  for (size_t i = 0; i < count; ++i) {
    if (!errors[i].empty()) throw std::invalid_argument("image " + std::to_string(i) + ": " + errors[i]);
    result.append(fit_result(outputs[i], int(images[i].shape(2))));
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
  m.attr("SIMD_LANES") = splat::simd_lanes();

  register_fit_config(m);

  m.def("render", &render, py::arg("params"), py::arg("width"), py::arg("height"), py::arg("threads") = 0,
        "Render packed Gaussians (N, 5+C) to a float32 (height, width, C) image.");
  m.def("render_backward", &render_backward, py::arg("params"), py::arg("width"), py::arg("height"),
        py::arg("grad_image"), py::arg("threads") = 0,
        "Gradient of sum(grad_image * render(params)) w.r.t. params, shape (N, 5+C).");
  m.def("fit_batch", &fit_batch, py::arg("images"), py::arg("configs"), py::arg("inits"),
        py::arg("threads") = 0,
        "Fit each float32 (H, W, C) image in [0, 1]; returns a list of (params, stats dict).");
  m.def("cancel_fits", &splat::request_fit_cancel,
        "Ask running fits to stop at their next iteration (their fit_batch raises RuntimeError).");
  m.def("initial_gaussians", &initial_gaussians, py::arg("image"), py::arg("config"),
        "The Gaussians a fit would start from.");
}
