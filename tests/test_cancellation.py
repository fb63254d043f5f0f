"""Ctrl-C, SIGTERM and CancelToken: every long native call stops promptly, never aborts the process,
and leaves no thread inside the core and no temporary file behind.

Signals are real (sent to subprocesses at seeded random moments); every wait is bounded.
"""
from __future__ import annotations

import _thread
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import splatcodec as sc
from splatcodec.codec import api

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
#: How long a stopped process may take to exit after its signal (the machine may be busy).
EXIT_SECONDS = 30.0


def _heavy_splats(n: int = 3000, size: int = 2048) -> sc.Splats:
    """Image-sized Gaussians: a render of several seconds (when the limits are lifted)."""
    rng = np.random.default_rng(1)
    return sc.Splats(rng.uniform(0, size, (n, 2)), np.tile([size / 3, 0.0, size / 3], (n, 1)),
                     np.full((n, 3), 0.001), size, size)


def _start(script: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", script, *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


def _signal_and_wait(proc: subprocess.Popen, signum: int, delay: float) -> tuple[int, str, str]:
    time.sleep(delay)
    proc.send_signal(signum)
    try:
        out, err = proc.communicate(timeout=EXIT_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"no exit within {EXIT_SECONDS} s of signal {signum}: {err[-2000:]}")
    return proc.returncode, out, err


CLI = """
from splatcodec.cli import main
print("ready", flush=True)
main()  # arguments from sys.argv, as the installed `splatcodec` script runs it
"""


@pytest.fixture(scope="module")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "in.png"
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cli_encode_stops_cleanly_on_signals_at_random_moments(image_file: Path, tmp_path: Path,
                                                                signum: int, code: int) -> None:
    rng = random.Random(signum)
    for trial in range(5):
        out = tmp_path / f"out{trial}.gsplat"
        proc = _start(CLI, "encode", str(image_file), "-e", "2", "--gaussians", "300", "-o", str(out), "--quiet")
        returncode, _, err = _signal_and_wait(proc, signum, rng.uniform(0.05, 2.5))
        assert "terminate called" not in err and "Traceback" not in err, err
        assert returncode in (code, 0), (trial, returncode, err)  # 0: it finished before the signal
        if returncode == code:
            assert not out.exists()
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".splatcodec-")]
        assert not leftovers, (trial, leftovers)


def test_cli_decode_sigterm_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A big decode spends its time rendering, encoding the PNG and writing it: SIGTERM at any of these
    moments removes the temporary output."""
    splats = sc.Splats([[2048.0, 1024.0]], [[600.0, 0.0, 600.0]], [[0.5, 0.2, 0.9]], 4096, 2048)
    src = tmp_path / "big.gsplat"
    src.write_bytes(api.encode_splats(splats, levels=1))
    rng = random.Random(7)
    for trial in range(5):
        out = tmp_path / "out" / f"x{trial}.png"
        out.parent.mkdir(exist_ok=True)
        proc = _start(CLI, "decode", str(src), "-o", str(out))
        returncode, _, err = _signal_and_wait(proc, signal.SIGTERM, rng.uniform(0.0, 2.0))
        assert returncode in (143, 0), (trial, returncode, err)
        assert "Traceback" not in err, err
        assert not [p for p in out.parent.iterdir() if p.name.startswith(".splatcodec-")], trial


def test_sigint_during_library_encode_stops_the_native_work() -> None:
    """KeyboardInterrupt reaches the caller only once the fit has stopped: no thread keeps burning CPU."""
    script = """
import threading, time
import numpy as np, splatcodec as sc
image = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
print("ready", flush=True)
try:
    while True:  # never finishes on its own, however fast the machine: the signal always lands in a fit
        sc.encode(image, num_gaussians=400, effort=9)
except KeyboardInterrupt:
    start = time.process_time()
    time.sleep(1.0)
    print("cpu", time.process_time() - start, "threads", threading.active_count())
"""
    rng = random.Random(11)
    for _ in range(3):
        proc = _start(script)
        returncode, out, err = _signal_and_wait(proc, signal.SIGINT, rng.uniform(0.1, 2.0))
        assert returncode == 0, err
        words = out.split()
        assert words[0] == "cpu", out
        assert float(words[1]) < 0.3 and words[3] == "1", out


def test_ctrl_c_stops_a_long_render() -> None:
    splats = _heavy_splats()
    timer = threading.Timer(0.3, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        sc.render(splats, max_pixels=None)
    assert time.perf_counter() - start < 5.0
    assert threading.active_count() <= 2  # the timer's thread may still be finishing


def test_cancel_token_stops_a_render_in_another_thread() -> None:
    splats = _heavy_splats()
    token = sc.CancelToken()
    outcome: dict = {}

    def work() -> None:
        with token:
            try:
                sc.render_float(splats, max_pixels=None)
            except sc.CancelledError as exc:
                outcome["error"] = exc

    worker = threading.Thread(target=work)
    start = time.perf_counter()
    worker.start()
    time.sleep(0.3)
    token.cancel()
    worker.join(EXIT_SECONDS)
    assert not worker.is_alive() and isinstance(outcome.get("error"), sc.CancelledError)
    assert time.perf_counter() - start < 5.0


def test_threads_match_serial_bytes_while_one_is_cancelled() -> None:
    """Concurrent encodes/decodes give the serial bytes; cancelling one thread's token stops only it."""
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(3)]
    options = dict(quality=40, effort=1, threads=1)
    serial = [api.encode(image, **options) for image in images]
    serial_pixels = [api.decode(data) for data in serial]
    results: dict = {}
    token = sc.CancelToken()

    def encode_decode(k: int) -> None:
        data = api.encode(images[k], **options)
        results[k] = (data, api.decode(data))

    def cancelled() -> None:
        with token:
            try:
                sc.fit(images[0], 500, 10_000_000, threads=1)
            except sc.CancelledError:
                results["cancelled"] = True

    victim = threading.Thread(target=cancelled)
    victim.start()
    workers = [threading.Thread(target=encode_decode, args=(k,)) for k in range(3)]
    for w in workers:
        w.start()
    time.sleep(0.5)
    token.cancel()
    for w in [victim, *workers]:
        w.join(120)
        assert not w.is_alive()
    assert results.get("cancelled") is True
    for k in range(3):
        assert results[k][0] == serial[k]
        np.testing.assert_array_equal(results[k][1], serial_pixels[k])
