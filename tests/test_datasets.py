"""splatcodec.datasets and `splatcodec encode-dataset`: real shards in and out, stats, resume, failures."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from shard_builder import REPO_ROOT, build_shards, flickr_files, small_jpeg

import splatcodec
import splatcodec.cli
from splatcodec import datasets
from splatcodec.datasets.images import decode_image
from splatcodec.datasets.layout import locked
from splatcodec.codec import compact
from splatcodec.codec.priors import Priors, builtin
from splatcodec.errors import FormatError, InvalidInputError, SplatcodecError

pytest.importorskip("webdataset")
OPTS = dict(num_gaussians=30, effort=1)


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers()}


def _no_partials(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".partial")]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """Three shards (a truncated JPEG, a huge-header PNG among the photos) plus a truncated tar, encoded
    with the local engine and two workers."""
    root = tmp_path_factory.mktemp("ds")
    built = build_shards(root / "in")
    summary = datasets.encode_dataset(str(built.folder), str(root / "out"), workers=2, threads=2,
                                      progress=False, **OPTS)
    return built, root / "out", summary


def test_round_trip(encoded):
    built, out, _ = encoded
    for name, samples in built.samples.items():
        members = _members(out / name)
        for key, entries in samples.items():
            if key in built.bad:
                assert not any(m.startswith(key + ".") for m in members)  # failed samples are left out
                continue
            assert members[f"{key}.txt"] == entries["txt"] and members[f"{key}.json"] == entries["json"]
            assert f"{key}.jpg" not in members
            expected = decode_image(entries["jpg"])
            assert splatcodec.decode(members[f"{key}.gsplat"]).shape == expected.shape
            assert splatcodec.info(members[f"{key}.gsplat"]).num_gaussians == 30
    got = {key: (splats.width, splats.height, other) for key, splats, other in datasets.iter_gsplat(out)}
    want = {k for s in built.samples.values() for k in s if k not in built.bad}
    assert set(got) == want
    for samples in built.samples.values():
        for key, entries in samples.items():
            if key in want:
                assert got[key][2] == {"txt": entries["txt"], "json": entries["json"]}


def test_stats_and_summary(encoded):
    built, out, summary = encoded
    total_ok = 0
    for name, samples in built.samples.items():
        stats = json.loads((out / name.replace(".tar", "_stats.json")).read_text())
        members = _members(out / name)
        bad = {k for k in samples if k in built.bad}
        assert stats["count"] == len(samples) and stats["successes"] == len(samples) - len(bad)
        assert stats["failed"] == len(bad) and {f["key"] for f in stats["failures"]} == bad
        for failure in stats["failures"]:
            assert built.bad[failure["key"]] in failure["reason"]
        gsplats = [v for k, v in members.items() if k.endswith(".gsplat")]
        assert stats["bytes_out"] == sum(map(len, gsplats))
        assert stats["bytes_in"] == sum(len(e.get("jpg", e.get("png", b""))) for e in samples.values())
        sizes = [decode_image(e["jpg"]).shape[:2] for k, e in samples.items() if k not in bad]
        bpp = [8 * len(g) / (h * w) for g, (h, w) in zip(gsplats, sizes)]
        assert stats["mean_bpp"] == pytest.approx(sum(bpp) / len(bpp))
        assert 10 < stats["mean_psnr"] < 60
        # img2dataset's own stats of the input shard are kept, not lost under ours
        assert stats["input_stats"] == json.loads((built.folder / name.replace(".tar", "_stats.json")).read_text())
        total_ok += stats["successes"]
    assert summary["shards"] == {"total": 4, "encoded_now": 3, "skipped_done": 0, "failed": 1, "not_done": 1}
    [failed] = summary["failed_shards"]
    assert failed["name"] == built.corrupt_shards[0] and "unexpected end" in failed["error"]
    assert not (out / built.corrupt_shards[0]).exists() and _no_partials(out)
    assert summary["dataset"]["successes"] == total_ok == summary["this_run"]["successes"]
    assert json.loads((out / "_summary.json").read_text()) == json.loads(json.dumps(summary))


def test_rerun_skips_finished_shards(encoded):
    built, out, _ = encoded
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("0*")}
    summary = datasets.encode_dataset(str(built.folder), str(out), workers=2, progress=False, **OPTS)
    assert summary["shards"]["skipped_done"] == 3 and summary["shards"]["encoded_now"] == 0
    assert summary["shards"]["failed"] == 1  # the damaged input is tried again and reported again
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("0*")} == before


def test_a_rerun_with_other_codec_options_is_refused(encoded):
    """Resuming with another quality would leave a dataset of two encodings: refused, nothing touched."""
    built, out, _ = encoded
    mtimes = lambda: {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != ".encode-dataset.lock"}  # noqa: E731
    before = mtimes()
    with pytest.raises(InvalidInputError, match=r"other options .*num_gaussians 30 -> 40"):
        datasets.encode_dataset(str(built.folder), str(out), progress=False, **{**OPTS, "num_gaussians": 40})
    with pytest.raises(InvalidInputError, match=r"keep False -> True"):
        datasets.encode_dataset(str(built.folder), str(out), progress=False, keep=True, **OPTS)
    assert mtimes() == before


def test_keep_resize_and_same_bytes_as_encode(tmp_path):
    built = build_shards(tmp_path / "in", shards=1, per_shard=2, longest=64, corrupt_image=False, huge_png=False,
                         corrupt_shard=False)
    stats = datasets.encode_shard(built.folder / "00000000.tar", tmp_path / "o" / "00000000.tar", keep=True,
                                  resize_longest=24, threads=2, **OPTS)
    assert stats["successes"] == 2
    members = _members(tmp_path / "o" / "00000000.tar")
    for key, entries in built.samples["00000000.tar"].items():
        assert members[f"{key}.jpg"] == entries["jpg"]
        pixels = decode_image(entries["jpg"], resize_longest=24)
        assert max(pixels.shape[:2]) == 24
        assert members[f"{key}.gsplat"] == splatcodec.encode(pixels, **OPTS)  # the same bytes as encode()
    with pytest.raises(InvalidInputError, match="unknown encode option"):
        datasets.encode_shard(built.folder / "00000000.tar", tmp_path / "x.tar", gaussians=3)


def test_input_stats_missing_or_broken(tmp_path):
    built = build_shards(tmp_path / "in", shards=2, per_shard=1, longest=24, corrupt_image=False, huge_png=False,
                         corrupt_shard=False)
    (built.folder / "00000000_stats.json").unlink()
    (built.folder / "00000001_stats.json").write_text("{not json")
    stats = [datasets.encode_shard(built.folder / n, tmp_path / "o" / n, threads=1, **OPTS) for n in built.samples]
    assert stats[0]["input_stats"] is None and "input_stats_error" not in stats[0]
    assert stats[1]["input_stats"] is None and "00000001_stats.json is not JSON" in stats[1]["input_stats_error"]
    assert json.loads((tmp_path / "o" / "00000001_stats.json").read_text())["input_stats_error"] \
        == stats[1]["input_stats_error"]


def test_folder_input_and_cli(tmp_path):
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    files = flickr_files(4, start=20)
    names = ["a.jpg", "b.v2.jpg", "sub/a.jpg", "sub/c.JPG"]
    for path, name in zip(files, names):
        (src / name).write_bytes(small_jpeg(path, 32))
    (src / "notes.txt").write_text("not an image")
    result = CliRunner().invoke(splatcodec.cli.main, ["encode-dataset", str(src), str(tmp_path / "out"),
                                                      "--shard-size", "3", "--gaussians", "20", "-e", "1",
                                                      "--workers", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tar")) == ["00000000.tar", "00000001.tar"]
    assert json.loads((tmp_path / "out" / "00000000_stats.json").read_text())["input_stats"] is None
    keys = [key for key, _, _ in datasets.iter_gsplat(tmp_path / "out", decode="bytes")]
    assert keys == ["a", "b_v2", "sub/a", "sub/c"]
    images = list(datasets.iter_gsplat(str(tmp_path / "out/{00000000..00000001}.tar"), decode="image",
                                       worker=(1, 2)))
    assert [k for k, _, _ in images] == ["sub/c"] and images[0][1].ndim == 3
    handler = datasets.gsplat_handler()
    assert handler("x.txt", b"hi") is None
    assert isinstance(handler("x.gsplat", splatcodec.encode(images[0][1], **OPTS)), splatcodec.Splats)


def test_cli_errors(tmp_path, monkeypatch):
    built = build_shards(tmp_path / "in", shards=1, per_shard=1, corrupt_image=False, huge_png=False)
    runner = CliRunner()
    result = runner.invoke(splatcodec.cli.main, ["encode-dataset", str(built.folder), str(tmp_path / "out"),
                                                 "--gaussians", "20", "-e", "1", "--quiet"])
    assert result.exit_code == 1 and "1 shard(s) failed: 00000001.tar" in result.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    result = runner.invoke(splatcodec.cli.main, ["encode-dataset", str(built.folder), str(tmp_path / "o2"),
                                                 "--engine", "ray"])
    assert result.exit_code == 1 and "pip install 'splatcodec[ray]'" in result.output
    with locked(tmp_path / "out"):
        with pytest.raises(SplatcodecError, match="another encode-dataset run"):
            datasets.encode_dataset(str(built.folder), str(tmp_path / "out"), progress=False)


def _worker_writing(parent: int, folder: Path) -> tuple[int, str] | None:
    """(pid, shard) of a child of ``parent`` with a partial output file of ``folder`` open."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    for pid in children:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith(str(folder)) and target.endswith(".tar.partial"):
                    return int(pid), Path(target).name[1:-len(".partial")]
        except OSError:
            continue
    return None


