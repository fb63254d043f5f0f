"""Fixtures of the splatcodec.clip tests: real CIFAR-10 data, a tiny model config, trained runs of the
three stages (shared by the training, API and CLI tests), and a guard that fails any network access."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

import splatcodec  # noqa: F401  (first: it sets OMP_WAIT_POLICY before torch's libgomp loads; see _native)

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
CIFAR_TRAIN = DATA_DIR / "cifar10_train_20k"
CIFAR_TEST = DATA_DIR / "cifar10_test"
FLICKR = DATA_DIR / "flickr8k_500"


class NetworkAccess(AssertionError):
    """Raised by the guard below: nothing in these tests may reach the network."""


@pytest.fixture(scope="session", autouse=True)
def no_network():
    """For the whole session of these tests: connecting a socket or resolving a name fails."""
    def refuse(*args, **kwargs):
        raise NetworkAccess(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket.socket, "connect_ex", refuse)
    mp.setattr(socket, "create_connection", refuse)
    mp.setattr(socket, "getaddrinfo", refuse)
    yield
    mp.undo()


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One torch thread: steadier timings of the small models here on a busy 2-core machine."""
    import torch
    import tqdm

    # sentence-transformers makes tqdm bars even when hidden; tqdm's monitor thread would outlive these
    # tests (tests/test_batch.py counts threads).
    tqdm.tqdm.monitor_interval = 0
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def require_data(path: Path) -> Path:
    """Fails (never skips) when the shared data is missing."""
    if not path.exists():
        pytest.fail(f"test data missing: {path} (expected in ../shared/data; see its README.md)")
    return path


@pytest.fixture(scope="session")
def cifar_train() -> Path:
    return require_data(CIFAR_TRAIN / "classes.txt").parent


@pytest.fixture(scope="session")
def cifar_test() -> Path:
    return require_data(CIFAR_TEST / "classes.txt").parent


@pytest.fixture(scope="session")
def flickr() -> Path:
    return require_data(FLICKR / "captions.csv").parent


def micro_config() -> dict:
    """A ~0.1M-parameter model for 32x32 images: 2 blocks of width 64, 8 px patches (16 tokens)."""
    from splatcodec.clip.config import GSClipConfig

    data = GSClipConfig.from_name("tiny").to_dict()
    data.update(name="micro", embed_dim=64)
    data["vision"].update(width=64, layers=2, head_width=32, patch_size=8)
    data["resampler"].update(blocks=1, head_width=32)
    data["stem"].update(fourier_bands=4)
    return data


@pytest.fixture(scope="session")
def micro_config_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("config") / "micro.json"
    path.write_text(json.dumps(micro_config()))
    return str(path)


def run_args(**kw):
    from splatcodec.clip.train import TrainArgs

    base = dict(batch_size=64, lr=3e-3, seed=0, quiet=True, threads=1)
    base.update(kw)
    return TrainArgs(**base)


@pytest.fixture(scope="session")
def gs_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("gcache"))


@pytest.fixture(scope="session")
def rgb_run(tmp_path_factory, cifar_train, micro_config_path) -> Path:
    """The RGB stage on 80 images per class of CIFAR-10's training split (72 train / 8 validation)."""
    from splatcodec.clip.train import train

    out = tmp_path_factory.mktemp("rgb")
    train(run_args(stage="rgb", data=str(cifar_train), out=str(out), model=micro_config_path, per_class=80,
                   epochs=8))
    return out


#: GS data of the tests: 16 Gaussians per 32x32 image, encoded at the lowest effort.
GS_SETTINGS = dict(num_gaussians=16, effort=1)


@pytest.fixture(scope="session")
def distill_run(tmp_path_factory, cifar_train, rgb_run, gs_cache) -> Path:
    from splatcodec.clip.train import train

    out = tmp_path_factory.mktemp("distill")
    train(run_args(stage="distill", data=str(cifar_train), out=str(out), init=str(rgb_run / "checkpoint.pt"),
                   per_class=24, epochs=3, gaussians=dict(GS_SETTINGS), cache_dir=gs_cache))
    return out


@pytest.fixture(scope="session")
def contrastive_run(tmp_path_factory, cifar_train, distill_run, gs_cache) -> Path:
    from splatcodec.clip.train import train

    out = tmp_path_factory.mktemp("contrastive")
    train(run_args(stage="contrastive", data=str(cifar_train), out=str(out), lr=1e-3,
                   init=str(distill_run / "checkpoint.pt"), per_class=24, epochs=3, unfreeze_blocks=1,
                   cache_dir=gs_cache))
    return out


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="session")
def helpers():
    """The helpers above for test modules (conftest is not importable from them by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(run_args=run_args, read_log=read_log, micro_config=micro_config,
                           gs_settings=dict(GS_SETTINGS), require_data=require_data)
