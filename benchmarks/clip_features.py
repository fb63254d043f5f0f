"""Are the splat stem's fixed feature constants right? Statistics of the normalised token features on real fits.

    python -m benchmarks.clip_features            # ~1 min on 2 busy cores

Fits real images with splatcodec's own fitter (20 CIFAR-10 test images, every 500th file, at 16 and 64
Gaussians; Kodak's kodim23 at 4000), takes the valid rows of ``splat_features`` for both covariance
parameterisations, applies the stem's normalisation ``(f - FEATURE_SHIFT) / FEATURE_SCALE`` and prints
per-feature mean and standard deviation and the overall range. Features of order one across these
resolutions and Gaussian counts are what the fixed constants are for (docs/clip_architecture.md).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import splatcodec
from splatcodec.clip.tokens import FEATURE_SCALE, FEATURE_SHIFT, splat_features

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NAMES = {"log_ab_shear": "x y log_a log_b asinh_k r g b",
         "scale_rotation": "x y log_s1 log_s2 e_cos2t e_sin2t r g b"}


def report(label: str, splats: list, param: str) -> None:
    feats, valid = splat_features(splats, param=param)
    x = (feats[valid] - np.asarray(FEATURE_SHIFT[param])) / np.asarray(FEATURE_SCALE[param])
    print(f"{label:18s} {param:15s} rows {len(x):5d}  ({NAMES[param]})")
    print(f"{'':34s} mean " + " ".join(f"{m:+5.2f}" for m in x.mean(0)))
    print(f"{'':34s} std  " + " ".join(f"{s:5.2f}" for s in x.std(0)) + f"   range [{x.min():+.2f}, {x.max():+.2f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20, help="CIFAR-10 test images (every 500th file)")
    args = parser.parse_args()
    files = sorted((DATA / "cifar10_test").glob("*/*.png"))[::500][:args.images]
    if not files:
        raise SystemExit(f"CIFAR-10 test images not found under {DATA / 'cifar10_test'}")
    images = [np.asarray(Image.open(p).convert("RGB")) for p in files]
    for n in (16, 64):
        splats = splatcodec.fit_batch(images, num_gaussians=n)
        for param in NAMES:
            report(f"CIFAR x{len(files)}, {n} G", splats, param)
    kodak = np.asarray(Image.open(DATA / "kodak" / "kodim23.png").convert("RGB"))
    splats = [splatcodec.fit(kodak, num_gaussians=4000)]
    for param in NAMES:
        report("kodim23, 4000 G", splats, param)


if __name__ == "__main__":
    main()