def _start(src: Path, out: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "splatcodec.cli", "encode-dataset", str(src), str(out), "--gaussians", "60",
            "-e", "2", "--workers", "2", "--threads", "2", "--log-every", "5", *extra]
    return subprocess.Popen(args, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the worker")
def test_killed_worker_and_killed_run_resume(tmp_path):
    built = build_shards(tmp_path / "in", shards=4, per_shard=3, longest=48, corrupt_image=False, huge_png=False,
                         corrupt_shard=False)
    # 1. A worker killed mid-shard: the pool is rebuilt, the shard redone, the run ends normally.
    out = tmp_path / "out1"
    proc = _start(built.folder, out)
    pid, shard = _wait_for(lambda: _worker_writing(proc.pid, out), proc)
    os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"{shard}: worker process died; retrying (1/2)" in err
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["shards"]["encoded_now"] == 4 and summary["dataset"]["successes"] == 12
    assert json.loads((out / shard.replace(".tar", "_stats.json")).read_text())["pid"] != pid
    assert _no_partials(out)
    # 2. The whole run killed (parent and workers) after a shard is done: the rerun keeps the finished
    # shards, redoes the others and removes the partial files.
    out = tmp_path / "out2"
    proc = _start(built.folder, out)
    _wait_for(lambda: list(out.glob("*_stats.json")) and _worker_writing(proc.pid, out), proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("*_stats.json")}
    assert finished and len(finished) < 4 and not _no_partials(out)
    proc = _start(built.folder, out)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["shards"]["skipped_done"] == len(finished)
    assert summary["shards"]["encoded_now"] == 4 - len(finished)
    assert {n: (out / n).stat().st_mtime_ns for n in finished} == finished
    assert _no_partials(out) and len(list(out.glob("*.tar"))) == 4
    assert sum(1 for _ in datasets.iter_gsplat(out, decode="bytes")) == 12


def _group_gone(pgid: int, timeout: float = 10.0) -> bool:
    """Whether every process of group ``pgid`` has exited (multiprocessing's resource tracker ends
    shortly after the main process); leaves the command lines of the others in ``_group_gone.left``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        left = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    left.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
            except (OSError, IndexError, ValueError):
                continue
        _group_gone.left = left
        if not left:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the worker")
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_stops_the_workers_and_keeps_no_partial_file(tmp_path, sig, code):
    built = build_shards(tmp_path / "in", shards=2, per_shard=3, longest=48, corrupt_image=False, huge_png=False,
                         corrupt_shard=False)
    out = tmp_path / "out"
    proc = _start(built.folder, out)
    _wait_for(lambda: _worker_writing(proc.pid, out), proc)
    start = time.monotonic()
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # a terminal's Ctrl-C reaches the whole process group
    else:
        proc.send_signal(sig)  # a job scheduler signals the main process
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert time.monotonic() - start < 20 and "run the same command again to resume" in err
    assert _no_partials(out)
    assert _group_gone(proc.pid), _group_gone.left  # no process of the run is left
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["this_run"]["interrupted"] is True


def test_iter_gsplat_streams_then_reports_a_damaged_shard_with_our_error(encoded, tmp_path):
    built, out, _ = encoded
    good = out / "00000000.tar"
    data = good.read_bytes()
    (tmp_path / "00000000.tar").write_bytes(data)
    with tarfile.open(good) as tf:
        last = tf.getmembers()[-1]
    (tmp_path / "00000001.tar").write_bytes(data[:last.offset_data + last.size // 2])  # cut inside a member
    seen = []
    with pytest.raises(datasets.ShardError, match="00000001.tar"):
        for key, _, _ in datasets.iter_gsplat(tmp_path, decode="bytes"):
            seen.append(key)
    # every sample of the good shard came first (streamed), then the damaged shard raised
    assert seen[:len(built.samples["00000000.tar"]) - 1] == [k for k in built.samples["00000000.tar"]
                                                           if k not in built.bad]
    with pytest.raises(datasets.ShardError, match="No such file"):
        list(datasets.iter_gsplat(tmp_path / "missing.tar"))


def _block_cuts(path: Path) -> dict[str, int]:
    """Cut points on 512-byte boundaries of a tar of three or more samples, around its third sample:
    right before it (after the second sample's last member), right after its first member, and right
    after that member's header (inside the member)."""
    with tarfile.open(path) as tf:
        members = tf.getmembers()
    starts = [i for i, m in enumerate(members) if i == 0 or m.name.split(".")[0] != members[i - 1].name.split(".")[0]]
    third = members[starts[2]]
    return {"after a sample": third.offset, "after a member": third.offset_data + -(-third.size // 512) * 512,
            "mid-member": third.offset_data}


@pytest.mark.parametrize("where", ["after a sample", "after a member", "mid-member"])
def test_a_shard_cut_on_a_tar_block_boundary_is_a_shard_error(encoded, tmp_path, where):
    """tarfile (and webdataset's reader) stop silently where a tar cut on a 512-byte boundary ends:
    we raise ShardError, after the samples before the damage, on reading back and on encoding."""
    built, out, _ = encoded
    data = (out / "00000000.tar").read_bytes()
    cut = _block_cuts(out / "00000000.tar")[where]
    assert cut % 512 == 0 and cut < len(data)
    (tmp_path / "00000000.tar").write_bytes(data[:cut])
    seen = []
    with pytest.raises(datasets.ShardError, match="00000000.tar") as info:
        for key, _, _ in datasets.iter_gsplat(tmp_path / "00000000.tar", decode="bytes"):
            seen.append(key)
    # the samples before the damage were streamed, except the one being read when the data ends (it may
    # miss entries): the second sample unless the third one's first member was read whole
    good = [k for k in built.samples["00000000.tar"] if k not in built.bad]
    assert seen == good[:2 if where == "after a member" else 1]
    assert ("unexpected end of data" if where == "mid-member" else f"truncated: the data ends at byte {cut}") \
        in str(info.value)
    # the same input shard (img2dataset layout) cut there: the shard fails, nothing is written
    source = (built.folder / "00000000.tar").read_bytes()
    cut = _block_cuts(built.folder / "00000000.tar")[where]
    (tmp_path / "in.tar").write_bytes(source[:cut])
    with pytest.raises(datasets.ShardError, match="in.tar"):
        datasets.encode_shard(tmp_path / "in.tar", tmp_path / "o" / "in.tar", threads=1, **OPTS)
    assert not (tmp_path / "o" / "in.tar").exists() and _no_partials(tmp_path / "o")


def test_a_shard_with_a_garbage_header_is_a_shard_error(encoded, tmp_path):
    _, out, _ = encoded
    data = bytearray((out / "00000000.tar").read_bytes())
    at = _block_cuts(out / "00000000.tar")["after a sample"]
    data[at:at + 100] = b"x" * 100  # the second sample's first header
    (tmp_path / "00000000.tar").write_bytes(bytes(data))
    with pytest.raises(datasets.ShardError, match=f"damaged member header at byte {at}"):
        list(datasets.iter_gsplat(tmp_path, decode="bytes"))


def _other_priors() -> Priors:
    """A valid dataset priors set other than the built-in one (its tables, reweighted)."""
    rng = np.random.default_rng(5)
    base = builtin()
    tables = [np.clip(t * rng.uniform(0.5, 1.5, t.shape), 1, 0xFFFF).astype(np.int64) for t in base.tables]
    return Priors(tables, base.gap.copy())


def test_priors_reach_every_worker_and_are_recorded(tmp_path):
    built = build_shards(tmp_path / "in", shards=2, per_shard=2, longest=24, corrupt_image=False, huge_png=False,
                         corrupt_shard=False)
    priors = _other_priors()
    (tmp_path / "p.bin").write_bytes(priors.to_bytes())
    digest = priors.digest().hex()
    args = ["encode-dataset", str(built.folder), str(tmp_path / "out"), "--gaussians", "20", "-e", "1",
            "--workers", "2", "--threads", "2", "--quiet", "--priors", str(tmp_path / "p.bin")]
    result = CliRunner().invoke(splatcodec.cli.main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "_summary.json").read_text())
    assert summary["options"]["priors"] == digest and summary["dataset"]["successes"] == 4
    for name, samples in built.samples.items():
        stats = json.loads((tmp_path / "out" / name.replace(".tar", "_stats.json")).read_text())
        assert stats["priors_sha256"] == stats["options"]["priors"] == digest
        members = _members(tmp_path / "out" / name)
        for key, entries in samples.items():
            data = members[f"{key}.gsplat"]
            # each worker encoded with these priors: the bytes of encode(priors=...), a file naming them
            assert data == splatcodec.encode(decode_image(entries["jpg"]), num_gaussians=20, effort=1, priors=priors)
            assert compact.is_compact(data) and data[3] & 0x20
    # reading back needs the same priors
    with pytest.raises(FormatError, match=f"dataset priors {priors.ident().hex()}"):
        next(datasets.iter_gsplat(tmp_path / "out"))
    assert len(list(datasets.iter_gsplat(tmp_path / "out", priors=tmp_path / "p.bin", decode="image"))) == 4
    handler = datasets.gsplat_handler(priors=priors)
    assert isinstance(handler("k.gsplat", data), splatcodec.Splats)
    # without --priors the same run records none
    stats = datasets.encode_shard(built.folder / "00000000.tar", tmp_path / "plain" / "00000000.tar", threads=1,
                                  num_gaussians=20, effort=1)
    assert stats["priors_sha256"] is None and "priors" not in stats["options"]


def test_a_bad_priors_file_fails_before_anything_is_written(tmp_path):
    built = build_shards(tmp_path / "in", shards=1, per_shard=1, longest=24, corrupt_image=False, huge_png=False,
                         corrupt_shard=False)
    (tmp_path / "junk.bin").write_bytes(b"GSPR" + b"\0" * 10)
    for path, needle in ((tmp_path / "junk.bin", "not a splatcodec priors file"),
                         (tmp_path / "none.bin", "cannot read priors file")):
        result = CliRunner().invoke(splatcodec.cli.main, ["encode-dataset", str(built.folder), str(tmp_path / "out"),
                                                          "--priors", str(path)])
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and needle in lines[0], result.output
        assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the worker")
def test_cli_max_retries_0_fails_the_shard_whose_worker_died_and_finishes_the_others(tmp_path):
    built = build_shards(tmp_path / "in", shards=3, per_shard=2, longest=48, corrupt_image=False, huge_png=False,
                         corrupt_shard=False)
    out = tmp_path / "out"
    proc = _start(built.folder, out, "--max-retries", "0")
    pid, shard = _wait_for(lambda: _worker_writing(proc.pid, out), proc)
    os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert "retrying" not in err and f"{shard}: FAILED: its worker process died 1 times" in err
    assert err.strip().splitlines()[-1] == \
        f"splatcodec: error: 1 shard(s) failed: {shard}: its worker process died 1 times"
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["shards"] == {"total": 3, "encoded_now": 2, "skipped_done": 0, "failed": 1, "not_done": 1}
    assert summary["failed_shards"] == [{"name": shard, "error": "its worker process died 1 times"}]
    assert not (out / shard).exists() and _no_partials(out)
    assert sorted(p.name for p in out.glob("*.tar")) == sorted(set(built.samples) - {shard})


PROGRESS_LINE = re.compile(r"encode-dataset: shards (\d+)/(\d+)( \((\d+) failed\))? \| images (\d+)(/~?\d+)?"
                           r"( \((\d+) failed\))? \| \d+\.\d\d img/s \| elapsed \d+:\d\d:\d\d"
                           r"( \| ETA \d+:\d\d:\d\d)?")


def test_a_log_gets_its_first_timed_progress_line_after_log_every_seconds():
    import io

    from splatcodec.datasets.progress import Progress

    log = io.StringIO()
    bar = Progress(3, 9, stream=log, log_every=10)
    bar.update(running_images=2)  # 0 s after the start: not due yet (was due at once: perf_counter - 0.0)
    assert log.getvalue() == ""
    bar.shard_finished(3, 0)  # a finished shard always gets its line
    assert log.getvalue().startswith("encode-dataset: shards 1/3 | images 5/9 | ")


def test_cli_progress_in_a_log_file(tmp_path):
    """What a log gets (stderr not a terminal): whole lines, no carriage return or escape code, one at each
    finished shard, the failures on lines of their own, the totals at the end."""
    built = build_shards(tmp_path / "in", shards=2, per_shard=2, longest=24, huge_png=False)
    out, log = tmp_path / "out", tmp_path / "run.log"
    args = [sys.executable, "-m", "splatcodec.cli", "encode-dataset", str(built.folder), str(out), "--gaussians",
            "20", "-e", "1", "--workers", "1", "--threads", "1", "--log-every", "3600"]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    with open(log, "w") as fh:
        code = subprocess.run(args, stderr=fh, env=env, timeout=300).returncode
    text = log.read_text()
    assert code == 1 and "\r" not in text and "\x1b" not in text, text
    lines = text.splitlines()
    progress = [m for m in map(PROGRESS_LINE.fullmatch, lines) if m]
    others = [line for line in lines if not PROGRESS_LINE.fullmatch(line)]
    bad = built.corrupt_shards[0]
    assert len(others) == 3, text
    assert others[0].startswith(f"{bad}: FAILED: ") and "unexpected end of data" in others[0]
    assert re.fullmatch(r"2 shards encoded, 0 already done, 1 failed; 4 images encoded, 1 failed; "
                        r"\d+\.\d{3} bpp, \d+\.\d\d dB, \d+\.\d\d img/s; summary in .*_summary\.json", others[1])
    assert others[2] == f"splatcodec: error: 1 shard(s) failed: {bad}: {others[0].split(': FAILED: ')[1]}"
    # a line at each finished shard (one worker: in order), then the last line with the final counts
    assert [m.group(1) for m in progress][:3] == ["1", "2", "3"] and progress[-1].group(1) == "3"
    first = progress[0]
    assert first.group(5, 6, 8) == ("3", "/~9", "1")  # shard 0: 3 samples (1 bad); estimated: no sidecar for shard 2
    last = progress[-1]
    assert last.group(0).startswith("encode-dataset: shards 3/3 (1 failed) | images 5/5 (1 failed) | ")
    assert "ETA" not in last.group(0)
    # a rerun skips the finished shards, saying so on a line of its own, and tries the damaged one again
    with open(log, "w") as fh:
        code = subprocess.run(args, stderr=fh, env=env, timeout=300).returncode
    lines = log.read_text().splitlines()
    assert code == 1 and lines[0] == f"2 of 3 shards are already done in {out}; skipping them", lines
    assert lines[1].startswith("encode-dataset: shards 0/1 | images 0 | ")
    others = [line for line in lines if not PROGRESS_LINE.fullmatch(line)]
    assert len(others) == 4 and others[1].startswith(f"{bad}: FAILED: "), lines
    assert others[2].startswith("0 shards encoded, 2 already done, 1 failed; 0 images encoded, 0 failed; ")
    last = [line for line in lines if PROGRESS_LINE.fullmatch(line)][-1]
    assert last.startswith("encode-dataset: shards 1/1 (1 failed) | images 0/0 | ")


def test_cli_resize_longest_downscales_oversized_images_and_counts_them(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    big, small = flickr_files(2, start=30)
    (src / "big.jpg").write_bytes(small_jpeg(big, 64))
    (src / "small.jpg").write_bytes(small_jpeg(small, 32))
    result = CliRunner().invoke(splatcodec.cli.main, ["encode-dataset", str(src), str(tmp_path / "out"),
                                                      "--resize-longest", "48", "--gaussians", "20", "-e", "1",
                                                      "--workers", "1", "--threads", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    shapes = {key: image.shape for key, image, _ in datasets.iter_gsplat(tmp_path / "out", decode="image")}
    want_big = decode_image((src / "big.jpg").read_bytes(), resize_longest=48).shape
    assert max(want_big[:2]) == 48 and max(decode_image((src / "big.jpg").read_bytes()).shape[:2]) == 64
    assert shapes == {"big": want_big, "small": decode_image((src / "small.jpg").read_bytes()).shape}
    assert max(shapes["small"][:2]) == 32  # never upscaled
    stats = json.loads((tmp_path / "out" / "00000000_stats.json").read_text())
    assert stats["resized"] == 1 and stats["options"]["resize_longest"] == 48 and stats["successes"] == 2
    assert json.loads((tmp_path / "out" / "_summary.json").read_text())["dataset"]["resized"] == 1
