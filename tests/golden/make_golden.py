"""Regenerate tests/golden/tiny.gsplat (1.0) and tiny11.gsplat (compact 1.1): only when the format changes
on purpose (bump the version too). tiny.gsplat must come out byte-identical as long as 1.0 is unchanged.

    python tests/golden/make_golden.py && pytest tests/test_codec.py -k golden   # then update the pins
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from splatcodec.codec import compact
from splatcodec.codec.api import encode_splats
from splatcodec.codec.priors import fixed_ranges
from splatcodec.codec.quantize import BitDepths, quantize
from splatcodec.splats import Splats

HERE = Path(__file__).parent


def golden_splats() -> Splats:
    """40 hand-placed Gaussians on a 24x16 canvas: a grid with varied shapes and colours."""
    k = np.arange(40)
    xy = np.stack([(k % 8) * 3.0 + 1.5, (k // 8) * 3.2 + 1.0], axis=1)
    chol = np.stack([1.0 + (k % 5) * 0.5, ((k % 7) - 3) * 0.4, 0.8 + (k % 3) * 0.6], axis=1)
    color = np.stack([(k % 4) / 4.0, ((k * 3) % 5) / 5.0, ((k * 7) % 6) / 6.0], axis=1) * 0.6
    return Splats(xy, chol, color, 24, 16)


def main() -> None:
    data = encode_splats(golden_splats(), bits=BitDepths(12, 7, 7, (8, 7, 7)), levels=2,
                         metadata={"comment": "splatcodec golden file"})
    (HERE / "tiny.gsplat").write_bytes(data)
    print(f"wrote {len(data)} bytes")
    (HERE / "tiny11.gsplat").write_bytes(golden11())
    print(f"wrote {len(golden11())} bytes (1.1)")


def golden11() -> bytes:
    """The golden Gaussians as a compact 1.1 file (built-in priors, 2 groups)."""
    s = golden_splats()
    q = quantize(s, BitDepths(9, 8, 7, (8, 8, 8)), levels=2, ranges=fixed_ranges(s.width, s.height, s.num_gaussians, 3))
    return compact.write(q)[0]


if __name__ == "__main__":
    main()
