"""atheris fuzz harness for the CLI and the image reader (the target is inputs_target.check).

    pip install atheris
    cp -r tests/fuzz/corpus_inputs /tmp/corpus_inputs
    python tests/fuzz/fuzz_inputs.py /tmp/corpus_inputs -max_total_time=3600 -rss_limit_mb=4096 -timeout=20

A crash (any exception other than our error types, an exit status other than 0/1/2, a traceback on
stderr), a hang or a big allocation is a bug: add the input to tests/fuzz/corpus_inputs/ (named
crash-<what>.bin; the first byte picks the mode, see inputs_target.py) so that
tests/fuzz/test_inputs_fuzz.py replays it forever.
"""
from __future__ import annotations

import sys

import atheris

# numpy, PIL and constriction are imported uninstrumented first: only splatcodec's branches guide
# the fuzzer (see fuzz_decode.py for why splatcodec must be first imported inside the block).
import constriction  # noqa: E402,F401
import numpy  # noqa: E402,F401
import PIL.Image  # noqa: E402,F401

with atheris.instrument_imports():
    import splatcodec.cli  # noqa: F401
    import splatcodec.image_io  # noqa: F401

from inputs_target import check  # noqa: E402  (beside this script)


def main() -> None:
    atheris.Setup(sys.argv, lambda data: check(bytes(data)))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
