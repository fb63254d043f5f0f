"""Pillow plugin for ``.gsplat`` (format ``GSPLAT``): open, load at any size, thumbnail, save.

Register with :func:`splatcodec.register_pillow` (or import ``splatcodec.plugins.GsplatImagePlugin``).

* ``Image.open`` reads only the header: ``size`` and ``mode`` (``L`` or ``RGB``) are known before
  anything is decoded, so Pillow's decompression-bomb check applies to the declared size. (A 1.0
  file's 40-byte header has its own CRC; a compact 1.1 file, the small-image layout, is covered by
  one CRC at its end, so it is read whole and checked, still without decoding.) A file with our
  signature but a bad header raises ``SyntaxError`` inside ``_open``, which Pillow turns into
  ``UnidentifiedImageError``.
* ``load()`` reads exactly the length the header declares and decodes it with splatcodec's limits
  (pixels, Gaussians, render work). A broken body raises :class:`CorruptFileError`, a truncated file
  :class:`TruncatedFileError` (both ``OSError`` and :class:`splatcodec.FormatError`); a file over a
  limit raises :class:`LimitError` (a ``DecompressionBombError`` and a
  :class:`splatcodec.LimitExceededError`). ``ImageFile.LOAD_TRUNCATED_IMAGES`` does not apply: a
  truncated ``.gsplat`` is refused either way, as the decoder needs the whole container (every
  section is length- and CRC-checked); an image made of whatever was read would be silently wrong.
  The file's ICC profile, if any, is in ``im.info["icc_profile"]`` after ``load()``.
* ``draft(mode, size)`` makes ``load()`` render straight at a smaller size (the smallest one keeping
  the aspect ratio with both sides >= ``size``): ``Image.thumbnail`` and ``Image.reduce``-style
  previews never render the full size. ``mode`` is ignored (the stored channels are decoded).
* ``im.save("x.gsplat", quality=..., target_bpp=..., target_psnr=..., effort=...)`` encodes (also
  ``num_gaussians``, ``levels``, ``seed``, ``threads``, ``max_pixels``); see
  :func:`splatcodec.plugins._common.pil_for_encoding` for how modes convert (the package's one input
  policy: alpha composited over white, mode ``F`` refused).
"""
from __future__ import annotations

import math
from typing import IO, Any

from PIL import Image, ImageFile

from ..codec import api
from ..codec.container import DEFAULT_MAX_PIXELS, Limits
from ..errors import FormatError, LimitExceededError
from ._common import (EXTENSION, MIME_TYPE, CorruptFileError, TruncatedFileError, UnsupportedModeError,
                      encode_options, has_signature, pil_for_encoding, read_body, read_header)

FORMAT = "GSPLAT"

__all__ = ["FORMAT", "CorruptFileError", "GsplatImageFile", "LimitError", "TruncatedFileError",
           "UnsupportedModeError", "register"]


class LimitError(LimitExceededError, Image.DecompressionBombError):
    """Decoding would exceed one of splatcodec's limits (pixels, Gaussians, render work)."""


def _accept(prefix: bytes) -> bool:
    return has_signature(prefix)


class GsplatImageFile(ImageFile.ImageFile):
    """A ``.gsplat`` file opened by Pillow; pixels are rendered on :meth:`load` at the current size."""

    format = FORMAT
    format_description = "splatcodec 2D Gaussian splatting image"

    def _open(self) -> None:
        assert self.fp is not None
        self._start = self.fp.tell()
        try:
            header = read_header(self.fp)
        except FormatError as exc:
            raise SyntaxError(f"not a valid .gsplat file: {exc}") from None
        self._header = header
        self._size = (header.width, header.height)
        self._mode = "L" if header.channels == 1 else "RGB"
        self._decoded = False
        self.info["gsplat_version"] = f"{header.major}.{header.minor}"
        self.info["gsplat_gaussians"] = header.num_gaussians
        self.info["gsplat_size"] = (header.width, header.height)  # the stored size, whatever draft() did
        # No tiles: load() below decodes the whole file itself. (A tile would name a Pillow decoder,
        # and ImageFile.Parser, Pillow's incremental reader, would look for one instead of waiting
        # for all the data and calling load().)
        self.tile = []

    def draft(self, mode: str | None, size: tuple[int, int] | None) -> tuple[str, tuple[int, int, float, float]] | None:
        """Render at the smallest size >= ``size`` (aspect kept) on load; None if nothing changes."""
        if self._decoded or not size:
            return None
        full_w, full_h = self._header.width, self._header.height
        want_w, want_h = max(1, int(size[0])), max(1, int(size[1]))
        if want_w >= full_w and want_h >= full_h:
            return None
        if want_w * full_h >= want_h * full_w:  # the width binds; the height follows the aspect ratio
            width, height = want_w, max(want_h, round(full_h * want_w / full_w))
        else:
            width, height = max(want_w, round(full_w * want_h / full_h)), want_h
        width, height = min(width, full_w), min(height, full_h)
        if (width, height) == self.size:
            return None
        self._size = (width, height)
        return self.mode, (0, 0, float(width), float(height))

    def load(self) -> Any:
        if not self._decoded and self.fp is not None:
            data = read_body(self.fp, self._header, self._start)
            width, height = self.size
            stored = self._header.width * self._header.height
            try:
                # Our pixel limit bounds what is rendered (the output); the stored size is bounded by
                # Pillow's decompression-bomb check in Image.open, so a draft() of a file too big to
                # render in full still loads at its smaller size.
                Limits().check_pixels(width, height, "output image")
                pixels = api.decode(data, width=width, height=height, max_pixels=max(DEFAULT_MAX_PIXELS, stored))
                icc = api.metadata(data).get("icc")
            except LimitExceededError as exc:
                raise LimitError(str(exc)) from None
            except FormatError as exc:
                raise CorruptFileError(f"broken .gsplat data: {exc}") from None
            if isinstance(icc, bytes):
                self.info["icc_profile"] = icc
            self.im = Image.frombytes(self.mode, self.size, pixels.tobytes()).im
            self._decoded = True
            if self._exclusive_fp and self._close_exclusive_fp_after_loading:
                self.fp.close()
                self.fp = None
        return super().load()


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    pixels, metadata = pil_for_encoding(im)
    options = encode_options(im.encoderinfo)
    fp.write(api.encode(pixels, metadata=metadata or None, **options))


def register() -> None:
    """Registers the ``GSPLAT`` opener, saver, extension and MIME type with Pillow (idempotent)."""
    Image.register_open(FORMAT, GsplatImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME_TYPE)
