// pybind11 module splatcodec._core: thin bindings over the native CPU core. Argument errors surface as
// ValueError (std::invalid_argument); the Python layer turns them into splatcodec's own error types.
//
// The same file is compiled once per instruction set (setup.py): SPLAT_MODULE_NAME names the module
// (_core, _core_x86_64_v3, _core_x86_64_v4), SPLAT_ISA is the level it was compiled for, SPLAT_BUILD_ID
// identifies the build. The variants share _core's FitConfig / InitMode types (one Python type for all,
// so a config made with any module works with every module), and splatcodec._native picks the module.
#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "../src_cuda/fit_cpu.h"
#include "../src_cuda/raster_cpu.h"
#include "../src_cuda/rdoq_cpu.h"

#include "common.h"

#if !defined(SPLAT_MODULE_NAME) || !defined(SPLAT_ISA) || !defined(SPLAT_BUILD_ID)
#error "build with setup.py: it defines SPLAT_MODULE_NAME, SPLAT_ISA and SPLAT_BUILD_ID per module"
#endif
#ifndef SPLAT_ISA_VARIANTS  // defined for _core only: the variants built with it
#define SPLAT_ISA_VARIANTS
#endif
#define SPLAT_STRINGIFY_(...) #__VA_ARGS__
#define SPLAT_STRINGIFY(...) SPLAT_STRINGIFY_(__VA_ARGS__)

namespace py = pybind11;
using splat::FitConfig;
using namespace splat_bindings;

namespace {

// Renders packed Gaussians; Out is float (the raw render) or uint8_t (converted tile by tile).
template <typename Out>
py::array_t<Out, py::array::c_style> render_as(const FloatArray& params, int64_t width, int64_t height,
                                               int threads, int64_t max_entries, double max_work,
                                               const splat::CancelToken* cancel) {
  const int channels = checked_render_args(params, width, height);
  const splat::RenderBudget budget = render_budget(max_entries, max_work);
  return with_splatcodec_errors([&] {
    splat::CpuRasterizer raster;
    {
      py::gil_scoped_release release;
      raster.bin(params.data(), params.shape(0), channels, int(width), int(height), threads, budget, cancel);
    }
    // Allocated after binning: a request over its budget allocates nothing this size.
    py::array_t<Out, py::array::c_style> out({height, width, int64_t(channels)});
    Out* data = out.mutable_data();
    {
      py::gil_scoped_release release;
      if constexpr (std::is_same_v<Out, float>)
        raster.forward(data, cancel);
      else
        raster.forward_u8(data, cancel);
    }
    return out;
  });
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

// The two products of least-squares colours on fixed geometry (splatcodec.codec.colors) with the
// footprints W (N x pixels) of packed Gaussians: W g for an image g, and W W^T c for colours c. The
// Gaussians are binned once, at construction; each product is one pass of the core.
class ColorProducts {
 public:
  ColorProducts(const FloatArray& params, int64_t width, int64_t height, int threads)
      : channels_(checked_render_args(params, width, height)),
        params_(params.data(), params.data() + params.size()),
        width_(width), height_(height) {
    py::gil_scoped_release release;
    raster_.bin(params_.data(), n(), channels_, int(width), int(height), threads);
  }

  // W g: the colour part of the backward pass of gradient image g (height, width, C); (N, C).
  FloatArray footprints_times(const FloatArray& image) {
    check_grad_image(image, width_, height_, channels_);
    std::vector<float> rows(size_t(n()) * stride());
    {
      py::gil_scoped_release release;
      raster_.backward(image.data(), rows.data());
    }
    return colour_columns(rows);
  }

  // W W^T c for colours c (N, C): the render of the Gaussians with colours c, back through W.
  FloatArray normal(const FloatArray& colors) {
    if (colors.ndim() != 2 || colors.shape(0) != n() || colors.shape(1) != channels_)
      throw std::invalid_argument("colors must have shape (N, channels) of the Gaussians");
    const auto in = colors.unchecked<2>();
    for (int64_t i = 0; i < n(); ++i)
      for (int c = 0; c < channels_; ++c) params_[i * stride() + splat::kGeometryFloats + c] = in(i, c);
    std::vector<float> rows(size_t(n()) * stride());
    {
      py::gil_scoped_release release;
      raster_.normal_colors(rows.data());
    }
    return colour_columns(rows);
  }

 private:
  int64_t n() const { return int64_t(params_.size()) / stride(); }
  int stride() const { return splat::kGeometryFloats + channels_; }
  FloatArray colour_columns(const std::vector<float>& rows) const {
    FloatArray out({n(), int64_t(channels_)});
    auto o = out.mutable_unchecked<2>();
    for (int64_t i = 0; i < n(); ++i)
      for (int c = 0; c < channels_; ++c) o(i, c) = rows[i * stride() + splat::kGeometryFloats + c];
    return out;
  }

  int channels_;
  std::vector<float> params_;  // owned: the rasteriser reads the colours from here
  int64_t width_, height_;
  splat::CpuRasterizer raster_;
};

// Fits every image; images run in parallel (one thread each) when there are at least as many images
// as threads, otherwise one after another with all threads on each. Errors keep their type (a memory
// failure stays MemoryError); the first image's error in input order is raised.
py::list fit_batch(const std::vector<FloatArray>& images, const std::vector<FitConfig>& configs,
                   const std::vector<py::object>& inits, int threads, int64_t max_entries, double max_work,
                   const splat::CancelToken* cancel) {
  const size_t count = images.size();
  const std::vector<FloatArray> init_arrays = checked_fit_inputs(images, configs, inits);
  const splat::RenderBudget budget = render_budget(max_entries, max_work);
  const int total_threads = splat::resolve_threads(threads);
  const bool across_images = count >= size_t(total_threads) && total_threads > 1;
  std::vector<splat::FitOutput> outputs(count);
  std::vector<std::exception_ptr> errors(count);
  return with_splatcodec_errors([&] {
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
                                        given ? init_arrays[i].shape(0) : 0, cancel, budget);
        } catch (...) {  // nothing may leave the parallel region
          errors[i] = std::current_exception();
        }
      }
    }
    splat::throw_if_cancelled(cancel);
    py::list result;
    for (size_t i = 0; i < count; ++i) {
      if (errors[i]) {
        try {
          std::rethrow_exception(errors[i]);
        } catch (const std::invalid_argument& e) {
          throw std::invalid_argument("image " + std::to_string(i) + ": " + e.what());
        }
      }
      result.append(fit_result(outputs[i], int(images[i].shape(2))));
    }
    return result;
  });
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

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;
// No forcecast: a float array is refused rather than truncated to symbols.
using Int64Array = py::array_t<int64_t, py::array::c_style>;
using BoolArray = py::array_t<bool, py::array::c_style>;

