"""Build script: compiles the native core (src_cuda/ + bindings/) into splatcodec._core.

Flags are portable by default (x86-64 baseline / generic ARM). Environment switches:
  SPLATCODEC_NATIVE_ARCH=1   tune for this machine (-march=native: AVX2/AVX-512 where present);
                             the result may not run on other CPUs.
  SPLATCODEC_DEBUG=1         -O0 -g, assertions on.
  SPLATCODEC_CUDA=1          also build the CUDA module splatcodec._core_cuda (needs nvcc; see
                             docs/cuda.md and src_cuda/cuda_build.py for its switches).
  SPLATCODEC_EXTRA_CFLAGS    extra compiler flags, e.g. for experiments with the kernels' macros.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import find_packages, setup

ROOT = Path(__file__).parent
sys.path.insert(0, str(ROOT / "src_cuda"))
from cuda_build import cuda_build_ext, cuda_extension  # noqa: E402  (optional CUDA module)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def native_extension() -> Pybind11Extension:
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
    sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "src_cuda").glob("*.cpp"))
    sources.append("bindings/module.cpp")
    headers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "src_cuda").glob("*.h"))
    return Pybind11Extension(
        "splatcodec._core",
        sources,
        depends=headers,  # rebuild when a header changes
        include_dirs=["src_cuda"],
        cxx_std=17,
        extra_compile_args=cxx_flags,
        extra_link_args=link_flags,
    )


setup(
    name="splatcodec",
    version="0.1.0",
    description="Image codec storing images as coloured anisotropic 2D Gaussians (2DGS)",
    long_description=(ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["splatcodec", "splatcodec.*"]),
    python_requires=">=3.10",
    install_requires=["numpy>=1.24", "pillow>=10", "click>=8.1", "constriction>=0.4"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6"],
        "torch": ["torch>=2.1"],
        "bench": ["matplotlib>=3.7", "bjontegaard>=1.3"],
    },
    entry_points={"console_scripts": ["splatcodec=splatcodec.cli:main"]},
    ext_modules=[native_extension()] + [e for e in [cuda_extension()] if e is not None],
    cmdclass={"build_ext": cuda_build_ext(build_ext)},
    zip_safe=False,
)
