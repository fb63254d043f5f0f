"""Builds real img2dataset-layout WebDataset shards from ../shared/data photos for the dataset tests."""
from __future__ import annotations

import io
import json
import struct
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
FLICKR_DIR = REPO_ROOT.parent / "shared" / "data" / "flickr8k_500" / "images"


def flickr_files(count: int, start: int = 0) -> list[Path]:
    if not FLICKR_DIR.is_dir():
        pytest.fail(f"test data missing: {FLICKR_DIR} (expected in ../shared/data; see its SOURCE.md)")
    return sorted(FLICKR_DIR.glob("*.jpg"))[start:start + count]


def small_jpeg(path: Path, longest: int) -> bytes:
    """The photo downscaled so its longer side is ``longest`` px, as JPEG bytes (keeps tests fast)."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((longest, longest), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        im.save(out, "JPEG", quality=90)
        return out.getvalue()


def huge_header_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A real 8x8 PNG whose IHDR is rewritten (with a valid CRC) to declare ``width`` x ``height``."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, "PNG")
    data = bytearray(out.getvalue())
    ihdr = 8  # after the signature: length (4), "IHDR" (4), 13 bytes of data, CRC (4)
    data[ihdr + 8:ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4:ihdr + 21])) & 0xFFFFFFFF
    data[ihdr + 21:ihdr + 25] = struct.pack(">I", crc)
    return bytes(data)


def add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1_700_000_000
    tf.addfile(info, io.BytesIO(data))


@dataclass
class Built:
    """What was written: per shard name, its samples' keys and entries; the keys that must fail."""

    folder: Path
    samples: dict[str, dict[str, dict[str, bytes]]] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)  # key -> what the reason must mention
    corrupt_shards: list[str] = field(default_factory=list)


def build_shards(folder: Path, *, shards: int = 3, per_shard: int = 3, longest: int = 40, start: int = 0,
                 corrupt_image: bool = True, huge_png: bool = True, corrupt_shard: bool = True) -> Built:
    """``shards`` shards ``00000000.tar``... of ``per_shard`` Flickr8k photos each ({key}.jpg/.txt/.json,
    img2dataset's ``_stats.json`` sidecar), plus on request: a truncated JPEG in shard 0, a PNG whose
    header claims 10^10 pixels in the last shard, and a tar cut in the middle of a member."""
    folder.mkdir(parents=True, exist_ok=True)
    built = Built(folder)
    files = flickr_files(shards * per_shard, start)
    for s in range(shards):
        name = f"{s:08d}.tar"
        entries: dict[str, dict[str, bytes]] = {}
        for i, path in enumerate(files[s * per_shard:(s + 1) * per_shard]):
            key = f"{s:04d}{i:05d}"
            entries[key] = {"jpg": small_jpeg(path, longest), "txt": f"a photo: {path.stem}".encode(),
                            "json": json.dumps({"key": key, "url": path.name, "status": "success"}).encode()}
        if s == 0 and corrupt_image:
            good = small_jpeg(files[0], longest)
            entries["0000bad01"] = {"jpg": good[:len(good) // 3], "txt": b"truncated", "json": b"{}"}
            built.bad["0000bad01"] = "image"
        if s == shards - 1 and huge_png:
            key = f"{s:04d}huge1"
            entries[key] = {"png": huge_header_png(), "txt": b"huge header", "json": b"{}"}
            built.bad[key] = "exceeds"
        with tarfile.open(folder / name, "w") as tf:
            for key, sample in entries.items():
                for ext, data in sample.items():
                    add(tf, f"{key}.{ext}", data)
        (folder / f"{s:08d}_stats.json").write_text(json.dumps({  # as img2dataset writes it (abridged)
            "count": len(entries), "successes": len(entries), "failed_to_download": 0, "failed_to_resize": 0,
            "duration": 1.5 + s, "status_dict": {"success": len(entries)}, "status": "success"}))
        built.samples[name] = entries
    if corrupt_shard:
        name = f"{shards:08d}.tar"
        whole = io.BytesIO()
        with tarfile.open(fileobj=whole, mode="w") as tf:
            for i, path in enumerate(files[:2]):
                add(tf, f"9999{i:05d}.jpg", small_jpeg(path, longest))
        data = whole.getvalue()
        (folder / name).write_bytes(data[:512 + 300])  # the first member's header and part of its data
        built.corrupt_shards.append(name)
    return built