// The arguments rdoq_distortion and rdoq_sweep share (src_cuda/rdoq_cpu.h), shapes checked; the core
// checks the values.
splat::RdoqSweep rdoq_args(const DoubleArray& target, const Int64Array& symbols, const DoubleArray& lo,
                           const DoubleArray& step, const DoubleArray& to_rgb) {
  if (target.ndim() != 3 || (target.shape(2) != 1 && target.shape(2) != 3))
    throw std::invalid_argument("target must have shape (H, W, 1) or (H, W, 3)");
  const int64_t channels = target.shape(2), cols = splat::kGeometryFloats + channels;
  if (symbols.ndim() != 2 || symbols.shape(1) != cols)
    throw std::invalid_argument("symbols must have shape (N, 5 + channels)");
  splat::check_raster_args(symbols.shape(0), int(channels), target.shape(1), target.shape(0));
  if (lo.ndim() != 1 || lo.shape(0) != cols || step.ndim() != 1 || step.shape(0) != cols)
    throw std::invalid_argument("lo and step must have shape (5 + channels,)");
  if (to_rgb.ndim() != 2 || to_rgb.shape(0) != channels || to_rgb.shape(1) != channels)
    throw std::invalid_argument("to_rgb must have shape (channels, channels)");
  splat::RdoqSweep args;
  args.target = target.data();
  args.height = int(target.shape(0));
  args.width = int(target.shape(1));
  args.channels = int(channels);
  args.n = symbols.shape(0);
  args.symbols = const_cast<int64_t*>(symbols.data());  // only read: rdoq_sweep updates a copy
  args.lo = lo.data();
  args.step = step.data();
  args.to_rgb = to_rgb.data();
  return args;
}

double rdoq_distortion(const DoubleArray& target, const Int64Array& symbols, const DoubleArray& lo,
                       const DoubleArray& step, const DoubleArray& to_rgb) {
  const splat::RdoqSweep args = rdoq_args(target, symbols, lo, step, to_rgb);
  return with_splatcodec_errors([&] {
    py::gil_scoped_release release;
    return splat::rdoq_distortion(args);
  });
}

