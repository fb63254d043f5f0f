"""`splatcodec clip train | zeroshot | retrieval | embed` on tiny real data; errors are one line."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import splatcodec
from splatcodec.cli import main

REPO = Path(__file__).resolve().parents[2]


def run(*args: str):
    result = CliRunner().invoke(main, ["clip", *args], catch_exceptions=False)
    return result


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_train_command_writes_a_run(tmp_path, cifar_train, micro_config_path):
    out = tmp_path / "run"
    result = run("train", str(cifar_train), "--stage", "rgb", "-o", str(out), "--model", micro_config_path,
                 "--per-class", "10", "--epochs", "2", "--batch-size", "32", "--threads", "1", "--quiet")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["epoch"] for r in lines] == [1, 2] and {"loss", "lr", "images_per_s", "val_top1"} <= set(lines[0])
    assert {p.name for p in out.iterdir()} >= {"checkpoint.pt", "resume.pt", "split.json", "args.json", "log.jsonl"}
    again = run("train", str(cifar_train), "--stage", "rgb", "-o", str(out), "--model", micro_config_path,
                "--per-class", "10", "--epochs", "2", "--batch-size", "32", "--quiet")
    assert again.exit_code == 1 and again.stderr.count("\n") == 1 and "--resume" in again.stderr
    from splatcodec.clip.__main__ import main as module_main

    assert module_main(["train", "--help"]) == 0
    assert module_main(["train", str(tmp_path / "absent"), "--stage", "rgb", "-o", str(tmp_path / "x")]) == 1
    assert module_main(["train"]) == 2


def test_zeroshot_rgb_and_gs_json(rgb_run, contrastive_run, cifar_test, tmp_path, helpers):
    rgb = _json(run("zeroshot", "--checkpoint", str(rgb_run / "checkpoint.pt"), "--per-class", "4", "--json",
                    str(cifar_test)))
    assert {"top1", "top5", "per_class"} <= set(rgb) and rgb["n"] == 40 and rgb["input"] == "rgb"
    cache = str(tmp_path / "cache")
    gs = _json(run("zeroshot", "--checkpoint", str(contrastive_run / "checkpoint.pt"), "--input", "gs",
                   "--per-class", "2", "--cache", cache, "--json", str(cifar_test)))
    # The GS checkpoint's encode settings are used (16 Gaussians), and bytes are real file bytes.
    assert gs["encode_settings"]["num_gaussians"] == helpers.gs_settings["num_gaussians"]
    assert gs["mean_gaussians"] <= 16 and 0 < gs["mean_bytes"] < 3072
    assert gs["compression"] == pytest.approx(3072 / gs["mean_bytes"])
    files = list(Path(cache).rglob("*.gsplat"))
    assert len(files) == 20 and gs["mean_bytes"] == pytest.approx(np.mean([f.stat().st_size for f in files]))
    override = _json(run("zeroshot", "--checkpoint", str(contrastive_run / "checkpoint.pt"), "--input", "gs",
                         "--per-class", "2", "--gaussians", "6", "--cache", cache, "--json", str(cifar_test)))
    assert override["mean_gaussians"] <= 6 and override["mean_bytes"] < gs["mean_bytes"]
    text = run("zeroshot", "--checkpoint", str(rgb_run / "checkpoint.pt"), "--per-class", "1", str(cifar_test))
    assert text.exit_code == 0 and "top1" in text.output and "airplane" in text.output


def test_zeroshot_reads_gsplat_folders(contrastive_run, cifar_test, tmp_path):
    from splatcodec.clip.data import image_folder, load_pixels, per_class_subset

    items = per_class_subset(image_folder(cifar_test, classes=["cat", "ship"]), 2).items
    for item, px in zip(items, load_pixels(items, 32)):
        folder = tmp_path / ("cat" if item.label == 0 else "ship")
        folder.mkdir(exist_ok=True)
        (folder / f"{Path(item.image).stem}.gsplat").write_bytes(
            splatcodec.encode(px, num_gaussians=12, effort=1, threads=1))
    result = _json(run("zeroshot", "--checkpoint", str(contrastive_run / "checkpoint.pt"), "--input", "gs", "--json",
                       str(tmp_path)))
    sizes = [p.stat().st_size for p in tmp_path.rglob("*.gsplat")]
    assert result["n"] == 4 and result["mean_bytes"] == pytest.approx(np.mean(sizes))
    assert "encode_settings" not in result  # nothing was encoded: the files were read


def test_retrieval_json(rgb_run, contrastive_run, flickr, tmp_path):
    rows = list(csv.DictReader(open(flickr / "captions.csv", newline="")))[:40]  # 8 images x 5 captions
    path = tmp_path / "captions.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["image", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    r = _json(run("retrieval", "--checkpoint", str(rgb_run / "checkpoint.pt"), "--images", str(flickr / "images"),
                  "--json", str(path)))
    assert r["images"] == 8 and r["texts"] == 40
    for d in ("i2t", "t2i"):
        assert 0 <= r[f"{d}_r@1"] <= r[f"{d}_r@5"] <= r[f"{d}_r@10"]
    assert r["t2i_r@10"] == 1.0 and r["chance_t2i_r@1"] == 1 / 8  # 10 >= 8 images: every image is found
    gs = _json(run("retrieval", "--checkpoint", str(contrastive_run / "checkpoint.pt"), "--images",
                   str(flickr / "images"), "--input", "gs", "--cache", str(tmp_path / "c"), "--json", str(path)))
    assert gs["mean_bytes"] > 0 and gs["compression"] > 1


def test_embed_writes_the_api_embeddings(contrastive_run, cifar_test, tmp_path):
    from splatcodec.clip import load
    from splatcodec.clip.data import image_folder, per_class_subset

    items = per_class_subset(image_folder(cifar_test), 1).items[:3]
    gs_files = []
    for i, item in enumerate(items):
        path = tmp_path / f"{i}.gsplat"
        splatcodec.save(path, splatcodec.image_io.read_image(item.image)[0], num_gaussians=10, effort=1, threads=1)
        gs_files.append(str(path))
    out = tmp_path / "emb.npy"
    result = run("embed", *gs_files, items[0].image, "--checkpoint", str(contrastive_run / "checkpoint.pt"),
                 "-o", str(out), "--json")
    info = _json(result)
    assert info["shape"] == [4, 64] and info["input"] == ["gs", "gs", "gs", "rgb"]
    emb = np.load(out)
    model = load(contrastive_run / "checkpoint.pt")
    np.testing.assert_allclose(emb[:3], model.encode_splats(gs_files), atol=1e-6)
    np.testing.assert_allclose(emb[3], model.encode_image([items[0].image])[0], atol=1e-6)
    both = run("embed", items[0].image, "--input", "gs", "--checkpoint", str(contrastive_run / "checkpoint.pt"),
               "-o", str(tmp_path / "g.npy"))
    assert both.exit_code == 0 and np.load(tmp_path / "g.npy").shape == (1, 64)


def test_errors_are_one_line(tmp_path, cifar_test):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"garbage")
    for args in (["zeroshot", "--checkpoint", str(junk), str(cifar_test)],
                 ["embed", str(junk), "--checkpoint", str(junk), "-o", str(tmp_path / "e.npy")],
                 ["zeroshot", "--checkpoint", str(tmp_path / "absent.pt"), str(cifar_test)],
                 ["train", str(tmp_path), "--stage", "distill", "-o", str(tmp_path / "o")],
                 ["train", str(tmp_path), "--stage", "contrastive", "--init", str(junk), "--token-distill", "1",
                  "-o", str(tmp_path / "o")]):
        result = run(*args)
        assert result.exit_code in (1, 2), result.output
        assert result.stderr.startswith("splatcodec: error:") and result.stderr.count("\n") == 1, result.stderr


def test_program_runs_offline_and_help_does_not_import_torch(rgb_run, cifar_test):
    """A fresh process (MiniLM loaded from scratch) with sockets disabled still classifies."""
    guard = ("import socket\n"
             "def refuse(*a, **k): raise SystemExit('network access attempted')\n"
             "socket.socket.connect = refuse; socket.create_connection = refuse; socket.getaddrinfo = refuse\n")
    code = guard + ("import sys; from splatcodec.cli import main; sys.argv = ['splatcodec'] + sys.argv[1:]; main()")
    out = subprocess.run([sys.executable, "-c", code, "clip", "zeroshot", "--checkpoint", str(rgb_run / "checkpoint.pt"),
                          "--per-class", "1", "--json", str(cifar_test)], capture_output=True, text=True, cwd=REPO,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["n"] == 10
    code = "import sys; from splatcodec.cli import main; main(['--help'])"
    check = "import sys, runpy\ntry:\n    " + code + "\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.stdout.strip().endswith("False") and "clip" in out.stdout, out.stderr
