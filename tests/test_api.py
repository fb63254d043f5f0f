"""The Splats container, psnr, degenerate renders, and the missing-extension error."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import splatcodec as sc
from splatcodec import InvalidInputError, Splats


def test_splats_validates_and_packs() -> None:
    s = Splats([[1, 2]], [[1, 0, 1]], [[0.5, 0.25, 1.0]], 4, 3)
    assert s.num_gaussians == 1 and s.channels == 3
    assert s.packed().shape == (1, 8) and s.packed().dtype == np.float32
    t = Splats.from_packed(s.packed(), 4, 3)
    np.testing.assert_array_equal(t.packed(), s.packed())
    np.testing.assert_allclose(s.covariance()[0], [[1, 0], [0, 1]])
    with pytest.raises(InvalidInputError, match="disagree"):
        Splats(np.zeros((2, 2)), np.ones((1, 3)), np.ones((1, 3)), 4, 4)
    with pytest.raises(InvalidInputError, match="1 or 3 channels"):
        Splats(np.zeros((1, 2)), np.ones((1, 3)), np.ones((1, 2)), 4, 4)
    with pytest.raises(InvalidInputError, match="width"):
        Splats(np.zeros((1, 2)), np.ones((1, 3)), np.ones((1, 3)), 0, 4)
    with pytest.raises(InvalidInputError, match="numeric"):
        Splats([["a", "b"]], np.ones((1, 3)), np.ones((1, 3)), 4, 4)


def test_render_of_nothing_and_of_degenerate_gaussians_is_black() -> None:
    empty = Splats(np.zeros((0, 2)), np.zeros((0, 3)), np.zeros((0, 3)), 20, 10)
    assert np.all(sc.render(empty) == 0)
    bad = Splats([[5, 5], [np.nan, 1], [3, 3]], [[0, 0, 1], [1, 0, 1], [1, np.inf, 1]],
                 np.ones((3, 3)), 20, 10)
    assert np.all(sc.render_float(bad) == 0)


def test_single_gaussian_peak_and_rounding() -> None:
    s = Splats([[2.5, 2.5]], [[1.0, 0.0, 1.0]], [[0.5, 1.0, 2.0]], 5, 5)
    img = sc.render_float(s)
    np.testing.assert_allclose(img[2, 2], [0.5, 1.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(img[2, 3], np.array([0.5, 1.0, 2.0]) * np.exp(-0.5), rtol=1e-6)
    assert sc.render(s)[2, 2].tolist() == [128, 255, 255]


def test_psnr() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    assert sc.psnr(a, b) == float("inf")
    b[0, 0, 0] = 255
    assert sc.psnr(a, b) == pytest.approx(10 * np.log10(48))
    assert sc.psnr(a / 255.0, b / 255.0) == pytest.approx(10 * np.log10(48))
    with pytest.raises(InvalidInputError):
        sc.psnr(a, b[:2])


def test_missing_extension_raises_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from splatcodec import _native

    _native.core.cache_clear()
    monkeypatch.setitem(sys.modules, "splatcodec._core", None)  # import of it now fails
    try:
        with pytest.raises(sc.NativeExtensionError, match="pip install"):
            sc.render(Splats(np.zeros((1, 2)), np.ones((1, 3)), np.ones((1, 3)), 4, 4))
        assert issubclass(sc.NativeExtensionError, ImportError)
    finally:
        _native.core.cache_clear()
