"""Shared test helpers: where the real images live, and loading them."""
from __future__ import annotations

import numpy as np
import pytest

# One home for the data paths and the Kodak loader (tests/kodak.py, importable by test modules too).
from kodak import DATA_DIR, KODAK_DIR, REPO_ROOT, load_kodak  # noqa: F401 (fixtures and tests use them)


@pytest.fixture
def kodak_available() -> None:
    """For tests whose code reads the Kodak folder itself: fail (not skip) when it is missing."""
    load_kodak("kodim23")


@pytest.fixture(scope="session")
def kodim23_crop() -> np.ndarray:
    """A 128x128 crop of kodim23 (the parrots) with both flat and detailed regions."""
    return np.ascontiguousarray(load_kodak("kodim23")[150:278, 300:428])
