"""`encode-dataset --engine ray` on a real local Ray (2 CPUs), isolated from the network.

Ray's processes listen on all interfaces even for a local cluster, so the run happens in a private
network namespace holding only loopback (`unshare -n`, needs root or user namespaces); where that is
not possible the test is skipped with the reason.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from shard_builder import REPO_ROOT, build_shards

pytest.importorskip("ray")
pytest.importorskip("webdataset")

OPTS = ["--gaussians", "30", "-e", "1"]


def _private_network() -> str | None:
    """Why a loopback-only network namespace cannot be made here (None: it can)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip (util-linux, iproute2) not installed"
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"unshare -n failed: {probe.stderr.strip()}"


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers()}


def test_ray_engine_writes_what_the_local_engine_writes(tmp_path):
    reason = _private_network()
    if reason:
        pytest.skip(f"Ray would listen on all interfaces and no private network namespace is possible: {reason}")
    built = build_shards(tmp_path / "in", shards=2, per_shard=2, huge_png=False)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), RAY_USAGE_STATS_ENABLED="0")
    cli = [sys.executable, "-m", "splatcodec.cli", "encode-dataset", str(built.folder)]
    local = subprocess.run(cli + [str(tmp_path / "local"), "--workers", "2", "--quiet"] + OPTS, env=env,
                           capture_output=True, text=True, timeout=300)
    command = " ".join(cli + [str(tmp_path / "ray"), "--engine", "ray", "--ray-cpus", "2", "--log-every", "5"] + OPTS)
    ray = subprocess.run(["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {command}"], env=env,
                         capture_output=True, text=True, timeout=600)
    # both report the truncated input shard and exit 1, having written the two good shards
    assert local.returncode == 1 and ray.returncode == 1, ray.stderr[-3000:]
    assert "00000002.tar" in ray.stderr and "shards 3/3 (1 failed)" in ray.stderr
    for name in ("00000000.tar", "00000001.tar"):
        assert _members(tmp_path / "ray" / name) == _members(tmp_path / "local" / name)
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    summary = json.loads((tmp_path / "ray" / "_summary.json").read_text())
    assert summary["engine"] == "ray" and summary["task_cpus"] == 1
    assert summary["shards"] == {"total": 3, "encoded_now": 2, "skipped_done": 0, "failed": 1, "not_done": 1}
    assert summary["this_run"]["startup_seconds"] > 0 and summary["dataset"]["failed"] == 1
