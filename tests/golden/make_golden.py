"""Regenerate tests/golden/tiny.gsplat (1.0), tiny11.gsplat (compact 1.1) and tiny12.gsplat (1.2, with a
PRED section): only when the format changes on purpose (bump the version too). tiny.gsplat must come
out byte-identical as long as 1.0 is unchanged, tiny12.gsplat as long as 1.2 is.

    python tests/golden/make_golden.py && pytest tests/test_codec.py -k golden   # then update the pins
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from splatcodec.codec import bitstream, compact
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
    (HERE / "tiny12.gsplat").write_bytes(golden12())
    print(f"wrote {len(golden12())} bytes (1.2)")


def golden11() -> bytes:
    """The golden Gaussians as a compact 1.1 file (built-in priors, 2 groups)."""
    s = golden_splats()
    q = quantize(s, BitDepths(9, 8, 7, (8, 8, 8)), levels=2, ranges=fixed_ranges(s.width, s.height, s.num_gaussians, 3))
    return compact.write(q)[0]


def golden12_splats() -> Splats:
    """320 Gaussians (enough for the writer to try predictions) on a 40x32 canvas whose log b follows
    log a and whose Cr follows Cb: a file with a PRED section."""
    k = np.arange(320)
    xy = np.stack([(k % 20) * 2.0 + 1.0, (k // 20) * 2.0 + 0.5], axis=1)
    a = 0.6 + (k % 11) * 0.3
    b = a * (0.9 + (k % 3) * 0.1)
    chol = np.stack([a, ((k % 7) - 3) * 0.2 * b, b], axis=1)
    ycc = np.stack([0.2 + (k % 13) / 20.0, ((k * 5) % 9 - 4) / 30.0, np.zeros(320)], axis=1)
    ycc[:, 2] = -0.7 * ycc[:, 1] + ((k % 5) - 2) / 400.0
    m = np.array([[0.299, 0.587, 0.114], [-0.168735892, -0.331264108, 0.5], [0.5, -0.418687589, -0.081312411]])
    return Splats(xy, chol, ycc @ np.linalg.inv(m).T, 40, 32)


def golden12() -> bytes:
    """The 1.2 golden file (2 groups); refuses to come out as anything else."""
    q = quantize(golden12_splats(), BitDepths(12, 7, 7, (8, 7, 7)), levels=2)
    data = bitstream.write(q)[0]
    assert data[9] == bitstream.PRED_MINOR, "the 1.2 golden Gaussians no longer make a 1.2 file"
    return data


if __name__ == "__main__":
    main()
