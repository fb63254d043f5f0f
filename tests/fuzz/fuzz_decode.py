"""atheris fuzz harness for the .gsplat decoder.

    pip install atheris
    python tests/fuzz/fuzz_decode.py tests/fuzz/corpus -max_total_time=600 -rss_limit_mb=1024

Any exception other than FormatError / LimitExceededError, a crash, a hang (libFuzzer -timeout) or
a big allocation (-rss_limit_mb / -malloc_limit_mb) is a bug: add the input that triggered it to
tests/fuzz/corpus/ (named crash-<what>.gsplat) so tests/fuzz/test_corpus.py replays it forever.
"""
from __future__ import annotations

import sys

import atheris

from crcs import refresh_crcs  # noqa: E402  (tests/fuzz/crcs.py, beside this script)

with atheris.instrument_imports():
    from splatcodec.codec import api
    from splatcodec.errors import FormatError, LimitExceededError

#: Small limits keep each input cheap; the limits themselves are what is being tested.
LIMITS = dict(max_pixels=1 << 16, gaussian_limit=1 << 16)



def test_one_input(data: bytes) -> None:
    check(data)
    check(refresh_crcs(data))


def check(data: bytes) -> None:
    try:
        splats = api.decode_splats(data, **LIMITS)
        api.info(data, gaussian_limit=LIMITS["gaussian_limit"])
        if splats.num_gaussians <= 2000:
            api.decode(data, **LIMITS)
    except (FormatError, LimitExceededError):
        pass


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
