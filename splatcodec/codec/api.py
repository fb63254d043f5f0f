"""The public codec API: encode/decode images to/from ``.gsplat`` bytes and files, describe them.

This module only gathers the public names; each job has its own module:

* :mod:`.encoder` -- :func:`encode`, :func:`encode_splats`, :func:`save` (option checks, rate modes);
* :mod:`.fit_strategy` -- one attempt at a fixed Gaussian count: fit coarse to fine, one progressive
  group at a time on the residual of the previous groups, plus a short joint polish -> quantize ->
  re-fit only the colours with the quantized geometry frozen -> quantize the colours -> entropy code;
* :mod:`.rate` -- what ``quality`` means (Gaussian count, bit depths);
* :mod:`.rate_search` -- the count for a target bpp or PSNR;
* :mod:`.decoder` -- :func:`decode`, :func:`decode_splats`, :func:`info`, :func:`metadata`, :func:`load`;
* :mod:`.batch` -- :func:`encode_batch`, :func:`iter_encode`; :mod:`.results` -- the result types;
* :mod:`splatcodec.fileio` -- :func:`atomic_write`.

Every name below stays importable from here. The tuning switches (``SCALED_SCHEDULE`` and the other
constants) are read where they are defined: change them on :mod:`.fit_strategy`, not here.
Pipeline and measurements: docs/codec.md.
"""
from __future__ import annotations

from ..fileio import atomic_write
from .batch import EncodeResult, encode_batch, iter_encode
from .decoder import decode, decode_splats, info, load, metadata
from .encoder import DEFAULT_LEVELS, encode, encode_splats, save
from .fit_strategy import (DEFAULT_EFFORT, FIT_STAGES, HALF_RES_MIN_FIT_SPACING, HALF_RES_MIN_SPACING, MAX_EFFORT,
                           SCALED_SCHEDULE, SHORT_SCHEDULE_PIXELS, STAGE_FIT_OPTIONS, TINY_IMAGE_PIXELS, Progress)
from .quantize import BitDepths
from .rate import DEFAULT_QUALITY, bits_for_quality, gaussians_for_quality, position_bits
from .rate_search import BPP_TOLERANCE, MAX_TARGET_BPP, MAX_TARGET_PSNR, PSNR_TOLERANCE
from .results import EncodeStats, GsplatInfo

__all__ = [
    "BPP_TOLERANCE", "DEFAULT_EFFORT", "DEFAULT_LEVELS", "DEFAULT_QUALITY", "FIT_STAGES", "HALF_RES_MIN_FIT_SPACING",
    "HALF_RES_MIN_SPACING", "MAX_EFFORT", "MAX_TARGET_BPP", "MAX_TARGET_PSNR", "PSNR_TOLERANCE", "SCALED_SCHEDULE",
    "SHORT_SCHEDULE_PIXELS", "STAGE_FIT_OPTIONS", "TINY_IMAGE_PIXELS", "BitDepths", "EncodeResult", "EncodeStats",
    "GsplatInfo", "Progress", "atomic_write", "bits_for_quality", "decode", "decode_splats", "encode", "encode_batch",
    "encode_splats", "gaussians_for_quality", "info", "iter_encode", "load", "metadata", "position_bits", "save",
]
