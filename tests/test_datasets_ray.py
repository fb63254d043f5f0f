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

from splatcodec import datasets

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


DRIVER = '''
import json, os, sys
from pathlib import Path

import ray

from splatcodec import datasets
from splatcodec.datasets import engines

src, base, marker = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])


def dies_once(job, options, owned=False):
    """The engine's task, except that the first attempt at shard 00000001.tar kills its Ray worker
    process (os._exit: no exception, no cleanup) with a partial output file open, leaving the marker
    file as proof."""
    from splatcodec.datasets import engines as real  # in the Ray worker: the module unpatched

    if job.name == "00000001.tar" and not marker.exists():
        marker.write_text(str(os.getpid()))
        real.partial_paths(job.output)[0].write_bytes(b"half a shard")  # as if killed while writing
        os._exit(1)
    return real.run_job(job, options, owned)


engines.run_job = dies_once  # what run_ray submits (cloudpickle sends this function by value)
ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")  # one Ray for both runs
results = {}
for retries in (1, 0):
    marker.unlink(missing_ok=True)
    summary = datasets.encode_dataset(src, str(base / f"retries{retries}"), engine="ray", max_retries=retries,
                                      progress=False, num_gaussians=30, effort=1)
    results[retries] = {"summary": summary, "died": marker.exists() and int(marker.read_text()),
                        "driver": os.getpid()}
ray.shutdown()
print(json.dumps(results, default=str))
'''


def test_ray_retries_a_shard_whose_worker_died(tmp_path):
    """A Ray worker process that dies mid-task (os._exit on the first attempt at one shard): with
    max_retries=1 Ray runs the task again and the shard is written; with 0 the shard is reported as
    failed and the other shard is still written."""
    reason = _private_network()
    if reason:
        pytest.skip(f"Ray would listen on all interfaces and no private network namespace is possible: {reason}")
    built = build_shards(tmp_path / "in", shards=2, per_shard=1, longest=24, corrupt_image=False, huge_png=False,
                         corrupt_shard=False)
    (tmp_path / "driver.py").write_text(DRIVER)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), RAY_USAGE_STATS_ENABLED="0")
    command = " ".join([sys.executable, str(tmp_path / "driver.py"), str(built.folder), str(tmp_path),
                        str(tmp_path / "died")])
    proc = subprocess.run(["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {command}"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    retried, failed = results["1"], results["0"]
    # a worker process really died, and it was not the driver
    assert retried["died"] and failed["died"] and retried["died"] != retried["driver"]
    assert retried["summary"]["shards"] == {"total": 2, "encoded_now": 2, "skipped_done": 0, "failed": 0,
                                            "not_done": 0}
    keys = [key for key, _, _ in datasets.iter_gsplat(tmp_path / "retries1", decode="bytes")]
    assert keys == [key for samples in built.samples.values() for key in samples]
    assert failed["summary"]["shards"] == {"total": 2, "encoded_now": 1, "skipped_done": 0, "failed": 1,
                                           "not_done": 1}
    [failure] = failed["summary"]["failed_shards"]
    assert failure["name"] == "00000001.tar" and failure["error"].startswith("Ray task failed: ")
    assert "worker died" in failure["error"]
    for out in (tmp_path / "retries1", tmp_path / "retries0"):
        assert not [p for p in out.iterdir() if p.name.endswith(".partial")]  # no partial file is left
    assert (tmp_path / "retries0" / "00000000.tar").is_file() and not (tmp_path / "retries0" / "00000001.tar").exists()

