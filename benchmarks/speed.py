#!/usr/bin/env python3
"""Encode/decode speed of splatcodec relative to Pillow's codecs at a similar bpp.

This reuses the timings that ``benchmarks/rd.py`` measured (its ``json/<codec>.json`` files: median
milliseconds per image at each rate point), so the numbers come from the same encodes as the RD curves
instead of a second, differently loaded run. For each splatcodec rate point, each reference codec's
encode and decode time is interpolated (linearly in log-time over log-bpp) at splatcodec's bpp, and
the ratio splatcodec / reference is printed: above 1 means splatcodec is slower.

Batched-fitting throughput and scaling are measured by ``benchmarks/fit_speed.py`` (the native core's).

Usage: ``python benchmarks/speed.py [RESULTS_DIR]`` (default ``benchmarks/results/kodak``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = REPO_ROOT / "benchmarks" / "results" / "kodak"
SPLAT = "splatcodec"


def load_curves(results: Path) -> dict[str, dict[str, Any]]:
    """CompressAI-style JSON documents written by rd.py, by codec file stem."""
    folder = results / "json"
    if not folder.is_dir():
        raise SystemExit(f"no {folder}: run benchmarks/rd.py first")
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def interp_at(bpp: float, curve_bpp: Sequence[float], values: Sequence[float]) -> float | None:
    """``values`` interpolated at ``bpp`` in log-log space; None outside the curve's bpp range."""
    x = np.log(np.asarray(curve_bpp, dtype=np.float64))
    y = np.log(np.asarray(values, dtype=np.float64))
    order = np.argsort(x)
    x, y = x[order], y[order]
    lx = np.log(bpp)
    if len(x) == 0 or lx < x[0] or lx > x[-1]:
        return None
    return float(np.exp(np.interp(lx, x, y)))


def timing_table(curves: dict[str, dict[str, Any]]) -> str:
    """Median encode/decode ms of every codec at each of its rate points, as Markdown."""
    lines = ["| codec | bpp | encode ms | decode ms |", "|---|---:|---:|---:|"]
    for doc in curves.values():
        r = doc["results"]
        for b, e, d in zip(r["bpp"], r["encoding_time"], r["decoding_time"]):
            lines.append(f"| {doc['name']} | {b:.3f} | {e:.1f} | {d:.1f} |")
    return "\n".join(lines)


def ratio_table(curves: dict[str, dict[str, Any]], test: str = SPLAT) -> str:
    """splatcodec time / reference time at splatcodec's bpp, for encode and decode, as Markdown."""
    t = curves[test]["results"]
    refs = {k: v for k, v in curves.items() if k != test}
    header = "| bpp | " + " | ".join(f"{curves[k]['name']} enc / dec" for k in refs) + " |"
    lines = [header, "|---:|" + "---:|" * len(refs)]
    for b, e, d in zip(t["bpp"], t["encoding_time"], t["decoding_time"]):
        cells = []
        for doc in refs.values():
            r = doc["results"]
            re_ = interp_at(b, r["bpp"], r["encoding_time"])
            rd_ = interp_at(b, r["bpp"], r["decoding_time"])
            cells.append("n/a (bpp outside its sweep)" if re_ is None or rd_ is None else f"{e / re_:.3g}x / {d / rd_:.3g}x")
        lines.append(f"| {b:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="?", type=Path, default=DEFAULT_RESULTS,
                   help="rd.py output folder (default benchmarks/results/kodak)")
    args = p.parse_args(argv)
    curves = load_curves(args.results)
    print(f"timings from {args.results / 'json'} (median ms per image; see each JSON's description)\n")
    print(timing_table(curves))
    print()
    if SPLAT not in curves:
        print("splatcodec: no results in this folder (splatcodec.encode/decode unavailable when rd.py ran); "
              "no ratios computed")
        return 0
    print("splatcodec time / reference time at the same bpp (>1 = splatcodec slower):\n")
    print(ratio_table(curves))
    return 0


if __name__ == "__main__":
    sys.exit(main())
