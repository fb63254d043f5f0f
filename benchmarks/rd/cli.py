"""The rate-distortion benchmark's command line: ``python -m benchmarks.rd [DATASET] [options]``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from ..common import KODAK_DIR, RESULTS_DIR, list_images, machine_description
from .codecs import SPLAT, Codec, SplatCodec, reference_codecs
from .report import (bd_metrics, clip_curve, format_bd_table, format_per_image_table, format_summary_table,
                     per_image_gains, plot_rd, summarize, write_outputs)
from .run import METRICS_NOTE, Task, codec_cache_dir, file_sha256, measure, read_cache, value_tag

BD_ANCHOR_SANITY = "jpeg-420"


def _parse_values(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v.strip())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.rd",
                                description="Rate-distortion benchmark: splatcodec against Pillow's JPEG, WebP, AVIF and JPEG XL.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", nargs="?", type=Path, default=KODAK_DIR,
                   help="folder of images (default: ../shared/data/kodak relative to the repo root)")
    p.add_argument("--out", type=Path, help="output folder (default: benchmarks/results/<dataset name>)")
    p.add_argument("--codecs", help="comma-separated subset of: " + ", ".join(
        [c.name for c in reference_codecs()] + [SPLAT]) + " (default: all available)")
    p.add_argument("--values", action="append", default=[], metavar="CODEC=V1,V2,...",
                   help="override a codec's sweep, e.g. --values jpeg-420=10,50,90 (repeatable)")
    p.add_argument("--limit", type=int, help="use only the first N images")
    p.add_argument("--jobs", "-j", type=int, default=1,
                   help="worker processes (default 1; >1 makes timings contend for cores)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timing repeats per image (median); splatcodec encodes once (default 3)")
    p.add_argument("--splat-param", default="quality", choices=["quality", "target_bpp", "num_gaussians"],
                   help="splatcodec.encode keyword swept (default quality)")
    p.add_argument("--splat-kwargs", default="{}", help="JSON of extra splatcodec.encode keywords")
    p.add_argument("--splat-source", metavar="DIGEST",
                   help="use cached splatcodec results recorded under this source digest (printed at the start "
                        "of a run) instead of hashing the current tree")
    p.add_argument("--cached-only", action="store_true",
                   help="measure nothing; summarise what the cache already holds")
    p.add_argument("--bd-test", default=SPLAT, help="codec whose BD-rates are tabulated (default splatcodec)")
    p.add_argument("--bd-bpp", type=_parse_values, metavar="LO,HI",
                   help="use only rate points within this bpp range for BD metrics (default: all points)")
    p.add_argument("--plot", type=Path, help="RD plot path (default: <out>/rd.png)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return p


def select_codecs(args: argparse.Namespace) -> tuple[list[Codec], list[str]]:
    """Available codecs with any sweep overrides applied, and messages about the unavailable ones."""
    splat = SplatCodec(param=args.splat_param, kwargs=json.loads(args.splat_kwargs), source_digest=args.splat_source)
    if args.splat_param == "target_bpp":
        splat.default_values = (0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5)
    elif args.splat_param == "num_gaussians":
        splat.default_values = (1000, 2500, 5000, 10000, 20000, 40000)
    all_codecs = [*reference_codecs(), splat]
    names = [c.name for c in all_codecs]
    wanted = [s.strip() for s in args.codecs.split(",")] if args.codecs else names
    unknown = set(wanted) - set(names)
    if unknown:
        raise SystemExit(f"unknown codec(s): {', '.join(sorted(unknown))}; known: {', '.join(names)}")
    overrides = {}
    for spec in args.values:
        name, _, vals = spec.partition("=")
        if name not in names or not vals:
            raise SystemExit(f"bad --values {spec!r}; expected CODEC=V1,V2,...")
        overrides[name] = _parse_values(vals)
    chosen, messages = [], []
    for c in all_codecs:
        if c.name not in wanted:
            continue
        ok, why = c.available()
        if not ok:
            messages.append(f"{c.name}: UNAVAILABLE - {why}; skipped")
            continue
        if c.name in overrides:
            c.default_values = overrides[c.name]
        chosen.append(c)
    return chosen, messages


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns a process exit status (1 if any measurement failed)."""
    args = build_parser().parse_args(argv)
    dataset = args.dataset.resolve()
    images = list_images(dataset, args.limit)
    out = (args.out or RESULTS_DIR / dataset.name).resolve()
    codecs, messages = select_codecs(args)
    print(f"dataset: {dataset} ({len(images)} images); output: {out}")
    print(f"machine: {machine_description()}")
    if METRICS_NOTE:
        print(f"note: {METRICS_NOTE}")
    for c in codecs:
        print(f"  {c.name}: {c.param} in {', '.join(f'{v:g}' for v in c.default_values)}  [{c.version()}]")
    for m in messages:
        print(f"  {m}")
    if args.jobs > 1:
        print(f"note: --jobs {args.jobs}: encode/decode times are measured under contention")
    if not codecs:
        print("no codec available")
        return 1

    shas = {p: file_sha256(p) for p in images}
    tasks, cached_rows = [], []
    for c in codecs:
        cdir = codec_cache_dir(out, c)
        for v in c.default_values:
            for p in images:
                cf_path = cdir / value_tag(v) / f"{p.stem}.json"
                row = read_cache(cf_path, shas[p])
                if row is not None:
                    cached_rows.append(row)
                else:
                    tasks.append(Task(c, float(v), str(p), shas[p], str(cf_path), args.repeats))
    if args.cached_only:
        print(f"{len(cached_rows)} measurements cached, {len(tasks)} missing (--cached-only: not run)")
        tasks = []
    else:
        print(f"{len(cached_rows)} measurements cached, {len(tasks)} to run")
    new_rows, errors = measure(tasks, args.jobs, args.quiet)
    rows = cached_rows + new_rows
    curves = summarize(codecs, rows, len(images))

    write_outputs(out, dataset.name, curves, rows)
    print()
    print(format_summary_table(curves))
    for c in curves.values():
        if c.incomplete:
            print(f"warning: {c.codec.name} points with missing images left out: {c.incomplete}")

    bd_curves = dict(curves)
    if args.bd_bpp:
        lo, hi = args.bd_bpp
        bd_curves = {k: clip_curve(v, lo, hi) for k, v in curves.items()}
        print(f"\nBD metrics use only rate points within {lo:g}-{hi:g} bpp")
    bd_curves = {k: v for k, v in bd_curves.items() if len(v.bpp) >= 2}
    print()
    if args.bd_test in bd_curves:
        t = bd_curves[args.bd_test]
        rows_bd = [bd_metrics(a, t) for k, a in bd_curves.items() if k != args.bd_test]
        print(format_bd_table(f"BD metrics of {t.codec.label} against each codec (negative BD-rate = "
                              f"{t.codec.label} smaller at equal quality; pchip):", rows_bd, bd_curves))
    else:
        why = next((m for m in messages if m.startswith(args.bd_test + ":")), "no curve in this run")
        print(f"BD table for {args.bd_test}: NOT COMPUTED - {why}")
    if args.bd_test in curves and BD_ANCHOR_SANITY in curves and args.bd_test != BD_ANCHOR_SANITY:
        gains = per_image_gains(rows, args.bd_test, BD_ANCHOR_SANITY)
        print()
        print(format_per_image_table(
            f"Per image: {curves[args.bd_test].codec.label} PSNR minus {curves[BD_ANCHOR_SANITY].codec.label} "
            f"PSNR at the same bpp (interpolated in log bpp; images outside the anchor's sweep left out):",
            gains, curves[args.bd_test].codec.param))
    if BD_ANCHOR_SANITY in bd_curves and args.bd_test != BD_ANCHOR_SANITY:
        anchor = bd_curves[BD_ANCHOR_SANITY]
        rows_bd = [bd_metrics(anchor, c) for k, c in bd_curves.items() if k != BD_ANCHOR_SANITY]
        print()
        print(format_bd_table(f"Sanity check: each codec against {anchor.codec.label} (negative BD-rate = "
                              f"smaller than {anchor.codec.label} at equal quality; pchip):", rows_bd, bd_curves,
                              key="test"))

    if not args.no_plot:
        plot_path = (args.plot or out / "rd.png").resolve()
        plot_rd(curves, plot_path, f"{dataset.name}: {len(images)} images")
        print(f"\nplot: {plot_path}")
    print(f"json: {out / 'json'}; csv: {out / 'per_image.csv'}, {out / 'summary.csv'}")
    if errors:
        print(f"\n{len(errors)} measurement(s) FAILED (not cached, will be retried):", file=sys.stderr)
        for e in errors[:20]:
            print(f"  {e}", file=sys.stderr)
        return 1
    return 0


