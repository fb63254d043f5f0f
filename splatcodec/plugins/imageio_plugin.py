"""imageio v3 plugin for ``.gsplat`` (plugin name ``splatcodec``).

Register with :func:`splatcodec.register_imageio`, then::

    import imageio.v3 as iio
    pixels = iio.imread("photo.gsplat")                    # (H, W, 3) or (H, W) uint8
    small = iio.imread("photo.gsplat", width=256)          # rendered at 256 px wide (aspect kept)
    iio.imwrite("copy.gsplat", pixels, quality=60)
    data = iio.imwrite("<bytes>", pixels, extension=".gsplat", target_bpp=0.5)
    iio.improps("photo.gsplat")                            # shape and dtype from the header alone

A resource that does not start with the ``.gsplat`` signature is refused in ``__init__`` with
``InitializationError`` (from the first bytes, nothing is parsed), so imageio moves on to its other
plugins; writing is accepted only for the ``.gsplat`` extension.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
from imageio.core.request import URI_BYTES, InitializationError, IOMode, Request
from imageio.core.v3_plugin_api import ImageProperties, PluginV3

from ..codec import api
from ..codec.container import Header
from ..errors import FormatError, InvalidInputError
from ._common import EXTENSION, CorruptFileError, encode_options, has_signature, read_body, read_header

PLUGIN_NAME = "splatcodec"


class GsplatPlugin(PluginV3):
    """Reads and writes ``.gsplat`` files: one image per file, decoded at any resolution."""

    def __init__(self, request: Request) -> None:
        super().__init__(request)
        self._header: Header | None = None
        if request.mode.io_mode == IOMode.read:
            if not has_signature(request.firstbytes):
                raise InitializationError("not a .gsplat file (no .gsplat signature)")
        else:
            extension = request.extension or request.format_hint
            if extension != EXTENSION:
                raise InitializationError(f"the splatcodec plugin writes {EXTENSION} files, not {extension!r}")

    def _read_header(self) -> Header:
        if self._header is None:
            file = self.request.get_file()
            file.seek(0)
            try:
                self._header = read_header(file)
            except FormatError as exc:
                raise CorruptFileError(f"not a valid .gsplat file: {exc}") from None
        return self._header

    def _data(self) -> bytes:
        return read_body(self.request.get_file(), self._read_header(), 0)

    @staticmethod
    def _check_index(index: Any) -> None:
        if index not in (0, None, Ellipsis):
            raise InvalidInputError(f"a .gsplat file holds one image: index must be 0, None or ..., got {index!r}")

    def read(self, *, index: Any = None, width: int | None = None, height: int | None = None,
             scale: float | None = None, max_gaussians: int | None = None, **limits: Any) -> np.ndarray:
        """Decode the image: uint8 (H, W) for gray, (H, W, 3) for colour.

        ``width``/``height`` (one keeps the aspect ratio) or ``scale`` render at another resolution,
        ``max_gaussians`` a coarser progressive prefix; ``max_pixels`` and ``gaussian_limit`` are
        :func:`splatcodec.decode`'s limits. ``index=...`` adds a leading batch axis of length 1.
        """
        self._check_index(index)
        data = self._data()
        try:
            pixels = api.decode(data, width=width, height=height, scale=scale, max_gaussians=max_gaussians, **limits)
        except FormatError as exc:
            raise CorruptFileError(f"broken .gsplat data: {exc}") from None
        if pixels.shape[2] == 1:
            pixels = pixels[:, :, 0]
        return pixels[None] if index is Ellipsis else pixels

    def iter(self, **kwargs: Any) -> Iterator[np.ndarray]:
        """Yields the file's one image (``read``'s keyword arguments apply)."""
        yield self.read(**kwargs)

    def write(self, ndimage: Any, *, is_batch: bool = False, **options: Any) -> bytes | None:
        """Encode one image (uint8/uint16/float in [0, 1], (H, W), (H, W, 1) or (H, W, 3)).

        Keyword arguments are :func:`splatcodec.encode`'s (``quality``, ``target_bpp``,
        ``target_psnr``, ``effort``, ...) and ``metadata``. Returns the bytes when writing to
        ``"<bytes>"``. A batch (a list, or ``is_batch=True``) must hold exactly one image.
        """
        if isinstance(ndimage, (list, tuple)) or is_batch:
            if len(ndimage) != 1:
                raise InvalidInputError(f"a .gsplat file holds one image, got a batch of {len(ndimage)}")
            ndimage = ndimage[0]
        unknown = set(options) - {"metadata", *encode_options(dict.fromkeys(options, 0))}
        if unknown:
            raise InvalidInputError(f"unknown .gsplat write options: {', '.join(sorted(unknown))}")
        data = api.encode(np.asarray(ndimage), metadata=options.get("metadata"), **encode_options(options))
        file = self.request.get_file()
        file.write(data)
        if self.request._uri_type == URI_BYTES:
            return data
        return None

    def properties(self, index: Any = None) -> ImageProperties:
        """Shape and dtype of :meth:`read` at the stored size, from the header alone (nothing decoded)."""
        self._check_index(index)
        header = self._read_header()
        shape: tuple[int, ...] = (header.height, header.width) + (() if header.channels == 1 else (3,))
        if index is Ellipsis:
            return ImageProperties(shape=(1,) + shape, dtype=np.dtype(np.uint8), n_images=1, is_batch=True)
        return ImageProperties(shape=shape, dtype=np.dtype(np.uint8))

    def metadata(self, index: Any = None, exclude_applied: bool = True) -> dict[str, Any]:
        """Header facts (version, stored size, channels, Gaussian count, byte length) and the file's
        META entries (e.g. ``icc``); the sections are checked, nothing is range-decoded."""
        self._check_index(index)
        header = self._read_header()
        data = self._data()
        try:
            entries = api.metadata(data)
        except FormatError as exc:
            raise CorruptFileError(f"broken .gsplat data: {exc}") from None
        return {"version": f"{header.major}.{header.minor}", "width": header.width, "height": header.height,
                "channels": header.channels, "num_gaussians": header.num_gaussians, "bytes": len(data), **entries}


def register() -> None:
    """Adds the plugin to ``imageio.config.known_plugins`` and ``.gsplat`` to ``known_extensions``
    (idempotent: a second call changes nothing)."""
    from imageio.config import FileExtension, PluginConfig, extension_list, known_extensions, known_plugins

    if PLUGIN_NAME not in known_plugins:
        known_plugins[PLUGIN_NAME] = PluginConfig(name=PLUGIN_NAME, class_name="GsplatPlugin",
                                                  module_name=__name__, install_name="splatcodec")
    formats = known_extensions.setdefault(EXTENSION, [])
    if not any(PLUGIN_NAME in fmt.priority for fmt in formats):
        fmt = FileExtension(extension=EXTENSION, priority=[PLUGIN_NAME], name="splatcodec Gaussian splats",
                            description="Images stored as coloured anisotropic 2D Gaussians (splatcodec)")
        formats.insert(0, fmt)
        extension_list.append(fmt)
