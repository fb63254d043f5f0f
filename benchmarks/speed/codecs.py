"""Section ``codecs``: encode/decode time ratios at equal bpp, from the rate-distortion run's JSON."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .settings import SPLAT, Settings
from .util import md_table


def load_curves(results: Path) -> dict[str, dict[str, Any]]:
    """CompressAI-style JSON documents written by benchmarks.rd, by codec file stem (empty if there are none)."""
    folder = results / "json"
    if not folder.is_dir():
        return {}
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
    rows = []
    for doc in curves.values():
        r = doc["results"]
        for b, e, d in zip(r["bpp"], r["encoding_time"], r["decoding_time"]):
            rows.append([doc["name"], f"{b:.3f}", f"{e:.1f}", f"{d:.1f}"])
    return md_table(["codec", "bpp", "encode ms", "decode ms"], rows)


def ratios(curves: dict[str, dict[str, Any]], test: str = SPLAT) -> list[dict[str, Any]]:
    """splatcodec time / reference time at each splatcodec rate point (None outside a reference's sweep)."""
    t = curves[test]["results"]
    out = []
    for b, e, d in zip(t["bpp"], t["encoding_time"], t["decoding_time"]):
        for key, doc in curves.items():
            if key == test:
                continue
            r = doc["results"]
            re_ = interp_at(b, r["bpp"], r["encoding_time"])
            rd_ = interp_at(b, r["bpp"], r["decoding_time"])
            out.append({"bpp": b, "codec": key, "label": doc["name"],
                        "encode_ratio": None if re_ is None else e / re_,
                        "decode_ratio": None if rd_ is None else d / rd_})
    return out


def ratio_table(curves: dict[str, dict[str, Any]], test: str = SPLAT) -> str:
    """splatcodec time / reference time at splatcodec's bpp, for encode and decode, as Markdown."""
    refs = [k for k in curves if k != test]
    by_bpp: dict[float, dict[str, dict[str, Any]]] = {}
    for row in ratios(curves, test):
        by_bpp.setdefault(row["bpp"], {})[row["codec"]] = row
    rows = []
    for b, cells in by_bpp.items():
        line = [f"{b:.3f}"]
        for k in refs:
            c = cells[k]
            line.append("n/a (bpp outside its sweep)" if c["encode_ratio"] is None or c["decode_ratio"] is None
                        else f"{c['encode_ratio']:.3g}x / {c['decode_ratio']:.3g}x")
        rows.append(line)
    return md_table(["bpp"] + [f"{curves[k]['name']} enc / dec" for k in refs], rows, "r" * (len(refs) + 1))


def section_codecs(settings: Settings, rd_results: Path) -> dict[str, Any]:
    curves = load_curves(rd_results)
    if not curves:
        why = f"no benchmarks.rd results in {rd_results / 'json'}: run benchmarks.rd first (see docs/benchmarks.md)"
        print(f"skipped: {why}")
        return {"skipped": why}
    print(f"baseline: the reference codecs of the same benchmarks.rd run; timings from {rd_results / 'json'} "
          "(median ms per image, each the median of benchmarks.rd's repeats)\n")
    print(timing_table(curves))
    print()
    out: dict[str, Any] = {
        "source": str(rd_results / "json"),
        "codecs": {k: {"label": d["name"], "description": d.get("description", ""), "bpp": d["results"]["bpp"],
                       "encode_ms": d["results"]["encoding_time"], "decode_ms": d["results"]["decoding_time"]}
                   for k, d in curves.items()}}
    if SPLAT not in curves:
        print("splatcodec: no results in this folder (it was not benchmarked when benchmarks.rd ran); no ratios computed")
        out["ratios"] = None
        return out
    print("splatcodec time / reference time at the same bpp (>1 = splatcodec slower):\n")
    print(ratio_table(curves))
    out["ratios"] = ratios(curves)
    return out

