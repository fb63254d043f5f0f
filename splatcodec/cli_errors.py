"""How the splatcodec command-line tools fail: one ``splatcodec: error: ...`` line and an exit status.

Shared by every click tool of the package (``splatcodec`` in :mod:`splatcodec.cli`, its ``clip``
group, the ``python -m`` entry points): no usage dump, no traceback for user mistakes. Exit statuses:
1 for errors while working, 2 for bad usage, 130 after Ctrl-C (SIGINT), 143 after SIGTERM.
"""
from __future__ import annotations

import sys
from typing import Any, NoReturn, Sequence

import click

from .errors import SplatcodecError


class OneLineErrorGroup(click.Group):
    """A click group whose errors are one line on stderr (no usage dump, no traceback)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, **kwargs: Any) -> Any:
        """Runs the group like click's ``main`` and exits with the status above (never returns)."""
        from .cli_io import Terminated, ignore_exit_signals, install_sigterm_handler

        # Signal dispositions are the process's: changed only when this is the program (args from
        # sys.argv), not when a caller (a test, another tool) runs the CLI in its own process.
        own_process = args is None
        if own_process:
            install_sigterm_handler()
        message, code = None, 0
        try:
            rv = super().main(args=args, prog_name=prog_name or "splatcodec", standalone_mode=False, **kwargs)
            code = rv if isinstance(rv, int) else 0
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `splatcodec`: show the help
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
            code = 2
        except click.UsageError as exc:
            message, code = exc.format_message(), 2
        except click.ClickException as exc:
            message, code = exc.format_message(), exc.exit_code or 1
        except click.Abort as exc:
            message, code = ("interrupted", 130) if isinstance(exc.__cause__, KeyboardInterrupt) else ("aborted", 1)
        except KeyboardInterrupt:
            message, code = "interrupted", 130
        except Terminated:
            message, code = "terminated", 143
        except SplatcodecError as exc:
            message, code = str(exc), 1
        except (OSError, MemoryError) as exc:
            message, code = os_message(exc), 1
        # The work is over (done or failed): a late signal must not turn the exit status into a
        # death by signal while the interpreter shuts down.
        if own_process:
            ignore_exit_signals()
        if message is not None:
            fail(message, code)
        sys.exit(code)


def os_message(exc: BaseException) -> str:
    """``file: reason`` for an OSError that names its file, else the exception's text (or type)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def fail(message: str, code: int) -> NoReturn:
    """Prints ``splatcodec: error: <message>`` (on one line) to stderr and exits with ``code``."""
    message = " ".join(str(message).split())  # one line, even for multi-line messages of other libraries
    click.echo(f"splatcodec: error: {message}", err=True)
    sys.exit(code)


__all__ = ["OneLineErrorGroup", "fail", "os_message"]
