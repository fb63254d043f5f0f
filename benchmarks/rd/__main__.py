"""``python -m benchmarks.rd``: the rate-distortion benchmark (see the package docstring)."""
import sys

from .cli import main

sys.exit(main())
