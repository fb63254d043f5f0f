"""A progress line for dataset runs that reads well both on a terminal and in a log file.

On a terminal one line is redrawn in place (at most twice a second); elsewhere (a log, a pipe) a full
line is printed every ``log_every`` seconds and whenever a shard ends, never a carriage return.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Shards and images done, failures, images/s and ETA of a run."""

    def __init__(self, shards: int, images: int | None, *, stream: TextIO | None = None, enabled: bool = True,
                 log_every: float = 30.0, label: str = "encode-dataset") -> None:
        self.shards_total = shards
        self.images_known = images  # total images if every shard's count is known up front
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.log_every = log_every
        self.label = label
        self.start = time.perf_counter()
        # A terminal is drawn at once; a log gets its first timed line log_every seconds after the start
        # (perf_counter counts from an arbitrary point, often the boot: 0.0 here meant "long ago").
        self.last = float("-inf") if self.tty else self.start
        self.shards_done = 0
        self.shards_failed = 0
        self.finished_images = 0  # samples of finished shards
        self.running_images = 0  # samples done so far in running shards
        self.failed_images = 0
        self.drawn = False

    @property
    def images(self) -> int:
        return self.finished_images + self.running_images

    def estimated_total(self) -> int | None:
        if self.images_known is not None:
            return self.images_known
        if self.shards_done:  # mean samples per finished shard
            return round(self.finished_images / self.shards_done * self.shards_total)
        return None

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.images / elapsed if elapsed > 0 else 0.0
        finished = self.shards_done + self.shards_failed >= self.shards_total
        total = self.images if finished else self.estimated_total()  # at the end: what was done
        parts = [f"{self.label}: shards {self.shards_done + self.shards_failed}/{self.shards_total}"]
        if self.shards_failed:
            parts[0] += f" ({self.shards_failed} failed)"
        images = f"images {self.images}"
        if total is not None:
            images += f"/{'' if finished or self.images_known is not None else '~'}{total}"
        if self.failed_images:
            images += f" ({self.failed_images} failed)"
        parts += [images, f"{rate:.2f} img/s", f"elapsed {_duration(elapsed)}"]
        if total is not None and rate > 0 and total > self.images:
            parts.append(f"ETA {_duration((total - self.images) / rate)}")
        return " | ".join(parts)

    def update(self, running_images: int | None = None, *, force: bool = False) -> None:
        """Redraw / log if due; ``running_images``: samples done so far in the shards still running."""
        if running_images is not None:
            self.running_images = running_images
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last < (0.5 if self.tty else self.log_every):
            return
        self.last = now
        if self.tty:
            self.stream.write("\r\x1b[K" + self.line())
            self.drawn = True
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def shard_finished(self, images: int, failed_images: int, *, ok: bool = True) -> None:
        if ok:
            self.shards_done += 1
        else:
            self.shards_failed += 1
        self.finished_images += images
        self.failed_images += failed_images
        self.update(force=True)

    def message(self, text: str) -> None:
        """A line of its own (e.g. a failed shard), not overwritten by the progress line."""
        if not self.enabled:
            return
        if self.drawn:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()
        self.drawn = False
        self.update(force=True)

    def close(self) -> None:
        if self.enabled:
            self.update(force=True)
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()
