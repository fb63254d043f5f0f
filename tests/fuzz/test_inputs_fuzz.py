"""Replays tests/fuzz/corpus_inputs and runs a seeded mutation fuzz of the CLI and the image reader
(the target of fuzz_inputs.py; no atheris needed). Every input must end in our error types or a
CLI exit status of 0, 1 or 2, within a few seconds."""
from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inputs_target import check

CORPUS = sorted((Path(__file__).parent / "corpus_inputs").glob("*.bin"))


def _image_seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    seeds = []
    for image, fmt, kw in [
        (rgb, "PNG", {}), (rgb.convert("RGBA"), "PNG", {}), (rgb.convert("P"), "GIF", {}),
        (rgb, "JPEG", {"quality": 90}), (rgb, "BMP", {}), (rgb, "TIFF", {}), (rgb.convert("L"), "PNG", {}),
        (Image.fromarray(rng.integers(0, 65536, (8, 8), dtype=np.uint16)), "PNG", {}),
        (rgb.convert("LA"), "PNG", {}), (rgb.convert("CMYK"), "TIFF", {}),
    ]:
        buf = io.BytesIO()
        image.save(buf, format=fmt, **kw)
        seeds.append(buf.getvalue())
    return seeds


def _gsplat_seed() -> bytes:
    import splatcodec as sc
    from splatcodec.codec import api

    return api.encode_splats(sc.Splats([[4.0, 3.0], [1.0, 6.0]], [[2.0, 0.3, 1.5], [1.0, 0.0, 1.0]],
                                       [[0.5, 0.2, 0.1], [0.1, 0.9, 0.3]], 8, 8))


def _timed(data: bytes) -> str:
    start = time.perf_counter()
    outcome = check(data)
    assert time.perf_counter() - start < 10, f"{time.perf_counter() - start:.1f} s for one input"
    return outcome


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_entry(path: Path) -> None:
    _timed(path.read_bytes())


def test_seeds_are_accepted() -> None:
    for seed in _image_seeds():
        assert _timed(b"\x00" + seed) == "image"
        assert _timed(b"\x02" + seed) == "stdin image"
    assert _timed(b"\x01" + _gsplat_seed()) == "cli 0,0"


def test_random_mutations_of_seeds() -> None:
    """~600 seeded byte edits, truncations and splices of the seeds, in all three modes."""
    rng = np.random.default_rng(12)
    seeds = [(m, s) for s in _image_seeds() for m in (0, 2)] + [(1, _gsplat_seed())]
    outcomes: dict[str, int] = {}
    for _ in range(600):
        mode, seed = seeds[rng.integers(len(seeds))]
        data = bytearray(seed)
        kind = rng.integers(4)
        if kind == 0:
            for _ in range(rng.integers(1, 8)):
                data[rng.integers(len(data))] = rng.integers(256)
        elif kind == 1:
            data = data[:rng.integers(len(data))]
        elif kind == 2:
            other = seeds[rng.integers(len(seeds))][1]
            cut = rng.integers(len(data))
            data = data[:cut] + other[rng.integers(len(other)):]
        else:  # a 32-bit field set to an extreme
            at = rng.integers(max(1, len(data) - 4))
            data[at:at + 4] = int(rng.choice([0, 0xFFFFFFFF, 0x7FFFFFFF, 1 << 16])).to_bytes(4, "little")
        outcome = _timed(bytes([mode]) + bytes(data))
        outcomes[outcome.split()[0]] = outcomes.get(outcome.split()[0], 0) + 1
    assert len(outcomes) >= 2, outcomes  # the mutations reach both acceptance and refusal
