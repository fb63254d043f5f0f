"""Importing this module registers ``.gsplat`` with Pillow (Pillow's ``XxxImagePlugin`` convention)::

    import splatcodec.plugins.GsplatImagePlugin  # noqa: F401
    from PIL import Image
    Image.open("photo.gsplat")

It is the same as calling :func:`splatcodec.register_pillow`; see :mod:`splatcodec.plugins.pillow_plugin`.
"""
from __future__ import annotations

from .pillow_plugin import FORMAT, GsplatImageFile, register

register()

__all__ = ["FORMAT", "GsplatImageFile"]
