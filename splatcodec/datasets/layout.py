"""Planning a dataset run: which shards to write from which input, and what the output folder holds."""
from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import InvalidInputError, SplatcodecError
from ..validation import check_int
from .images import IMAGE_EXTENSIONS
from .shard import PARTIAL_SUFFIX, STATS_SUFFIX, FolderShard, is_done

LOCK_NAME = ".encode-dataset.lock"
SUMMARY_NAME = "_summary.json"


@dataclass
class Job:
    """One output shard to make: ``index`` orders jobs, ``images`` is the expected sample count (if known)."""

    index: int
    name: str
    source: str | FolderShard
    output: str
    images: int | None = None


def _img2dataset_count(tar: Path) -> int | None:
    """Successful samples of an img2dataset shard, from its ``00000000_stats.json`` sidecar."""
    sidecar = tar.with_name(tar.name.split(".", 1)[0] + STATS_SUFFIX)
    try:
        count = json.loads(sidecar.read_text()).get("successes")
    except (OSError, ValueError, AttributeError):
        return None
    return count if isinstance(count, int) and count >= 0 else None


def _folder_keys(root: Path, files: list[Path]) -> list[str]:
    """WebDataset keys for files under ``root``: the relative path without its extension, dots replaced
    (a key ends at the first dot of the file name), made unique."""
    seen: set[str] = set()
    keys = []
    for path in files:
        base = re.sub(r"[.\s]", "_", path.relative_to(root).with_suffix("").as_posix())
        key, n = base, 1
        while key in seen:
            key, n = f"{base}_{n}", n + 1
        seen.add(key)
        keys.append(key)
    return keys


def plan(input: str | os.PathLike, output: str | os.PathLike, *, shard_size: int = 1000) -> list[Job]:
    """The jobs of a run: one per ``*.tar`` shard when ``input`` is a shard or a folder holding shards
    (same output names), else the folder's images (recursively, sorted) cut into shards of
    ``shard_size`` named ``00000000.tar``, ``00000001.tar``, ..."""
    src, out = Path(input), Path(output)
    if not src.exists():
        raise InvalidInputError(f"{src}: no such file or folder")
    if src.is_dir() and out.exists() and src.resolve() == out.resolve():
        raise InvalidInputError("the output folder must not be the input folder")
    if src.is_file():
        if not src.name.endswith(".tar"):
            raise InvalidInputError(f"{src}: expected a .tar shard or a folder")
        tars = [src]
    else:
        tars = sorted(p for p in src.iterdir() if p.is_file() and p.name.endswith(".tar"))
    if tars:
        return [Job(i, t.name, str(t), str(out / t.name), _img2dataset_count(t)) for i, t in enumerate(tars)]
    check_int("shard_size", shard_size, minimum=1)
    files = sorted(p for p in src.rglob("*") if p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(src).parts))
    if not files:
        raise InvalidInputError(f"{src} holds no .tar shards and no images")
    pairs = list(zip(_folder_keys(src, files), map(str, files)))
    jobs = []
    for i in range(0, len(pairs), shard_size):
        name = f"{i // shard_size:08d}.tar"
        chunk = pairs[i:i + shard_size]
        jobs.append(Job(len(jobs), name, FolderShard(chunk), str(out / name), len(chunk)))
    return jobs


def split_done(jobs: list[Job]) -> tuple[list[Job], list[Job]]:
    """(jobs still to do, jobs whose output shard is already complete)."""
    todo, done = [], []
    for job in jobs:
        (done if is_done(job.output) else todo).append(job)
    return todo, done


def remove_partials(folder: str | os.PathLike) -> list[str]:
    """Deletes temporary files left by an interrupted run (hidden ``.*.partial``); returns their names."""
    removed = []
    for path in Path(folder).glob("." + "*" + PARTIAL_SUFFIX):
        path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed


@contextmanager
def locked(folder: str | os.PathLike) -> Iterator[None]:
    """Holds an exclusive lock on the output folder for a run (two runs writing one folder would
    delete each other's temporary files); :class:`SplatcodecError` if another run holds it."""
    import fcntl

    Path(folder).mkdir(parents=True, exist_ok=True)
    with open(Path(folder) / LOCK_NAME, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SplatcodecError(f"another encode-dataset run is writing {folder}") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
