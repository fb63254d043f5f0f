"""splatcodec's benchmarks, run from a source checkout as ``python -m benchmarks.<tool>`` (each tool has
``main(argv)``): ``rd`` (rate-distortion against Pillow's codecs), ``rd.check`` (a quick check of a few
images against JPEG), ``speed``, ``fit_speed``, ``cuda_speed``, ``fit_quality``. Shared helpers (data
paths, image loading, timers, the machine line) live in :mod:`benchmarks.common`.
"""
