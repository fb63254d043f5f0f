"""``python -m benchmarks.speed``: the speed benchmark (see the package docstring)."""
from .cli import main

main()