// One sweep: (the symbols after it, the number of Gaussians moved).
py::tuple rdoq_sweep(const DoubleArray& target, const Int64Array& symbols, const DoubleArray& lo,
                     const DoubleArray& step, const DoubleArray& to_rgb, const DoubleArray& d_rate,
                     const BoolArray& valid, const DoubleArray& gap_costs, const Int64Array& bounds, int pos_bits,
                     double lambda) {
  splat::RdoqSweep args = rdoq_args(target, symbols, lo, step, to_rgb);
  const int64_t n = args.n, cols = splat::kGeometryFloats + args.channels;
  if (d_rate.ndim() != 2 || d_rate.shape(0) != n || d_rate.shape(1) != 2 * cols || valid.ndim() != 2 ||
      valid.shape(0) != n || valid.shape(1) != 2 * cols)
    throw std::invalid_argument("d_rate and valid must have shape (N, 2 (5 + channels))");
  if (pos_bits < 1 || pos_bits > splat::kRdoqMaxPosBits)
    throw std::invalid_argument("pos_bits must be in 1.." + std::to_string(splat::kRdoqMaxPosBits));
  if (gap_costs.ndim() != 2 || gap_costs.shape(1) != 2 * pos_bits + 1 || gap_costs.shape(0) > n + 1)
    throw std::invalid_argument("gap_costs must have shape (groups, 2 pos_bits + 1)");
  if (bounds.ndim() != 1 || bounds.shape(0) != gap_costs.shape(0) + 1)
    throw std::invalid_argument("bounds must have shape (groups + 1,)");
  Int64Array out({n, cols});
  std::copy(symbols.data(), symbols.data() + n * cols, out.mutable_data());
  args.symbols = out.mutable_data();
  args.d_rate = d_rate.data();
  args.valid = valid.data();
  args.gap_costs = gap_costs.data();
  args.bounds = bounds.data();
  args.groups = int(gap_costs.shape(0));
  args.pos_bits = pos_bits;
  args.lambda = lambda;
  return with_splatcodec_errors([&] {
    int64_t moved;
    {
      py::gil_scoped_release release;
      moved = splat::rdoq_sweep(args);
    }
    return py::make_tuple(out, moved);
  });
}

// What this CPU and OS support, as {feature: bool} plus the ISA levels the variant modules are built
// for ("x86-64-v3", "x86-64-v4"); empty off x86. libgcc / compiler-rt fill in the features from CPUID and
// report the AVX and AVX-512 ones only when the OS saves their registers (XGETBV), which CPUID alone does
// not say. Only names every supported compiler knows are asked: older Clang rejects unknown ones.
py::dict cpu_features() {
  py::dict out;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  bool v2 = true, v3 = true, v4 = true;
#define SPLAT_FEATURE(name, level)                             \
  {                                                            \
    const bool has = __builtin_cpu_supports(name) != 0;        \
    out[name] = has;                                           \
    level = level && has;                                      \
  }
  SPLAT_FEATURE("popcnt", v2)
  SPLAT_FEATURE("sse3", v2)
  SPLAT_FEATURE("ssse3", v2)
  SPLAT_FEATURE("sse4.1", v2)
  SPLAT_FEATURE("sse4.2", v2)
  SPLAT_FEATURE("avx", v3)
  SPLAT_FEATURE("avx2", v3)
  SPLAT_FEATURE("fma", v3)
  SPLAT_FEATURE("bmi", v3)
  SPLAT_FEATURE("bmi2", v3)
  SPLAT_FEATURE("avx512f", v4)
  SPLAT_FEATURE("avx512bw", v4)
  SPLAT_FEATURE("avx512cd", v4)
  SPLAT_FEATURE("avx512dq", v4)
  SPLAT_FEATURE("avx512vl", v4)
#if !defined(__clang__) && __GNUC__ >= 12
  // GCC 12 also knows F16C, LZCNT, MOVBE and the levels themselves (which add CX16 and LAHF).
  SPLAT_FEATURE("f16c", v3)
  SPLAT_FEATURE("lzcnt", v3)
  SPLAT_FEATURE("movbe", v3)
  SPLAT_FEATURE("x86-64-v2", v2)
  SPLAT_FEATURE("x86-64-v3", v3)
  SPLAT_FEATURE("x86-64-v4", v4)
#endif
#undef SPLAT_FEATURE
  v3 = v3 && v2;
  v4 = v4 && v3;
  out["x86-64-v2"] = v2;
  out["x86-64-v3"] = v3;
  out["x86-64-v4"] = v4;
#endif
  return out;
}

}  // namespace

