"""Summarising a rate-distortion run: curves, BD metrics, per-image gains, tables, plot and output files."""
from __future__ import annotations

import csv
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .codecs import SPLAT, Codec

#: Published results, drawn on the plot as points; they were NOT re-run here (numbers as quoted in issue 5).
PUBLISHED_ANCHORS: dict[str, list[tuple[float, float]]] = {
    "GaussianImage (published)": [(0.15, 25.0), (0.43, 27.4), (1.0, 29.7)],
    "GaussianImage++ (published)": [(1.08, 31.1)],
}



@dataclass
class Curve:
    """One codec's RD curve: per rate point, means over images (times: medians)."""

    codec: Codec
    n_images: int
    values: list[float] = field(default_factory=list)
    bpp: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ms_ssim: list[float] = field(default_factory=list)
    enc_ms: list[float] = field(default_factory=list)
    dec_ms: list[float] = field(default_factory=list)
    incomplete: list[float] = field(default_factory=list)

    def to_compressai(self, dataset: str) -> dict[str, Any]:
        desc = (f"{self.codec.description()}. Dataset {dataset} ({self.n_images} images). bpp, psnr-rgb "
                f"and ms-ssim-rgb are means over images; encoding_time and decoding_time are medians over "
                f"images in milliseconds. Reference encoders are pinned to one thread; splatcodec runs with its encode() "
                f"defaults plus the options listed.")
        return {
            "name": self.codec.label,
            "description": desc,
            "results": {
                self.codec.param: self.values,
                "bpp": self.bpp,
                "psnr-rgb": self.psnr,
                "ms-ssim-rgb": self.ms_ssim,
                "encoding_time": self.enc_ms,
                "decoding_time": self.dec_ms,
            },
        }


def summarize(codecs: Sequence[Codec], rows: Iterable[dict[str, Any]], n_images: int) -> dict[str, Curve]:
    """Group per-image rows into curves; a rate point missing any image is left out (and listed)."""
    by_point: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in rows:
        by_point.setdefault((r["codec"], float(r["value"])), []).append(r)
    curves: dict[str, Curve] = {}
    for codec in codecs:
        curve = Curve(codec, n_images)
        points = []
        for (name, value), rs in by_point.items():
            if name != codec.name:
                continue
            if len(rs) < n_images:
                curve.incomplete.append(value)
                continue
            points.append((
                value,
                float(np.mean([r["bpp"] for r in rs])),
                float(np.mean([r["psnr"] for r in rs])),
                float(np.mean([r["ms_ssim"] for r in rs])),
                float(np.median([r["enc_ms"] for r in rs])),
                float(np.median([r["dec_ms"] for r in rs])),
            ))
        for p in sorted(points, key=lambda p: p[1]):
            for lst, v in zip((curve.values, curve.bpp, curve.psnr, curve.ms_ssim, curve.enc_ms, curve.dec_ms), p):
                lst.append(v)
        curves[codec.name] = curve
    return curves


def msssim_db(v: float | np.ndarray) -> np.ndarray:
    """MS-SSIM on the usual dB scale, -10 log10(1 - MS-SSIM)."""
    return -10.0 * np.log10(np.maximum(1.0 - np.asarray(v, dtype=np.float64), 1e-12))


