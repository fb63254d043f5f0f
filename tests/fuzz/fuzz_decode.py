"""atheris fuzz harness for the .gsplat decoder.

    pip install atheris
    python tests/fuzz/fuzz_decode.py CORPUS_COPY -max_total_time=600 -rss_limit_mb=4096 -timeout=10

(CORPUS_COPY: a copy of tests/fuzz/corpus, which libFuzzer would otherwise fill with its finds.) The
process's RSS climbs by ~0.7 KB per input under atheris (past 1 GiB after 1.4M inputs), while the same
check on 200k mutated inputs without atheris stays flat at ~35 MB: the growth is the instrumented
process's, not the decoder's, hence the 4 GiB limit.

Any exception other than FormatError / LimitExceededError, a crash, a hang (libFuzzer -timeout) or
a big allocation (-rss_limit_mb / -malloc_limit_mb) is a bug: add the input that triggered it to
tests/fuzz/corpus/ (named crash-<what>.gsplat) so tests/fuzz/test_corpus.py replays it forever.
"""
from __future__ import annotations

import sys

import atheris

# Only splatcodec is instrumented: a module imported before this block is not, so splatcodec must be
# first imported inside it (else libFuzzer sees no coverage: "no interesting inputs were found"), while
# numpy and constriction, imported before it, are left alone (their branches are not ours to explore).
import constriction  # noqa: E402,F401
import numpy  # noqa: E402,F401

with atheris.instrument_imports():
    from splatcodec.codec import api
    from splatcodec.errors import FormatError, LimitExceededError

from crcs import refresh_crcs  # noqa: E402  (tests/fuzz/crcs.py, beside this script)

#: Small limits keep each input cheap; the limits themselves are what is being tested.
LIMITS = dict(max_pixels=1 << 16, gaussian_limit=1 << 16)



def test_one_input(data: bytes) -> None:
    check(data)
    check(refresh_crcs(data))


def check(data: bytes) -> None:
    try:
        splats = api.decode_splats(data, **LIMITS)
        api.info(data, coded_bits=True, gaussian_limit=LIMITS["gaussian_limit"])
        if splats.num_gaussians <= 2000:
            api.decode(data, **LIMITS)
    except (FormatError, LimitExceededError):
        pass


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
