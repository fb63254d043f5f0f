"""Resource contract of decode under the default limits: worst-case time and peak memory.

Each case builds a file that sits at (or just under) one of the default limits of splatcodec.limits
and decodes it in a fresh subprocess, printing wall time and peak RSS (the child's VmHWM, which includes
the interpreter, numpy and the core: ~60-80 MB before any decoding). The cases:

* ``max-output``   one Gaussian on the largest default canvas (2^25 px, 8192x4096 RGB)
* ``max-work``     Gaussians filling the render-work budget (tall 1-px-wide ones: 16 columns each)
* ``max-entries``  Gaussians filling the tile-entry budget (each touching many tiles)
* ``max-count``    the most Gaussians a file may hold (2M), small, as real encodes have them
* ``max-all``      2M Gaussians near the entry and work caps on the largest canvas at once
* ``bomb-*``       files over a limit: refused, and how fast

    PYTHONPATH=. python benchmarks/decode_limits.py            # all cases
    PYTHONPATH=. python benchmarks/decode_limits.py max-work   # one

docs/limits.md records the figures and the machine they were measured on.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

import splatcodec as sc
from splatcodec import limits
from splatcodec.codec import api

ROOT = Path(__file__).resolve().parents[1]


def _splats(xy: np.ndarray, chol: np.ndarray, width: int, height: int, seed: int = 0) -> sc.Splats:
    rng = np.random.default_rng(seed)
    color = rng.uniform(0.0, 0.01, (len(xy), 3))
    return sc.Splats(xy, chol, color, width, height)


def case_max_output() -> sc.Splats:
    return sc.Splats([[4096.0, 2048.0]], [[900.0, 0.0, 900.0]], [[0.5, 0.3, 0.8]], 8192, 4096)


def case_max_work() -> sc.Splats:
    # 1-px-wide, 4096-row Gaussians on a 4096x4096 canvas: 16 x 4096 = 65536 work each; 256 tiles each.
    n = int(limits.DEFAULT_MAX_RENDER_WORK // (16 * 4096))
    n = min(n, limits.DEFAULT_MAX_TILE_ENTRIES // 256)
    rng = np.random.default_rng(1)
    xy = np.stack([rng.uniform(0, 4096, n), np.full(n, 2048.0)], axis=1)
    return _splats(xy, np.tile([0.1, 0.0, 700.0], (n, 1)), 4096, 4096)


def case_max_entries() -> sc.Splats:
    # Gaussians 48 px across (3 sigma = 24): 16 tiles each, 48x48 work.
    n = limits.DEFAULT_MAX_TILE_ENTRIES // 16
    rng = np.random.default_rng(2)
    side = 8192
    xy = rng.uniform(0, 4096, (n, 2)) * [side / 4096, 1.0]
    return _splats(xy, np.tile([8.0, 0.0, 8.0], (n, 1)), side, 4096)


def case_max_count() -> sc.Splats:
    n = limits.DEFAULT_MAX_GAUSSIANS
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, [8192, 4096], (n, 2))
    chol = np.column_stack([rng.uniform(0.5, 3, n), rng.uniform(-1, 1, n), rng.uniform(0.5, 3, n)])
    return _splats(xy, chol, 8192, 4096)


def case_max_all() -> sc.Splats:
    # Every limit at once: 2M Gaussians on the largest canvas, 1 px wide and 109 rows tall: 7-8 tiles
    # (up to 16M entries) and 16 x 109 work each (3.5e9 in all).
    n = limits.DEFAULT_MAX_GAUSSIANS
    rng = np.random.default_rng(4)
    xy = rng.uniform(0, [8192, 4096], (n, 2))
    return _splats(xy, np.tile([0.1, 0.0, 18.0], (n, 1)), 8192, 4096)


def case_bomb_tall() -> sc.Splats:
    n = 2_000_000  # issue 12: 4096x4096, 2M identical 1-px-wide, 2000-px-tall Gaussians in ~200 bytes
    return sc.Splats(np.full((n, 2), 2048.0), np.tile([0.2, 0.0, 333.0], (n, 1)), np.full((n, 3), 0.01),
                     4096, 4096)


CASES = {"max-output": case_max_output, "max-work": case_max_work, "max-entries": case_max_entries,
         "max-count": case_max_count, "max-all": case_max_all, "bomb-tall": case_bomb_tall}

CHILD = """
import sys, time
from splatcodec.codec import api

def peak_mib():
    # VmHWM: this process's own high-water mark (ru_maxrss would include the parent's, carried over exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024

data = open(sys.argv[1], "rb").read()
api.decode(open(sys.argv[2], "rb").read())  # warm-up: imports and the core loaded
start = time.perf_counter()
try:
    pixels = api.decode(data)
    outcome = f"decoded {pixels.shape[1]}x{pixels.shape[0]}"
except Exception as exc:
    outcome = f"refused: {type(exc).__name__}: {str(exc)[:90]}"
seconds = time.perf_counter() - start
print(f"{seconds:.2f}", peak_mib(), outcome)
"""


def run(name: str, workdir: Path, tiny: Path) -> str:
    splats = CASES[name]()
    path = workdir / f"{name}.gsplat"
    path.write_bytes(api.encode_splats(splats, levels=1))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD), str(path), str(tiny)], env=env,
                            capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        return f"{name:12} failed: {result.stderr.strip()[-300:]}"
    seconds, rss, outcome = result.stdout.split(maxsplit=2)
    return (f"{name:12} {splats.num_gaussians:>9} G  {path.stat().st_size:>9} B  {seconds:>7} s  "
            f"peak RSS {rss:>5} MiB  {outcome.strip()}")


def main(argv: list[str]) -> int:
    names = argv or list(CASES)
    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} cores, core {sc._native.isa()}, "
          f"load {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# defaults: max_pixels {limits.DEFAULT_MAX_PIXELS}, gaussians {limits.DEFAULT_MAX_GAUSSIANS}, "
          f"render work {limits.DEFAULT_MAX_RENDER_WORK}, tile entries {limits.DEFAULT_MAX_TILE_ENTRIES}, "
          f"gaussians/byte {limits.DEFAULT_MAX_GAUSSIANS_PER_BYTE}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        tiny = workdir / "tiny.gsplat"
        tiny.write_bytes(api.encode_splats(sc.Splats([[1.0, 1.0]], [[1.0, 0.0, 1.0]], [[0.5, 0.5, 0.5]], 4, 4)))
        for name in names:
            print(run(name, workdir, tiny), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
