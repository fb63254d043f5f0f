#!/usr/bin/env python3
"""``Image.thumbnail`` of a big ``.gsplat`` through the Pillow plugin, against loading it in full.

The big file is a real encode (kodim23, ``--quality``, ``--effort``; cached under ``--out``) whose
Gaussians are scaled onto a ``--width`` x ``--height`` canvas (default 6144x4096, 25 MP, inside
splatcodec's default pixel limit so the full load is allowed) and written as a 1.0 file. Each case
runs in a fresh process, ``--repeats`` times; printed: median wall time and the process's peak RSS
growth over its state just before the measured call (``ru_maxrss``, so native buffers count too).

* ``full load``: ``Image.open(big).load()``, the full-size render;
* ``load + thumbnail``: what a reader without ``draft()`` support would cost;
* ``thumbnail``: ``Image.open(big).thumbnail((256, 256))``; the plugin's ``draft()`` renders at
  768x512 (Pillow asks for twice the thumbnail size), then Pillow resizes.

    python benchmarks/pillow_thumbnail.py [--width 6144 --height 4096] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
KODAK = ROOT.parent / "shared" / "data" / "kodak"

CASES = {
    "full load": "im = Image.open(path); start(); im.load()",
    "load + thumbnail": "im = Image.open(path); start(); im.load(); im.thumbnail((256, 256))",
    "thumbnail": "im = Image.open(path); start(); im.thumbnail((256, 256))",
}

RUNNER = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
import numpy as np, splatcodec
from PIL import Image
splatcodec.register_pillow()
path = {path!r}
marks = {{}}
def start():
    marks["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    marks["t"] = time.perf_counter()
{case}
seconds = time.perf_counter() - marks["t"]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": seconds, "peak_growth_mb": (peak - marks["rss"]) / 1024, "size": im.size}}))
"""


def big_file(args: argparse.Namespace) -> Path:
    import numpy as np
    from PIL import Image

    import splatcodec
    from splatcodec.codec.api import decode_splats, encode_splats

    args.out.mkdir(parents=True, exist_ok=True)
    small = args.out / f"kodim23_q{args.quality:g}_e{args.effort}.gsplat"
    if not small.exists():
        with Image.open(KODAK / "kodim23.png") as im:
            small.write_bytes(splatcodec.encode(np.asarray(im.convert("RGB")), quality=args.quality,
                                                effort=args.effort))
    big = args.out / f"kodim23_q{args.quality:g}_e{args.effort}_{args.width}x{args.height}.gsplat"
    if not big.exists():
        s = decode_splats(small.read_bytes())
        sx, sy = args.width / s.width, args.height / s.height
        xy = s.xy * np.array([sx, sy], np.float32)
        chol = s.chol * np.array([sx, sy, sy], np.float32)  # S L for S = diag(sx, sy)
        scaled = splatcodec.Splats(xy, chol, s.color, args.width, args.height)
        big.write_bytes(encode_splats(scaled, quality=args.quality))
    return big


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=6144)
    parser.add_argument("--height", type=int, default=4096)
    parser.add_argument("--quality", type=float, default=75)
    parser.add_argument("--effort", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "cache" / "pillow_thumbnail")
    args = parser.parse_args()
    path = big_file(args)
    print(f"{path.name}: {path.stat().st_size} bytes, {args.width}x{args.height}; cpus {os.cpu_count()}, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print("| case | result size | median s | peak RSS growth MB |")
    print("| --- | --- | ---: | ---: |")
    for name, case in CASES.items():
        runs = []
        for _ in range(args.repeats):
            code = RUNNER.format(root=str(ROOT), path=str(path), case=case)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = statistics.median(r["peak_growth_mb"] for r in runs)
        print(f"| {name} | {runs[0]['size'][0]}x{runs[0]['size'][1]} | {seconds:.3f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
