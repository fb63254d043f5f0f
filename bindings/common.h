// Argument checks and conversions shared by the CPU (_core) and CUDA (_core_cuda) modules, so both
// accept and return exactly the same shapes and raise the same errors.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "../src_cuda/fit_cpu.h"
#include "../src_cuda/gaussian_math.h"
#include "../src_cuda/core_limits.h"
#include "../src_cuda/raster_cpu.h"

namespace splat_bindings {

namespace py = pybind11;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

// Raises splatcodec.errors.<cls>(message) in Python.
[[noreturn]] inline void raise_splatcodec_error(const char* cls, const char* message) {
  py::object type = py::module_::import("splatcodec.errors").attr(cls);
  PyErr_SetString(type.ptr(), message);
  throw py::error_already_set();
}

// Runs `body` (which releases the GIL itself) and turns the core's own exceptions into splatcodec's:
// Cancelled -> CancelledError, LimitExceeded -> LimitExceededError. std::bad_alloc (and a container's
// length_error) become MemoryError (a memory failure is not bad input); invalid_argument stays ValueError.
template <typename F>
auto with_splatcodec_errors(F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const splat::Cancelled& e) {
    raise_splatcodec_error("CancelledError", e.what());
  } catch (const splat::LimitExceeded& e) {
    raise_splatcodec_error("LimitExceededError", e.what());
  } catch (const std::length_error&) {  // a container asked for more than it can hold
    throw std::bad_alloc();
  }
}

// The render budget from Python arguments (0: unlimited).
inline splat::RenderBudget render_budget(int64_t max_entries, double max_work) {
  if (max_entries < 0 || !(max_work >= 0.0)) throw std::invalid_argument("budgets must be >= 0");
  splat::RenderBudget budget;
  budget.max_entries = max_entries;
  budget.max_work = max_work;
  return budget;
}

// Checks a packed parameter array (N, 5 + C) and returns C.
inline int packed_channels(const FloatArray& params) {
  if (params.ndim() != 2 || (params.shape(1) != 6 && params.shape(1) != 8))
    throw std::invalid_argument("params must have shape (N, 6) or (N, 8): x, y, l11, l21, l22, colour");
  return int(params.shape(1)) - splat::kGeometryFloats;
}

// Checks params and the target size of a render; returns C.
inline int checked_render_args(const FloatArray& params, int64_t width, int64_t height) {
  const int channels = packed_channels(params);
  splat::check_raster_args(params.shape(0), channels, width, height);
  return channels;
}

inline void check_grad_image(const FloatArray& grad_image, int64_t width, int64_t height, int channels) {
  if (grad_image.ndim() != 3 || grad_image.shape(0) != height || grad_image.shape(1) != width ||
      grad_image.shape(2) != channels)
    throw std::invalid_argument("grad_image must have shape (height, width, channels) of the render");
}

// Checks an image array (H, W, C) with C in {1, 3}.
inline void check_image(const FloatArray& image) {
  if (image.ndim() != 3 || (image.shape(2) != 1 && image.shape(2) != 3))
    throw std::invalid_argument("image must have shape (H, W, 1) or (H, W, 3)");
}

// Validates a fit_batch call: one config and init per image, every image, config and given init.
// Returns the initial Gaussians as arrays (empty arrays where the init is not 'given').
inline std::vector<FloatArray> checked_fit_inputs(const std::vector<FloatArray>& images,
                                                  const std::vector<splat::FitConfig>& configs,
                                                  const std::vector<py::object>& inits) {
  const size_t count = images.size();
  if (configs.size() != count || inits.size() != count)
    throw std::invalid_argument("fit_batch needs one config and one init (or None) per image");
  std::vector<FloatArray> init_arrays(count);
  for (size_t i = 0; i < count; ++i) {
    check_image(images[i]);
    const int channels = int(images[i].shape(2));
    splat::check_raster_args(configs[i].num_gaussians, channels, images[i].shape(1), images[i].shape(0));
    splat::check_fit_config(configs[i], int(images[i].shape(1)), int(images[i].shape(0)));
    if (configs[i].init == splat::InitMode::kGiven) {
      if (inits[i].is_none()) throw std::invalid_argument("init mode 'given' needs initial Gaussians");
      init_arrays[i] = inits[i].cast<FloatArray>();
      if (packed_channels(init_arrays[i]) != channels)
        throw std::invalid_argument("initial Gaussians have a different channel count than the image");
    }
  }
  return init_arrays;
}

inline py::dict stats_dict(const splat::FitStats& s) {
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

// (params (N, 5 + C), stats dict) of one fit, as fit_batch returns it.
inline py::tuple fit_result(const splat::FitOutput& output, int channels) {
  FloatArray params({output.num, int64_t(splat::kGeometryFloats + channels)});
  std::copy(output.params.begin(), output.params.end(), params.mutable_data());
  return py::make_tuple(params, stats_dict(output.stats));
}

// Registers InitMode, FitConfig and CancelToken on `m` (module_local for a module that must work
// without _core).
template <typename... Extra>
void register_fit_config(py::module_& m, const Extra&... extra) {
  using splat::FitConfig;
  py::class_<splat::CancelToken>(m, "CancelToken", extra...)
      .def(py::init<>())
      .def("cancel", &splat::CancelToken::cancel, "Ask the calls given this token to stop (thread-safe).")
      .def_property_readonly("cancelled", &splat::CancelToken::cancelled);
  py::enum_<splat::InitMode>(m, "InitMode", extra...)
      .value("grid", splat::InitMode::kGrid)
      .value("adaptive", splat::InitMode::kAdaptive)
      .value("random", splat::InitMode::kRandom)
      .value("given", splat::InitMode::kGiven);
  py::class_<FitConfig>(m, "FitConfig", extra...)
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

}  // namespace splat_bindings
