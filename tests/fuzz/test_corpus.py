"""Replays the fuzz corpus and runs a short seeded mutation fuzz of the decoder (no atheris needed).

Every input must decode or raise FormatError / LimitExceededError, quickly and without big allocations.
"""
from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from crcs import refresh_crcs
from splatcodec.codec import api
from splatcodec.errors import FormatError, LimitExceededError

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.gsplat"))
LIMITS = dict(max_pixels=1 << 16, gaussian_limit=1 << 16)


def _decode_all(data: bytes) -> str:
    try:
        splats = api.decode_splats(data, **LIMITS)
        api.info(data, coded_bits=True, gaussian_limit=LIMITS["gaussian_limit"])
        api.decode(data, **LIMITS)
        return f"ok:{splats.num_gaussians}"
    except FormatError:
        return "format"
    except LimitExceededError:
        return "limit"



def test_corpus_is_present():
    assert len(CORPUS) > 100
    assert any(p.name.startswith("seed-") for p in CORPUS)


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_entry(path: Path):
    data = path.read_bytes()
    tracemalloc.start()
    start = time.perf_counter()
    try:
        outcome = _decode_all(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5
    assert peak < 64 << 20, f"{path.name} made the decoder allocate {peak >> 20} MiB"
    if path.stem.startswith("seed-"):
        assert outcome.startswith("ok")
    elif "-lie-" in path.stem or "-trunc" in path.stem or "len-huge" in path.stem:
        assert outcome in ("format", "limit")


def test_random_mutations_of_seeds():
    """~1500 random byte edits, splices and truncations of the seeds (fixed seed: reproducible)."""
    seeds = [p.read_bytes() for p in CORPUS if p.stem.startswith("seed-")]
    rng = np.random.default_rng(2024)
    deadline = time.perf_counter() + 20
    runs = 0
    while runs < 1500 and time.perf_counter() < deadline:
        data = bytearray(seeds[int(rng.integers(len(seeds)))])
        for _ in range(int(rng.integers(1, 4))):
            op = int(rng.integers(4))
            if op == 0 and data:
                data[int(rng.integers(len(data)))] = int(rng.integers(256))
            elif op == 1 and data:
                del data[int(rng.integers(len(data))):]
            elif op == 2:
                pos = int(rng.integers(len(data) + 1))
                data[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
            elif op == 3 and len(data) > 8:
                a, b = sorted(rng.integers(0, len(data), 2))
                data[a:b] = data[a:b][::-1]
        _decode_all(bytes(data))  # must not raise anything else
        _decode_all(refresh_crcs(bytes(data)))  # and past the CRCs, into the section parsers
        runs += 1
    assert runs >= 200


def test_atheris_harness_imports_splatcodec_inside_the_instrumentation_block():
    """atheris instruments only modules first imported inside ``instrument_imports()``; a top-level import
    of splatcodec, or of crcs (which imports it), before that block leaves the fuzzer blind (it happened)."""
    import ast

    tree = ast.parse((Path(__file__).parent / "fuzz_decode.py").read_text())
    before = []
    for node in tree.body:
        if isinstance(node, ast.With) and "instrument_imports" in ast.unparse(node.items[0].context_expr):
            inside = [n.module for n in ast.walk(node) if isinstance(n, ast.ImportFrom)]
            assert any(m and m.startswith("splatcodec") for m in inside)
            break
        if isinstance(node, ast.Import):
            before += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            before.append(node.module or "")
    else:
        pytest.fail("fuzz_decode.py has no `with atheris.instrument_imports():` block")
    assert not [m for m in before if m.split(".")[0] in ("splatcodec", "crcs")], before
