"""Smoke test of recipes/representations_by_depth.py on a random-init model and 24 synthetic images
named and labelled like ImageNet's (a labels.csv of class indices)."""

from __future__ import annotations

import csv
import json
import runpy
from pathlib import Path

import numpy as np
import torch

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "representations_by_depth.py"


def test_recipe_runs_on_random_init(tmp_path: Path) -> None:
    import skimage.io

    import cnnlens

    data = tmp_path / "imgs"
    data.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        klass = 5 + i if i % 2 else 500 + i  # half animals (0-397), half not
        image = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
        image[:, :, 0 if i % 2 else 2] //= 4
        name = f"n{i:08d}_img{i}.png"
        skimage.io.imsave(data / name, image, check_contrast=False)
        rows.append([name, klass])
    with (data / "labels.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["filename", "class_index"], *rows])
    weights = tmp_path / "w.pth"
    torch.save(cnnlens.create_model("squeezenet1_0", seed=1).state_dict(), weights)
    out = tmp_path / "out"
    summary = runpy.run_path(str(RECIPE))["main"](
        ["--weights", str(weights), "--data", str(data), "--layers", "features.3", "features.7", "logits", "--batch-size", "8", "--out", str(out)]
    )
    assert summary["images"] == 24 and summary["layers"] == ["features.3", "features.7", "logits"]
    assert 0 < summary["cka_first_last"] < 1 and set(summary["cka_trained_vs_random_same_layer"]) == {"features.3", "features.7", "logits"}
    assert summary["probe_chance"] == 0.5 and len(summary["probe_accuracy_random_init"]) == 3
    for name in ("cka_trained.png", "cka_trained_vs_random.png", "probe.png", "embed.png"):
        assert (out / name).stat().st_size > 10_000
    assert json.loads((out / "summary.json").read_text())["probe_accuracy"] == summary["probe_accuracy"]
