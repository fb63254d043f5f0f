"""Dataset-scale encoding throughput: a serial ``encode`` loop, ``encode_batch`` and ``encode-dataset``'s
engines on the same photos, Ray's start-up cost, and a projection to DataComp scale.

    python -m benchmarks.datasets            # 200 Flickr8k photos at 224x224 in 4 shards, 400 Gaussians
    python -m benchmarks.datasets --quick    # smoke run: 8 photos at 64x64, 40 Gaussians, effort 1

Every figure is printed with the 1-minute load average before and after it: on a shared machine the
numbers are only comparable within one run. The engines run the real command line in a subprocess
(so their figures include process start-up); Ray runs inside a loopback-only network namespace
(``unshare -n``) when one can be made, else it is skipped (``--no-ray`` skips it always).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from .common import FLICKR_DIR, KODAK_DIR, REPO_ROOT, list_images, machine_description

#: The paper's fitting cost for 12.8M DataComp images (GPU-hours), quoted for comparison.
PAPER_GPU_HOURS = 25.6
DATASET_IMAGES = 12_800_000


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def square(path: Path, size: int) -> np.ndarray:
    """Centre square crop resized to ``size`` x ``size`` (as CLIP-style preprocessing does)."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        side = min(im.size)
        left, top = (im.width - side) // 2, (im.height - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
        return np.asarray(im)


def cpu_seconds() -> float:
    """CPU time of this process and its waited-for children (the engines' workers are children of the
    CLI process we wait for; Ray's workers are not, so Ray rows have no CPU figure)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def measure(label: str, count: int, run: Callable[[], Any]) -> dict[str, Any]:
    """Runs ``run`` once; wall time, CPU time per image (less sensitive than wall time to other load
    on a shared machine) and the 1-minute load average before and after."""
    before, cpu = load1(), cpu_seconds()
    start = time.perf_counter()
    extra = run() or {}
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu
    row = {"label": label, "images": count, "seconds": round(seconds, 2),
           "images_per_second": round(count / seconds, 3), "cpu_seconds_per_image": round(cpu / count, 3),
           "load_before": before, "load_after": load1(), **extra}
    print(f"  {label}: {count} images in {seconds:.1f} s = {count / seconds:.3f} images/s, "
          f"{cpu / count:.2f} CPU s/image (load {before} -> {row['load_after']})", flush=True)
    return row


def write_shards(folder: Path, images: list[np.ndarray], names: list[str], shards: int) -> None:
    folder.mkdir(parents=True)
    per = -(-len(images) // shards)
    for s in range(shards):
        with tarfile.open(folder / f"{s:08d}.tar", "w") as tf:
            for i in range(s * per, min((s + 1) * per, len(images))):
                buf = io.BytesIO()
                Image.fromarray(images[i]).save(buf, "JPEG", quality=95)
                key = f"{s:04d}{i:05d}"
                for ext, data in (("jpg", buf.getvalue()), ("txt", names[i].encode()),
                                  ("json", json.dumps({"key": key}).encode())):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))


def private_network() -> str | None:
    """Why Ray cannot be isolated from the network here (None: it can, with ``unshare -n``)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare/ip not installed"
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    return None if probe.returncode == 0 else probe.stderr.strip() or "unshare -n failed"


def run_cli(shards: Path, out: Path, args: list[str], isolate: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "splatcodec.cli", "encode-dataset", str(shards), str(out), "--quiet", *args]
    if isolate:
        command = ["unshare", "-n", "sh", "-c", "ip link set lo up && exec " + " ".join(command)]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), RAY_USAGE_STATS_ENABLED="0")
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"encode-dataset failed ({done.returncode}):\n{done.stderr[-3000:]}")
    summary = json.loads((out / "_summary.json").read_text())["this_run"]
    return {"inside_seconds": summary["seconds"], "startup_seconds": summary["startup_seconds"],
            "failed": summary["failed"], "mean_bpp": round(summary["mean_bpp"], 3),
            "mean_psnr": round(summary["mean_psnr"], 2)}


