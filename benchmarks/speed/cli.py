"""The speed benchmark's command line: ``python -m benchmarks.speed [SECTION ...] [options]``."""
from __future__ import annotations

import argparse
import datetime
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from ..common import RESULTS_DIR
from .batch import section_batch
from .codecs import section_codecs
from .decode import section_decode
from .fit import section_fit
from .machine import machine_info, machine_line
from .scaling import section_scaling
from .settings import SECTIONS, Settings
from .util import json_safe

DEFAULT_RD_RESULTS = RESULTS_DIR / "kodak"
DEFAULT_OUT = RESULTS_DIR / "speed"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=(
                                "Speed of splatcodec against Pillow, PyTorch and the GaussianVision paper, each baseline "
                                "measured in the same run (see the benchmarks.speed docstring)."),
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="sections: " + ", ".join(SECTIONS))
    p.add_argument("sections", nargs="*", metavar="SECTION", help=f"any of {', '.join(SECTIONS)} (default: all)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and iteration counts (smoke test)")
    p.add_argument("--json", type=Path, help="write every figure to this JSON file")
    p.add_argument("--threads", type=int, default=0, help="threads for splatcodec and PyTorch (0: all cores)")
    p.add_argument("--skip-torch", action="store_true", help="leave out the PyTorch baseline")
    p.add_argument("--rd-results", type=Path, default=DEFAULT_RD_RESULTS,
                   help="benchmarks.rd output folder for the codecs section (default benchmarks/results/kodak)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="cache of encoded files (default benchmarks/results/speed)")
    g = p.add_argument_group("decode")
    g.add_argument("--images", help="comma-separated Kodak names or paths (default kodim01,kodim15,kodim23)")
    g.add_argument("--quality", type=float, help="splatcodec quality (default 60)")
    g.add_argument("--effort", type=int, help="splatcodec effort (default 4)")
    g.add_argument("--repeats", type=int, help="timed repeats, median (default 7)")
    g.add_argument("--codecs", help="benchmarks.rd codec names to compare with (default jpeg-420,webp,avif)")
    g.add_argument("--reencode", action="store_true", help="ignore the cached .gsplat files")
    g = p.add_argument_group("batch")
    g.add_argument("--batch-count", type=int, help="images in the CPU batch (default 8)")
    g.add_argument("--batch-iterations", type=int, help="iterations (default 2000)")
    g.add_argument("--cuda-count", type=int, help="images in the GPU batch (default 256)")
    g.add_argument("--cuda-streams", type=int, help="images fitted concurrently on the GPU (default: the module's)")
    g = p.add_argument_group("scaling")
    g.add_argument("--scaling-iterations", type=int, help="iterations timed per row (default 100)")
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    s = Settings.quick(args.threads, args.skip_torch) if args.quick else Settings(args.threads, args.skip_torch)
    for attr, value in (("quality", args.quality), ("effort", args.effort), ("repeats", args.repeats),
                        ("batch_count", args.batch_count), ("batch_iterations", args.batch_iterations),
                        ("cuda_count", args.cuda_count), ("cuda_streams", args.cuda_streams),
                        ("scaling_iterations", args.scaling_iterations)):
        if value is not None:
            setattr(s, attr, value)
    if args.images:
        s.decode_images = tuple(args.images.split(","))
    if args.codecs:
        s.decode_codecs = tuple(args.codecs.split(","))
    s.reencode = args.reencode
    return s


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    chosen = [s for s in SECTIONS if s in args.sections] if args.sections else list(SECTIONS)
    settings = settings_from(args)
    machine = machine_info(settings.threads)
    report: dict[str, Any] = {"machine": machine, "quick": args.quick,
                              "date": datetime.datetime.now().isoformat(timespec="seconds"),
                              "settings": json_safe(asdict(settings)), "sections": {}, "section_seconds": {}}
    titles = {"codecs": "Encode and decode time at equal bpp (from benchmarks.rd's results)",
              "decode": "Decode time against Pillow at about the same file size",
              "batch": "Batched fitting throughput (GaussianVision setting)",
              "scaling": "Scaling of fitting and rendering cost",
              "fit": "Fitting core against the PyTorch baseline (benchmarks.fit_speed)"}
    if args.quick:
        print("(--quick: smoke-test sizes; these numbers say nothing about speed)\n")
    for name in chosen:
        print(f"## {titles[name]}\n\n{machine_line(machine)}")
        start = time.perf_counter()
        if name == "codecs":
            result = section_codecs(settings, args.rd_results)
        elif name == "decode":
            result = section_decode(settings, args.out)
        elif name == "batch":
            result = section_batch(settings)
        elif name == "scaling":
            result = section_scaling(settings)
        else:
            result = section_fit(settings, args.out)
        report["sections"][name] = json_safe(result)
        report["section_seconds"][name] = time.perf_counter() - start
        print(f"\n({name}: {report['section_seconds'][name]:.1f} s)\n", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(json_safe(report), indent=2, allow_nan=False))
        print(f"figures written to {args.json}")
    return report


if __name__ == "__main__":
    main()