PYBIND11_MODULE(SPLAT_MODULE_NAME, m) {
  m.doc() = "splatcodec native core: tile-based 2D Gaussian rasteriser and fitter (CPU, OpenMP), built for "
            SPLAT_STRINGIFY(SPLAT_ISA);
  m.attr("TILE_SIZE") = splat::kTileSize;
  m.attr("CUTOFF_SIGMA") = splat::kCutoffSigma;
  m.attr("SIMD_LANES") = splat::simd_lanes();
  m.attr("ISA") = SPLAT_STRINGIFY(SPLAT_ISA);
  m.attr("BUILD_ID") = SPLAT_STRINGIFY(SPLAT_BUILD_ID);
  // Hard maxima (src_cuda/core_limits.h); splatcodec.limits states the same numbers and a test compares.
  m.attr("MAX_SIDE") = splat::kMaxSide;
  m.attr("MAX_PIXELS") = splat::kMaxPixels;
  m.attr("MAX_GAUSSIANS") = splat::kMaxGaussians;
  m.attr("WORK_CHUNK") = splat::kWorkChunk;

  const std::string name = SPLAT_STRINGIFY(SPLAT_MODULE_NAME);
  if (name == "_core") {
    register_fit_config(m);
    const std::string variants = SPLAT_STRINGIFY(SPLAT_ISA_VARIANTS);
    py::list built;
    for (size_t start = 0; start < variants.size();) {
      const size_t end = std::min(variants.find(' ', start), variants.size());
      if (end > start) built.append(variants.substr(start, end - start));
      start = end + 1;
    }
    m.attr("ISA_VARIANTS") = py::tuple(built);
  } else {
    // A variant: take _core's registrations (the loader imports _core first). Registering FitConfig again
    // globally would fail ("already registered"); if _core is missing, fall back to module-local copies.
    try {
      py::module_ core = py::module_::import("splatcodec._core");
      m.attr("FitConfig") = core.attr("FitConfig");
      m.attr("InitMode") = core.attr("InitMode");
      m.attr("CancelToken") = core.attr("CancelToken");
    } catch (const py::error_already_set&) {
      PyErr_Clear();
      register_fit_config(m, py::module_local());
    }
  }
  m.def("cpu_features", &cpu_features,
        "What this CPU and OS support: {feature: bool}, with the ISA levels 'x86-64-v2/v3/v4' (empty off x86).");

  m.def("render", &render_as<float>, py::arg("params"), py::arg("width"), py::arg("height"),
        py::arg("threads") = 0, py::arg("max_entries") = 0, py::arg("max_work") = 0.0,
        py::arg("cancel") = py::none(),
        "Render packed Gaussians (N, 5+C) to a float32 (height, width, C) image. max_entries / max_work "
        "(0: none) bound the tile lists and the evaluated pixels (splatcodec.errors.LimitExceededError); "
        "a cancelled CancelToken stops it (splatcodec.errors.CancelledError).");
  m.def("render_u8", &render_as<uint8_t>, py::arg("params"), py::arg("width"), py::arg("height"),
        py::arg("threads") = 0, py::arg("max_entries") = 0, py::arg("max_work") = 0.0,
        py::arg("cancel") = py::none(),
        "Like render, converted to uint8 tile by tile (round half up, clipped, NaN -> 0).");
  m.def("render_backward", &render_backward, py::arg("params"), py::arg("width"), py::arg("height"),
        py::arg("grad_image"), py::arg("threads") = 0,
        "Gradient of sum(grad_image * render(params)) w.r.t. params, shape (N, 5+C).");
  py::class_<ColorProducts>(m, "ColorProducts",
                            "Products with the footprints W (N x pixels) of packed Gaussians (N, 5+C), binned "
                            "once: footprints_times(image) = W g, normal(colors) = W W^T c; both (N, C).")
      .def(py::init<const FloatArray&, int64_t, int64_t, int>(), py::arg("params"), py::arg("width"),
           py::arg("height"), py::arg("threads") = 0)
      .def("footprints_times", &ColorProducts::footprints_times, py::arg("image"))
      .def("normal", &ColorProducts::normal, py::arg("colors"));
  m.def("fit_batch", &fit_batch, py::arg("images"), py::arg("configs"), py::arg("inits"),
        py::arg("threads") = 0, py::arg("max_entries") = 0, py::arg("max_work") = 0.0,
        py::arg("cancel") = py::none(),
        "Fit each float32 (H, W, C) image; returns a list of (params, stats dict). The budget applies to "
        "every iteration's binning; a cancelled CancelToken stops every fit of the call.");
  m.def("rdoq_distortion", &rdoq_distortion, py::arg("target"), py::arg("symbols"), py::arg("lo"), py::arg("step"),
        py::arg("to_rgb"),
        "D of rate-distortion optimised quantization (splatcodec.codec.rdoq): squared error of the render of "
        "the symbols against target.");
  m.def("rdoq_sweep", &rdoq_sweep, py::arg("target"), py::arg("symbols"), py::arg("lo"), py::arg("step"),
        py::arg("to_rgb"), py::arg("d_rate"), py::arg("valid"), py::arg("gap_costs"), py::arg("bounds"),
        py::arg("pos_bits"), py::arg("lam"),
        "One sweep of rate-distortion optimised quantization (splatcodec.codec.rdoq): returns (symbols, "
        "Gaussians moved).");
  m.def("initial_gaussians", &initial_gaussians, py::arg("image"), py::arg("config"),
        "The Gaussians a fit would start from.");
}
