"""``python -m splatcodec.clip COMMAND ...``: the ``splatcodec clip`` group as a program of its own
(same commands, options, one-line errors and exit statuses as ``splatcodec clip``)."""
from __future__ import annotations

import sys
from typing import Sequence

from .cli import clip


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``splatcodec clip`` on ``argv`` (default: ``sys.argv[1:]``, as a program, with the CLI's
    signal handling) and returns the exit status instead of exiting."""
    try:
        clip.main(args=None if argv is None else list(argv), prog_name="python -m splatcodec.clip")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0  # pragma: no cover - OneLineErrorGroup.main always exits


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
