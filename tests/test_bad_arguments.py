"""Malformed arguments end in our own exception types, before any expensive work (issue 12, item 7)."""
from __future__ import annotations

import time

import numpy as np
import pytest

import splatcodec as sc
from splatcodec.codec import api
from splatcodec.errors import InvalidInputError

IMAGE = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)


@pytest.mark.parametrize("kwargs", [
    dict(max_pixels="x"), dict(max_pixels=float("nan")), dict(bits="x"), dict(levels="2"),
    dict(fit_kwargs={"no_such_option": 1}), dict(fit_kwargs={"densify": "yes"}),
    dict(fit_kwargs={"iterations": 5}), dict(fit_kwargs="x"),
    dict(metadata={"comment": "\ud800"}), dict(metadata={"\udfff": "x"}), dict(metadata={1: "x"}),
    dict(target_psnr=1e9), dict(target_psnr=float("nan")), dict(target_bpp=1e9), dict(quality=float("nan")),
    dict(num_gaussians=2.5), dict(effort=True), dict(threads=-1), dict(seed="x"),
])
def test_encode_refuses_malformed_options_before_fitting(kwargs: dict) -> None:
    start = time.perf_counter()
    with pytest.raises(InvalidInputError):
        api.encode(IMAGE, effort=kwargs.pop("effort", 9), **kwargs)  # effort 9: a fit would take seconds
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("kwargs", [dict(target_psnr=1e9), dict(lr_scale=float("inf")), dict(init_scale="x"),
                                    dict(iterations=2**40), dict(max_pixels="x"), dict(threads=2.0)])
def test_fit_refuses_malformed_options(kwargs: dict) -> None:
    with pytest.raises(InvalidInputError):
        sc.fit(IMAGE, 10, **{"iterations": 5, **kwargs})


def test_unreachable_psnr_target_returns_the_best_attempt() -> None:
    """The docstring's promise: the best attempt, not a LimitExceededError after the first fit."""
    data, stats = api.encode(IMAGE[:8, :8], target_psnr=98.0, effort=1, return_stats=True)
    assert stats.num_gaussians <= 64 and len(stats.attempts) >= 1
    assert stats.psnr == max(p for _, _, p in stats.attempts)


def test_large_bpp_target_stays_within_the_pixel_count() -> None:
    data, stats = api.encode(IMAGE[:8, :8], target_bpp=60.0, effort=1, return_stats=True)
    assert max(n for n, _, _ in stats.attempts) <= 64


@pytest.mark.parametrize("bad", [dict(width=0), dict(width="8"), dict(height=-1), dict(scale=0.0),
                                 dict(scale=float("nan")), dict(scale=1.0, width=4), dict(max_gaussians=-1)])
def test_decode_refuses_malformed_sizes(bad: dict) -> None:
    data = api.encode_splats(sc.Splats([[4.0, 4.0]], [[2.0, 0.0, 2.0]], [[0.5]], 8, 8))
    with pytest.raises(InvalidInputError):
        api.decode(data, **bad)
