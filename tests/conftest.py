"""Shared test helpers: where the real images live, and loading them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT.parent / "shared" / "data"
KODAK_DIR = DATA_DIR / "kodak"


def load_kodak(name: str = "kodim23") -> np.ndarray:
    """A Kodak image as uint8 HxWx3; fails (not skips) when the shared data is missing."""
    from PIL import Image

    path = KODAK_DIR / f"{name}.png"
    if not path.is_file():
        pytest.fail(f"test data missing: {path} (the Kodak suite is expected in ../shared/data/kodak "
                    "relative to the repository root; see its SOURCE.md)")
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture
def kodak_available() -> None:
    """For tests whose code reads the Kodak folder itself: fail (not skip) when it is missing."""
    load_kodak("kodim23")


@pytest.fixture(scope="session")
def kodim23_crop() -> np.ndarray:
    """A 128x128 crop of kodim23 (the parrots) with both flat and detailed regions."""
    return np.ascontiguousarray(load_kodak("kodim23")[150:278, 300:428])
