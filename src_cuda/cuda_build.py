"""Build helper for the optional CUDA extension ``splatcodec._core_cuda`` (used by setup.py).

Self-contained (setuptools + pybind11 only)::

    from cuda_build import cuda_build_ext, cuda_extension
    ext = cuda_extension()            # setuptools.Extension, or None when CUDA is not requested/found
    cmdclass = {"build_ext": cuda_build_ext(build_ext)}   # teaches any build_ext class to compile .cu

The extension is built only when ``SPLATCODEC_CUDA=1`` and ``nvcc`` is found. Environment:

  SPLATCODEC_CUDA=1          build splatcodec._core_cuda
  SPLATCODEC_CUDA_ARCH       ';'- or ','-separated compute capabilities, default "80;90": a cubin for
                             each (-gencode arch=compute_XX,code=sm_XX) plus PTX of the highest one, so
                             newer GPUs JIT-compile it; "native" builds for the GPU(s) of this machine.
  CUDA_HOME / CUDA_PATH      CUDA toolkit root (else derived from nvcc, or /usr/local/cuda)
  NVCC                       nvcc to use (else $CUDA_HOME/bin/nvcc, else nvcc on PATH)
  CUDAHOSTCXX                host compiler for nvcc (-ccbin), if not the default
  SPLATCODEC_DEBUG=1         -O0 -g for the host code (device code keeps -O3, with -lineinfo)

The CUDA runtime is linked statically (libcudart_static), so the module imports on machines without
the CUDA toolkit; without a driver/GPU, ``device_count()`` is 0 and the other calls raise RuntimeError.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

from setuptools import Extension

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARCHS = "80;90"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def find_nvcc() -> Optional[str]:
    """Path of nvcc, or None."""
    explicit = os.environ.get("NVCC")
    if explicit:
        return explicit if shutil.which(explicit) else None
    for var in ("CUDA_HOME", "CUDA_PATH"):
        home = os.environ.get(var)
        if home and (Path(home) / "bin" / "nvcc").exists():
            return str(Path(home) / "bin" / "nvcc")
    found = shutil.which("nvcc")
    if found:
        return found
    default = Path("/usr/local/cuda/bin/nvcc")
    return str(default) if default.exists() else None


def find_cuda_home(nvcc: str) -> Optional[Path]:
    """Toolkit root holding include/cuda_runtime_api.h (nvcc may be a wrapper script elsewhere)."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"),
                  str(Path(nvcc).resolve().parent.parent), str(Path(nvcc).parent.parent), "/usr/local/cuda"]
    for c in candidates:
        if c and (Path(c) / "include" / "cuda_runtime_api.h").exists():
            return Path(c)
    return None


def _library_dir(home: Path) -> Optional[Path]:
    for sub in ("lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib"):
        d = home / sub
        if (d / "libcudart_static.a").exists():
            return d
    return None


def gencode_flags(spec: Optional[str] = None) -> list[str]:
    """nvcc architecture flags for SPLATCODEC_CUDA_ARCH (or ``spec``)."""
    spec = (spec if spec is not None else os.environ.get("SPLATCODEC_CUDA_ARCH", DEFAULT_ARCHS)).strip()
    if spec.lower() == "native":
        return ["-arch=native"]
    archs = [a.strip().lower().replace("sm_", "").replace("compute_", "").replace(".", "")
             for a in re.split(r"[;,\s]+", spec) if a.strip()]
    if not archs or not all(re.fullmatch(r"\d{2,3}[af]?", a) for a in archs):
        raise ValueError(f"SPLATCODEC_CUDA_ARCH={spec!r}: expected e.g. '80;90' or 'native'")
    archs = sorted(set(archs), key=lambda a: (int(re.sub(r"\D", "", a)), a))
    flags = []
    for a in archs:
        flags += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    last = archs[-1]
    flags += ["-gencode", f"arch=compute_{last},code=compute_{last}"]  # PTX fallback for newer GPUs
    return flags


def nvcc_flags() -> list[str]:
    flags = ["-std=c++17", "-O3", "-lineinfo", "--expt-relaxed-constexpr", "-Xcompiler", "-fPIC",
             "-Xcompiler", "-fvisibility=hidden"]
    if not _flag("SPLATCODEC_DEBUG"):
        flags.append("-DNDEBUG")
    host = os.environ.get("CUDAHOSTCXX")
    if host:
        flags += ["-ccbin", host]
    return flags + gencode_flags()


