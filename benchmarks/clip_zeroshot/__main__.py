"""``python -m benchmarks.clip_zeroshot``: the GS-CLIP experiment (see the package docstring)."""
import sys

from .cli import main

sys.exit(main())
