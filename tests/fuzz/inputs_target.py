"""The fuzz target for the CLI and the image reader (used by fuzz_inputs.py and test_inputs_fuzz.py).

One input is split by its first byte into a mode and a payload:

* mode 0: the payload is an image file: ``image_io.read_image`` and the one input policy
  (``images.to_float_image`` of the decoded PIL image) must return or raise our InvalidInputError /
  LimitExceededError;
* mode 1: the payload is a ``.gsplat`` stream given to the CLI's header-first reader
  (``cli_io.read_gsplat`` on a pipe-like stream) and, as a file, to ``splatcodec info`` and
  ``splatcodec decode`` run in-process: they must exit with status 0, 1 or 2 (never a traceback,
  never another exception);
* mode 2: the payload is an image on the CLI's stdin (``cli_io.read_image_input('-')``).

Small limits keep each input cheap; the limits themselves are part of what is tested.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from typing import Iterator

MAX_PIXELS = 1 << 16


class _Stdin:
    """A stand-in for sys.stdin whose .buffer is a non-seekable pipe-like stream."""

    def __init__(self, data: bytes) -> None:
        self.buffer = io.BufferedReader(io.BytesIO(data))


@contextlib.contextmanager
def _stdin(data: bytes) -> Iterator[None]:
    saved = sys.stdin
    sys.stdin = _Stdin(data)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdin = saved


def check(data: bytes) -> str:
    """Runs one input; returns a short outcome. Raises on anything that is a bug."""
    from splatcodec.errors import FormatError, InvalidInputError, LimitExceededError

    if not data:
        return "empty"
    mode, payload = data[0] % 3, data[1:]
    ours = (FormatError, InvalidInputError, LimitExceededError)
    if mode == 0:
        from splatcodec.image_io import read_image
        from splatcodec.images import to_float_image

        try:
            pixels, _ = read_image(io.BytesIO(payload), max_pixels=MAX_PIXELS)
            to_float_image(pixels)
            return "image"
        except ours:
            return "refused"
    if mode == 2:
        from splatcodec.cli_io import read_image_input

        with _stdin(payload):
            try:
                read_image_input("-", max_pixels=MAX_PIXELS)
                return "stdin image"
            except ours:
                return "refused"
    return _check_cli(payload)


def _check_cli(payload: bytes) -> str:
    from splatcodec.cli import main
    from splatcodec.cli_io import read_gsplat
    from splatcodec.errors import FormatError, LimitExceededError
    from splatcodec.limits import Limits

    with _stdin(payload):
        try:
            read_gsplat("-", Limits.for_decode(max_pixels=MAX_PIXELS, gaussian_limit=MAX_PIXELS))
        except (FormatError, LimitExceededError):
            pass
    codes = []
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in.gsplat")
        with open(src, "wb") as fh:
            fh.write(payload)
        for args in (["info", src], ["decode", src, "-o", os.path.join(tmp, "out.png"),
                                     "--max-pixels", str(MAX_PIXELS)]):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
                try:
                    main(args)
                except SystemExit as exc:
                    codes.append(exc.code)
            if "Traceback" in err.getvalue():
                raise AssertionError(f"traceback from splatcodec {args[0]}: {err.getvalue()[-500:]}")
    if any(code not in (0, 1, 2) for code in codes):
        raise AssertionError(f"unexpected exit statuses {codes}")
    return "cli " + ",".join(map(str, codes))