class CudaExtension(Extension):
    """An Extension whose .cu sources are compiled by nvcc with ``nvcc_args``."""

    def __init__(self, *args: Any, nvcc: str, nvcc_args: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nvcc = nvcc
        self.nvcc_args = nvcc_args


def cuda_extension() -> Optional[Extension]:
    """The splatcodec._core_cuda extension, or None unless SPLATCODEC_CUDA=1 and nvcc is found."""
    if not _flag("SPLATCODEC_CUDA"):
        return None
    nvcc = find_nvcc()
    home = find_cuda_home(nvcc) if nvcc else None
    lib = _library_dir(home) if home else None
    if not (nvcc and home and lib):
        print(f"WARNING: SPLATCODEC_CUDA=1 but no usable CUDA toolkit was found (nvcc={nvcc}, "
              f"CUDA home={home}, libcudart_static in {lib}); splatcodec._core_cuda is NOT built. "
              "Set CUDA_HOME or put nvcc on PATH.", file=sys.stderr)
        return None
    import pybind11

    cxx = ["-std=c++17", "-fvisibility=hidden", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
    cxx += ["-O0", "-g"] if _flag("SPLATCODEC_DEBUG") else ["-O3", "-DNDEBUG"]
    src = ROOT / "src_cuda"
    sources = sorted(str(p.relative_to(ROOT)) for p in src.glob("*.cpp"))
    sources += sorted(str(p.relative_to(ROOT)) for p in src.glob("*.cu"))
    sources.append("bindings/cuda_module.cpp")
    return CudaExtension(
        "splatcodec._core_cuda",
        sources,
        include_dirs=["src_cuda", pybind11.get_include(), str(home / "include")],
        library_dirs=[str(lib)],
        libraries=["cudart_static", "rt", "pthread", "dl"],
        extra_compile_args=cxx,
        extra_link_args=["-fopenmp"],
        language="c++",
        nvcc=nvcc,
        nvcc_args=nvcc_flags(),
    )


def cuda_build_ext(base: type) -> type:
    """A subclass of the build_ext class ``base`` that compiles the .cu sources of CudaExtensions with
    nvcc (other sources and extensions are left to ``base``)."""

    class CudaBuildExt(base):  # type: ignore[misc, valid-type]
        def build_extension(self, ext: Extension) -> None:
            if not isinstance(ext, CudaExtension):
                super().build_extension(ext)
                return
            compiler = self.compiler
            if ".cu" not in compiler.src_extensions:
                compiler.src_extensions.append(".cu")
            original = compiler._compile

            def _compile(obj: str, src: str, ext_: str, cc_args: list[str], extra_postargs: list[str],
                         pp_opts: list[str]) -> None:
                if not src.endswith(".cu"):
                    original(obj, src, ext_, cc_args, extra_postargs, pp_opts)
                    return
                # pp_opts: the -I / -D options setuptools computed for this extension.
                compiler.spawn([ext.nvcc, "-c", src, "-o", obj, *pp_opts, *ext.nvcc_args])

            compiler._compile = _compile
            try:
                super().build_extension(ext)
            finally:
                compiler._compile = original

    CudaBuildExt.__name__ = f"Cuda{base.__name__}"
    return CudaBuildExt


def main(argv: Optional[list[str]] = None) -> int:
    """``python src_cuda/cuda_build.py``: builds splatcodec/_core_cuda*.so in place (no setup.py needed;
    SPLATCODEC_CUDA is implied, the other variables apply)."""
    os.environ.setdefault("SPLATCODEC_CUDA", "1")
    ext = cuda_extension()
    if ext is None:
        print("splatcodec._core_cuda: nothing built (see the warning above)", file=sys.stderr)
        return 1
    from pybind11.setup_helpers import build_ext
    from setuptools import setup

    os.chdir(ROOT)  # the extension's sources are relative to the repository root
    setup(name="splatcodec-core-cuda", ext_modules=[ext], cmdclass={"build_ext": cuda_build_ext(build_ext)},
          script_args=["build_ext", "--inplace", *(argv if argv is not None else sys.argv[1:])])
    return 0


if __name__ == "__main__":
    sys.exit(main())