def compare(label: str, images: list[np.ndarray], options: dict[str, Any], cores: int,
            single: bool = False) -> list[dict[str, Any]]:
    """Serial loop of ``encode`` (default threads: all cores for each image; what a loop does) vs
    ``encode_batch``; with ``single`` also the loop with one thread per encode (the per-core rate).

    The images go in chunks of ``2 * cores`` and the methods take turns per chunk, first one first
    and then the other (ABBA), so a change of load on a shared machine hits them alike.
    """
    import splatcodec

    methods: dict[str, Callable[[list[np.ndarray]], list[bytes]]] = {
        "serial encode loop": lambda ims: [splatcodec.encode(im, **options) for im in ims]}
    if single:
        methods["serial encode loop, threads=1"] = lambda ims: [splatcodec.encode(im, threads=1, **options)
                                                               for im in ims]
    methods["encode_batch"] = lambda ims: splatcodec.encode_batch(ims, **options)
    totals = {name: {"seconds": 0.0, "cpu": 0.0, "loads": [], "bytes": []} for name in methods}
    step = 2 * cores
    for k, first in enumerate(range(0, len(images), step)):
        chunk = images[first:first + step]
        for name in (list(methods) if k % 2 == 0 else list(methods)[::-1]):
            load, cpu, start = load1(), cpu_seconds(), time.perf_counter()
            out = methods[name](chunk)
            totals[name]["seconds"] += time.perf_counter() - start
            totals[name]["cpu"] += cpu_seconds() - cpu
            totals[name]["loads"].append(load)
            totals[name]["bytes"].append(out)
    rows = []
    for name, t in totals.items():
        n = len(images)
        rows.append({"label": f"{label}: {name}", "images": n, "seconds": round(t["seconds"], 2),
                     "images_per_second": round(n / t["seconds"], 3),
                     "cpu_seconds_per_image": round(t["cpu"] / n, 3),
                     "load_before": min(t["loads"]), "load_after": max(t["loads"]),
                     "bytes": sum(len(b) for out in t["bytes"] for b in out)})
        print(f"  {rows[-1]['label']}: {n} images in {t['seconds']:.1f} s = {n / t['seconds']:.3f} images/s, "
              f"{t['cpu'] / n:.2f} CPU s/image (load {min(t['loads'])}..{max(t['loads'])})", flush=True)
    assert all(t["bytes"] == totals["encode_batch"]["bytes"] for t in totals.values()), \
        "encode_batch must write the same bytes as encode"
    rows[-1]["speedup"] = round(rows[0]["seconds"] / rows[-1]["seconds"], 2)
    print(f"  -> encode_batch is {rows[-1]['speedup']}x the serial loop", flush=True)
    return rows