def envelope(rate: Sequence[float], dist: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Points sorted by rate, keeping only those that raise quality (pchip needs a monotone curve)."""
    order = np.argsort(rate)
    r_out, d_out = [], []
    for i in order:
        if np.isfinite(dist[i]) and (not d_out or dist[i] > d_out[-1]):
            r_out.append(rate[i])
            d_out.append(dist[i])
    return np.asarray(r_out), np.asarray(d_out)


def clip_curve(c: Curve, lo: float, hi: float) -> Curve:
    """The same curve restricted to rate points with ``lo <= bpp <= hi``."""
    keep = [i for i, b in enumerate(c.bpp) if lo <= b <= hi]
    pick = lambda xs: [xs[i] for i in keep]  # noqa: E731
    return Curve(c.codec, c.n_images, pick(c.values), pick(c.bpp), pick(c.psnr), pick(c.ms_ssim),
                 pick(c.enc_ms), pick(c.dec_ms), list(c.incomplete))


def bd_metrics(anchor: Curve, test: Curve) -> dict[str, Any]:
    """BD-rate (%) and BD-PSNR (dB) of ``test`` against ``anchor`` (pchip), plus BD-rate on MS-SSIM dB.

    Negative BD-rate = ``test`` needs fewer bits at equal quality. Computed over the overlap of the two
    curves' quality ranges, which is reported along with any warning from ``bjontegaard``.
    """
    import bjontegaard as bd

    out: dict[str, Any] = {"anchor": anchor.codec.name, "test": test.codec.name}
    ra, da = envelope(anchor.bpp, anchor.psnr)
    rt, dt = envelope(test.bpp, test.psnr)
    out["psnr_overlap"] = (max(da.min(), dt.min()), min(da.max(), dt.max())) if len(da) and len(dt) else None
    notes = []
    for key, fn, (r1, d1, r2, d2) in (
        ("bd_rate", bd.bd_rate, (ra, da, rt, dt)),
        ("bd_psnr", bd.bd_psnr, (ra, da, rt, dt)),
        ("bd_rate_msssim", bd.bd_rate, (*envelope(anchor.bpp, msssim_db(anchor.ms_ssim)),
                                        *envelope(test.bpp, msssim_db(test.ms_ssim)))),
    ):
        if len(r1) < 2 or len(r2) < 2:
            out[key] = float("nan")
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out[key] = float(fn(r1, d1, r2, d2, method="pchip", require_matching_points=False))
            except Exception as exc:  # e.g. curves that do not overlap at all
                out[key] = float("nan")
                notes.append(f"{key}: {exc}")
        for w in caught:
            m = re.search(r"overlap: '([\d.]+)'", str(w.message))
            notes.append(f"{key}: low overlap {float(m.group(1)):.0f}%" if m else f"{key}: {w.message}")
    out["notes"] = notes
    return out


def per_image_gains(rows: Iterable[dict[str, Any]], test: str, anchor: str) -> list[dict[str, Any]]:
    """Per rate point of ``test``: its PSNR minus ``anchor``'s on the same image at the same bpp.

    The anchor's per-image curve is interpolated in log bpp (over its monotone envelope); images whose
    anchor sweep does not reach the test's bpp are left out, so ``n`` can be below the image count. A
    BD-rate averages curves; this says how many images are actually better or worse at each rate.
    """
    by_image: dict[str, dict[str, list[tuple[float, float, float]]]] = {}  # (value, bpp, psnr)
    for r in rows:
        if r["codec"] in (test, anchor):
            by_image.setdefault(r["image"], {}).setdefault(r["codec"], []).append(
                (float(r["value"]), float(r["bpp"]), float(r["psnr"])))
    gains: dict[float, list[float]] = {}
    bpps: dict[float, list[float]] = {}
    for curves in by_image.values():
        if anchor not in curves or test not in curves:
            continue
        rate, dist = envelope([b for _, b, _ in curves[anchor]], [p for _, _, p in curves[anchor]])
        if len(rate) < 2:
            continue
        for value, bpp, psnr in curves[test]:
            bpps.setdefault(value, []).append(bpp)
            if rate[0] <= bpp <= rate[-1]:
                ref = float(np.interp(np.log(bpp), np.log(rate), dist))
                gains.setdefault(value, []).append(psnr - ref)
    out = []
    for value in sorted(bpps):
        g = np.asarray(gains.get(value, []))
        out.append({"value": value, "bpp": float(np.mean(bpps[value])), "n": int(g.size),
                    "mean": float(g.mean()) if g.size else float("nan"),
                    "worst": float(g.min()) if g.size else float("nan"),
                    "best": float(g.max()) if g.size else float("nan"),
                    "wins": int((g > 0).sum())})
    return out


def format_per_image_table(title: str, gains: list[dict[str, Any]], param: str) -> str:
    """A Markdown table of :func:`per_image_gains`."""
    lines = [title, "", f"| {param} | mean bpp | images compared | mean dB | worst dB | best dB | images better |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for g in gains:
        lines.append(f"| {g['value']:g} | {g['bpp']:.3f} | {g['n']} | {g['mean']:+.2f} | {g['worst']:+.2f} | "
                     f"{g['best']:+.2f} | {g['wins']}/{g['n']} |")
    return "\n".join(lines)


def format_bd_table(title: str, rows: list[dict[str, Any]], curves: dict[str, Curve], key: str = "anchor") -> str:
    """A Markdown table of BD results, one row per ``row[key]`` codec (the anchor, or the test codec)."""
    lines = [title, "",
             f"| {'anchor' if key == 'anchor' else 'codec under test'} | BD-rate PSNR (%) | BD-PSNR (dB) | BD-rate MS-SSIM (%) | PSNR overlap (dB) | notes |",
             "|---|---:|---:|---:|---|---|"]
    for r in rows:
        ov = r["psnr_overlap"]
        ov_s = f"{ov[0]:.2f}-{ov[1]:.2f}" if ov and ov[0] < ov[1] else "none"
        note = "; ".join(r["notes"]).replace("|", "/")[:120]
        lines.append(f"| {curves[r[key]].codec.label} | {r['bd_rate']:+.1f} | {r['bd_psnr']:+.2f} | "
                     f"{r['bd_rate_msssim']:+.1f} | {ov_s} | {note} |")
    return "\n".join(lines)


def format_summary_table(curves: dict[str, Curve]) -> str:
    """Per codec and rate point: the means and medians, as Markdown."""
    lines = ["| codec | param | bpp | PSNR-RGB (dB) | MS-SSIM | MS-SSIM (dB) | enc ms | dec ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in curves.values():
        for i in range(len(c.bpp)):
            lines.append(f"| {c.codec.label} | {c.codec.param}={c.values[i]:g} | {c.bpp[i]:.3f} | "
                         f"{c.psnr[i]:.2f} | {c.ms_ssim[i]:.4f} | {float(msssim_db(c.ms_ssim[i])):.2f} | "
                         f"{c.enc_ms[i]:.1f} | {c.dec_ms[i]:.1f} |")
    return "\n".join(lines)


def plot_rd(curves: dict[str, Curve], path: Path, title: str, max_bpp: float = 1.6) -> None:
    """PSNR and MS-SSIM (dB) against bpp for every codec, with the published anchors as labelled points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    for c in curves.values():
        if not c.bpp:
            continue
        style = dict(lw=2.4, color="black", marker="o", zorder=5) if c.codec.name == SPLAT else dict(lw=1.3, marker=".")
        ax1.plot(c.bpp, c.psnr, label=c.codec.label, **style)
        ax2.plot(c.bpp, msssim_db(c.ms_ssim), label=c.codec.label, **style)
    for (name, pts), marker in zip(PUBLISHED_ANCHORS.items(), ("s", "D")):
        xs, ys = zip(*pts)
        ax1.plot(xs, ys, ls=":", marker=marker, ms=7, mfc="none", mew=1.5, color="tab:gray",
                 label=f"{name}, not re-run")
        for x, y in pts:
            ax1.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(4, -11), fontsize=7, color="tab:gray")
    if SPLAT not in curves or not curves[SPLAT].bpp:
        ax1.text(0.98, 0.03, "splatcodec: not available in this run", transform=ax1.transAxes,
                 ha="right", va="bottom", fontsize=8, color="tab:red")
    ax1.set(xlabel="bits per pixel", ylabel="PSNR-RGB (dB)", xlim=(0, max_bpp), title="PSNR")
    ax2.set(xlabel="bits per pixel", ylabel="MS-SSIM (dB) = -10 log10(1 - MS-SSIM)", xlim=(0, max_bpp),
            title="MS-SSIM")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.autoscale(axis="y")
    ax1.legend(fontsize=7, loc="lower right" if SPLAT in curves and curves[SPLAT].bpp else "upper left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


CSV_FIELDS = ["codec", "param", "value", "image", "width", "height", "bytes", "bpp", "psnr", "ms_ssim",
              "enc_ms", "dec_ms"]


def write_outputs(out: Path, dataset: str, curves: dict[str, Curve], rows: list[dict[str, Any]]) -> None:
    """JSON per codec, per-image and summary CSVs. These describe this run only: JSON left by an earlier
    run (other codecs or images) is removed, since the cache can rebuild it cheaply."""
    (out / "json").mkdir(parents=True, exist_ok=True)
    for stale in (out / "json").glob("*.json"):
        stale.unlink()
    for name, c in curves.items():
        if c.bpp:
            (out / "json" / f"{name}.json").write_text(json.dumps(c.to_compressai(dataset), indent=2))
    with open(out / "per_image.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in sorted(rows, key=lambda r: (r["codec"], float(r["value"]), r["image"])):
            w.writerow(r)
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["codec", "label", "param", "value", "bpp", "psnr_rgb", "ms_ssim_rgb", "enc_ms_median",
                    "dec_ms_median", "n_images"])
        for c in curves.values():
            for i in range(len(c.bpp)):
                w.writerow([c.codec.name, c.codec.label, c.codec.param, c.values[i], f"{c.bpp[i]:.5f}",
                            f"{c.psnr[i]:.4f}", f"{c.ms_ssim[i]:.6f}", f"{c.enc_ms[i]:.3f}", f"{c.dec_ms[i]:.3f}",
                            c.n_images])

