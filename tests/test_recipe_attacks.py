"""Smoke tests of recipes/attacks_*.py on random-init models and tiny synthetic data."""

from __future__ import annotations

import gzip
import json
import runpy
from pathlib import Path

import numpy as np

from cnnlens.results import jsonable

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def recipe(name: str):  # noqa: ANN201
    return runpy.run_path(str(RECIPES / name))["main"]


def write_idx(folder: Path, n: int = 12) -> None:
    rng = np.random.default_rng(0)
    images = (rng.random((n, 28, 28)) * 255).astype(np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    for name, arr in (("t10k-images-idx3-ubyte.gz", images), ("t10k-labels-idx1-ubyte.gz", labels)):
        head = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
        with gzip.open(folder / name, "wb") as f:
            f.write(head + arr.tobytes())


def test_mnist_robustness_recipe(tmp_path: Path) -> None:
    write_idx(tmp_path)
    out = tmp_path / "out"
    summary = recipe("attacks_mnist_robustness.py")(
        ["--data", str(tmp_path), "--weights", "none", "--eps", "0", "0.1", "0.3", "--steps", "2", "--limit", "10", "--out", str(out)]
    )
    assert (out / "curve.png").stat().st_size > 1000 and (out / "example_none.png").stat().st_size > 1000
    saved = json.loads((out / "curves.json").read_text())
    assert saved == jsonable(summary)  # NaN (no image correct at random init) is null in JSON
    (r,) = saved["results"]
    assert r["model"] == "mnist-cnn" and r["weights"] == "random init, seed 0"
    assert r["n"] == 10 and r["curves"]["fgsm"]["accuracy"][0] == r["clean_accuracy"]
    assert set(r["curves"]) == {"fgsm", "pgd"} and r["eps"] == [0.0, 0.1, 0.3]


def test_imagenet_flips_recipe(tmp_path: Path) -> None:
    import skimage.io

    rng = np.random.default_rng(0)
    lines = ["filename,class_index"]
    for i in range(3):
        skimage.io.imsave(tmp_path / f"im{i}.png", (rng.random((40, 50, 3)) * 255).astype(np.uint8), check_contrast=False)
        lines.append(f"im{i}.png,{i}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    summary = recipe("attacks_imagenet_flips.py")(
        ["--model", "squeezenet1_1", "--weights", "none", "--data", str(tmp_path), "--eps", "0.007", "--out", str(out)]
    )
    assert summary["n"] == 3 and len(summary["images"]) == 3 and summary["random_init"] is True
    assert (out / "confidence.png").is_file() and json.loads((out / "flips.json").read_text())["n"] == 3
    assert [r["label_name"] for r in summary["images"]] == ["tench", "goldfish", "great white shark"]
    assert all(0 <= r["label_probability_adversarial"] <= 1 for r in summary["images"])
