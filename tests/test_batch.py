"""encode_batch / iter_encode: same bytes as serial encode, per-image errors, threads, Ctrl-C."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import splatcodec
from splatcodec.codec.batch import BatchCancelled, EncodeResult, encode_batch, iter_encode, plan_threads
from splatcodec.errors import InvalidInputError

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "kodak"
OPTS = dict(num_gaussians=40, effort=1)


def _crops() -> list[np.ndarray]:
    if not KODAK.is_dir():
        pytest.skip(f"{KODAK} not found (real data in ../shared/data)")
    out = []
    for i, (name, box) in enumerate([("kodim23.png", (300, 100, 340, 140)), ("kodim05.png", (0, 0, 48, 32)),
                                     ("kodim15.png", (200, 200, 236, 244)), ("kodim01.png", (500, 300, 540, 340))]):
        im = Image.open(KODAK / name).crop(box)
        out.append(np.asarray(im.convert("L") if i == 2 else im.convert("RGB")))
    return out


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    return _crops()


@pytest.fixture(scope="module")
def serial(crops) -> list[bytes]:
    return [splatcodec.encode(c, **OPTS) for c in crops]


def test_same_bytes_as_serial_encode(crops, serial):
    assert splatcodec.encode_batch(crops, threads=2, **OPTS) == serial
    # fewer images than threads: each image's fits get several threads, still the same bytes
    assert encode_batch(crops[:2], threads=4, **OPTS) == serial[:2]
    # a generator (length unknown) and one thread
    assert encode_batch((c for c in crops), threads=1, **OPTS) == serial


def test_stats_and_results(crops, serial):
    pairs = encode_batch(crops, threads=2, return_stats=True, **OPTS)
    assert [d for d, _ in pairs] == serial
    for (data, stats), crop in zip(pairs, crops):
        assert stats.bytes == len(data) and stats.num_gaussians == 40
        assert stats.bpp == pytest.approx(8 * len(data) / (crop.shape[0] * crop.shape[1]))
    results = list(iter_encode(crops, threads=2, **OPTS))
    assert [r.index for r in results] == [0, 1, 2, 3] and all(r.ok for r in results)
    assert [r.data for r in results] == serial


def test_a_failing_image_does_not_lose_the_others(crops, serial):
    bad = np.zeros((8, 8, 4), np.uint8)  # 4 channels: refused by encode
    images = [crops[0], bad, crops[1], crops[2]]
    results = encode_batch(images, threads=2, errors="return", **OPTS)
    assert [type(r) for r in results] == [EncodeResult] * 4
    assert not results[1].ok and isinstance(results[1].error, InvalidInputError) and results[1].data is None
    assert [r.data for r in results if r.ok] == serial[:3]
    with pytest.raises(InvalidInputError) as info:
        encode_batch(images, threads=2, **OPTS)
    assert str(info.value) == str(results[1].error)  # the failing image's own error, not a cancellation
    if sys.version_info >= (3, 11):  # exception notes (add_note) exist from Python 3.11
        assert info.value.__notes__ == ["(image 1 of the batch)"]
    else:
        assert not hasattr(info.value, "__notes__")
    assert threading.active_count() == 1  # the failure stopped and joined the workers


def test_early_close_joins_workers(crops):
    gen = iter_encode(crops * 3, threads=2, **OPTS)
    first = next(gen)
    assert first.ok
    gen.close()
    assert threading.active_count() == 1


def test_bad_arguments(crops):
    with pytest.raises(InvalidInputError, match="errors"):
        encode_batch(crops, errors="ignore")
    with pytest.raises(InvalidInputError, match="progress"):
        encode_batch(crops, progress=print)
    with pytest.raises(InvalidInputError, match="threads"):
        encode_batch(crops, threads=-1)
    assert encode_batch([], **OPTS) == []


def test_plan_threads():
    assert plan_threads(4, 100) == (4, 1)
    assert plan_threads(4, 2) == (2, 2)
    assert plan_threads(4, 1) == (1, 4)
    assert plan_threads(3, None) == (3, 1)
    assert plan_threads(4, 0) == (1, 4)
    assert issubclass(BatchCancelled, splatcodec.SplatcodecError)


def test_ctrl_c_stops_promptly_and_leaves_no_workers(tmp_path):
    """SIGINT during a long batch: KeyboardInterrupt within a second or two, no thread left, exit 0."""
    if not KODAK.is_dir():
        pytest.skip(f"{KODAK} not found")
    script = tmp_path / "batch_sigint.py"
    script.write_text(textwrap.dedent(f"""
        import sys, threading, time
        import numpy as np
        from PIL import Image
        import splatcodec
        im = np.asarray(Image.open({str(KODAK / 'kodim23.png')!r}).convert("RGB"))[:256, :256]
        print("ready", flush=True)
        try:
            splatcodec.encode_batch([im] * 8, num_gaussians=3000, effort=9, threads=2)
        except KeyboardInterrupt:
            print("interrupted", threading.active_count(), flush=True)
            sys.exit(0)
        print("finished", flush=True)
        sys.exit(3)
    """))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.5)  # into the fits
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    elapsed = time.perf_counter() - sent
    assert proc.returncode == 0, out
    assert out.split() == ["interrupted", "1"]  # only the main thread is left
    assert elapsed < 10, f"took {elapsed:.1f} s to stop (the batch takes minutes)"
