"""Smoke test of recipes/microscope_site.py on a random-init model file, tiny sizes and synthetic images."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import torch

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "microscope_site.py"


def test_recipe_runs_on_random_init(tmp_path: Path, file_model: str) -> None:
    import skimage.io

    import cnnlens

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        skimage.io.imsave(imgs / f"{i}.png", (rng.random((36, 40, 3)) * 255).astype(np.uint8), check_contrast=False)
    weights = tmp_path / "w.pth"
    torch.save(cnnlens.create_model(file_model, seed=1).state_dict(), weights)
    main = runpy.run_path(str(RECIPE))["main"]
    out = tmp_path / "out"
    args = ["--model", file_model, "--weights", str(weights), "--data", str(imgs), "--layers", "features.0", "features.3", "--units", "2",
            "--steps", "2", "--featvis-size", "32", "--attribution", "1", "--out", str(out)]  # fmt: skip
    summary = main(args)
    assert summary["layers"] == ["features.0", "features.3"] and summary["images"] == 4
    for name in ("trained", "random init"):
        assert len(summary[name]) == 2
        assert all(0.0 <= r["dead_share"] <= 1.0 for r in summary[name])
        assert all(r["simple"] + r["complex"] + r["unselective"] == 1.0 for r in summary[name])
    assert summary["trained"] != summary["random init"]  # seeds 1 and 0
    assert (out / "trained" / "index.html").is_file() and (out / "random" / "units" / "features.3" / "1.html").is_file()
    for name in ("featvis_trained.png", "comparison.png"):
        assert (out / name).stat().st_size > 10_000
    assert json.loads((out / "summary.json").read_text())["layers"] == summary["layers"]
    assert summary["layers_mined_now"] == {"trained": ["features.0", "features.3"], "random init": ["features.0", "features.3"]}
    again = main(args)  # a second run reuses both sites
    assert again["layers_mined_now"] == {"trained": [], "random init": []} and again["trained"] == summary["trained"]
