"""``.gsplat`` as a format of Pillow and imageio.

Nothing is registered by ``import splatcodec``: call :func:`register_pillow` / :func:`register_imageio`
(both idempotent), or import ``splatcodec.plugins.GsplatImagePlugin`` (registers with Pillow)::

    import splatcodec
    from PIL import Image
    splatcodec.register_pillow()
    Image.open("photo.gsplat").thumbnail((256, 256))   # renders at the small size directly

    import imageio.v3 as iio
    splatcodec.register_imageio()
    pixels = iio.imread("photo.gsplat", width=256)
"""
from __future__ import annotations


def register_pillow() -> None:
    """Teach Pillow to open and save ``.gsplat`` files (format ``GSPLAT``); safe to call again."""
    from .pillow_plugin import register

    register()


def register_imageio() -> None:
    """Add the ``splatcodec`` plugin for ``.gsplat`` to imageio v3's known plugins; safe to call again."""
    from .imageio_plugin import register

    register()


__all__ = ["register_imageio", "register_pillow"]