def projection(per_core: float) -> list[dict[str, Any]]:
    rows = []
    for nodes, cores in ((1, 2), (1, 64), (10, 64), (100, 64), (1000, 64)):
        hours = DATASET_IMAGES / (per_core * nodes * cores) / 3600
        rows.append({"nodes": nodes, "cores": cores, "hours": round(hours, 2)})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    p.add_argument("--images", type=int, help="photos for the 400-Gaussian runs [200; quick 8]")
    p.add_argument("--serial-images", type=int, help="photos for the serial loops and encode_batch [50; quick 8]")
    p.add_argument("--no-ray", action="store_true", help="skip the Ray engine")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    size, gaussians, big, effort = (64, 40, 80, 1) if args.quick else (224, 400, 1600, 4)
    count = args.images or (8 if args.quick else 200)
    cores = len(os.sched_getaffinity(0))
    print(f"# {machine_description()}; {cores} cores usable; load {os.getloadavg()}", flush=True)
    files = list_images(FLICKR_DIR, count)
    photos = [square(f, size) for f in files]
    options = {"num_gaussians": gaussians, "effort": effort}
    results: dict[str, Any] = {"machine": machine_description(), "cores": cores, "quick": args.quick}

    print(f"\n## encode_batch vs serial loop ({size}x{size})", flush=True)
    serial = photos[:args.serial_images or (8 if args.quick else 50)]
    results["batch"] = compare(f"{size}px {gaussians} G", serial, options, cores, single=True)
    few = photos[:max(4, count // 16)]
    results["batch"] += compare(f"{size}px {big} G", few, {"num_gaussians": big, "effort": effort}, cores)
    kodak = [np.asarray(Image.open(f).convert("RGB")) for f in list_images(KODAK_DIR, 2 if args.quick else 4)]
    if args.quick:
        kodak = [k[:96, :128] for k in kodak]
    results["batch"] += compare("Kodak quality 30", kodak, {"quality": 30, "effort": effort}, cores)

    print(f"\n## encode-dataset: {count} photos at {size}x{size} in 4 shards, {gaussians} Gaussians", flush=True)
    engines = []
    codec = ["--gaussians", str(gaussians), "-e", str(effort)]
    with tempfile.TemporaryDirectory(prefix="splatcodec-bench-") as tmp:
        shards = Path(tmp) / "in"
        write_shards(shards, photos, [f.name for f in files], 4)
        engines.append(results["batch"][0] | {"label": f"serial encode loop (first {len(serial)} photos, above)"})
        for workers in (1, 2):
            engines.append(measure(f"--engine local --workers {workers}", count, lambda w=workers: run_cli(
                shards, Path(tmp) / f"local{w}", ["--workers", str(w), "--threads", str(cores), *codec], False)))
        reason = "--no-ray" if args.no_ray else private_network()
        try:
            import ray  # noqa: F401
        except ImportError:
            reason = "ray not installed (pip install 'splatcodec[ray]')"
        if reason is None:
            engines.append(measure(f"--engine ray --ray-cpus {cores}", count, lambda: run_cli(
                shards, Path(tmp) / "ray", ["--engine", "ray", "--ray-cpus", str(cores), *codec], True)))
            print(f"  Ray start-up (ray.init of a local cluster): {engines[-1]['startup_seconds']:.1f} s", flush=True)
        else:
            print(f"  Ray engine skipped: {reason}", flush=True)
    results["engines"] = engines

    best = max(engines[1:], key=lambda e: e["images_per_second"])
    per_core = best["images_per_second"] / cores  # wall-clock rate per core of this (shared) machine
    per_core_cpu = 1 / best["cpu_seconds_per_image"] if best["cpu_seconds_per_image"] > 0 else per_core
    results["projection"] = {"engine": best["label"], "per_core_images_per_second": round(per_core, 4),
                             "per_cpu_second_images": round(per_core_cpu, 4), "images": DATASET_IMAGES,
                             "core_hours_wall": round(DATASET_IMAGES / per_core / 3600),
                             "core_hours_cpu": round(DATASET_IMAGES / per_core_cpu / 3600),
                             "paper_gpu_hours": PAPER_GPU_HOURS, "rows": projection(per_core),
                             "rows_cpu": projection(per_core_cpu)}
    proj = results["projection"]
    print(f"\n## projection: {DATASET_IMAGES:,} images with {best['label']} (linear scaling over nodes assumed; "
          f"paper: {PAPER_GPU_HOURS} GPU-hours)")
    print(f"  wall rate here {per_core:.3f} images/s per core -> {proj['core_hours_wall']:,} core-hours; "
          f"CPU time {best['cpu_seconds_per_image']:.2f} s/image -> {proj['core_hours_cpu']:,} core-hours")
    for row, row_cpu in zip(proj["rows"], proj["rows_cpu"]):
        print(f"  {row['nodes']:>5} node(s) x {row['cores']} cores: {row['hours']:,} h at the wall rate, "
              f"{row_cpu['hours']:,} h at the CPU-time rate")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
