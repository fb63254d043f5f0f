"""The machine line every section prints: CPU, native core and ISA, the CUDA module and GPU if any."""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from splatcodec import _native

from ..common import cpu_name, machine_description
from .util import threads_used

ISA_BY_LANES = {4: "SSE2 (portable build)", 8: "AVX2", 16: "AVX-512"}


def cuda_module() -> tuple[Any, str]:
    """(splatcodec._core_cuda, "") when it imports and has a device, else (None, why not)."""
    try:
        _native.core()  # sets the OpenMP wait policy before any native library loads
        module = importlib.import_module("splatcodec._core_cuda")
    except ImportError as exc:
        return None, f"splatcodec._core_cuda not built ({exc}); see docs/cuda.md"
    try:
        count = module.device_count()
    except Exception as exc:  # noqa: BLE001 - a broken driver is a reason to skip, not to fail
        return None, f"device_count() failed: {exc}"
    if count <= 0:
        return None, "splatcodec._core_cuda imports but sees no CUDA device"
    return module, ""


def gpu_name() -> str:
    try:
        import subprocess

        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "CUDA device"
    except (OSError, IndexError, Exception):  # noqa: BLE001
        return "CUDA device"


def machine_info(threads: int) -> dict[str, Any]:
    """The machine and the native modules loaded, for every section's header and the JSON."""
    info: dict[str, Any] = {"description": machine_description(), "cpu": cpu_name(),
                            "logical_cpus": os.cpu_count(), "threads": threads_used(threads)}
    try:
        core = _native.core()
        lanes = int(getattr(core, "SIMD_LANES", 0))
        info["native_module"] = Path(core.__file__).name
        info["simd_lanes"] = lanes
        isa = getattr(_native, "isa", None)
        info["isa"] = str(isa()) if callable(isa) else ISA_BY_LANES.get(lanes, f"{lanes}-float SIMD")
    except Exception as exc:  # noqa: BLE001
        info["native_module"] = f"unavailable ({exc})"
    module, why = cuda_module()
    info["cuda"] = {"available": module is not None}
    if module is not None:
        info["cuda"].update(devices=int(module.device_count()), name=gpu_name())
    else:
        info["cuda"]["reason"] = why
    try:
        import PIL

        info["pillow"] = PIL.__version__
    except ImportError:  # pragma: no cover
        pass
    return info


def machine_line(info: dict[str, Any]) -> str:
    cuda = info["cuda"]
    gpu = f"GPU: {cuda['name']} x{cuda['devices']}" if cuda["available"] else "no GPU path"
    return (f"machine: {info['description']}; {info['threads']} threads used; native core "
            f"{info.get('native_module')} (ISA {info.get('isa', '?')}, {info.get('simd_lanes', '?')}-float SIMD "
            f"kernels); {gpu}; Pillow {info.get('pillow', '?')}")

