from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import torch


RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "units_filters_patches_deconv.py"


def test_recipe_runs_on_random_init(tmp_path: Path) -> None:
    import skimage.io

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        skimage.io.imsave(imgs / f"{i}.png", (rng.random((50, 60, 3)) * 255).astype(np.uint8), check_contrast=False)
    weights = tmp_path / "w.pth"
    import cnnlens

    torch.save(cnnlens.create_model("squeezenet1_0", None).state_dict(), weights)
    main = runpy.run_path(str(RECIPE))["main"]
    out = tmp_path / "out"
    summary = main(["--weights", str(weights), "--data", str(imgs), "--layer", "features.4", "--limit", "4", "--top", "2", "--channels", "2", "--size", "48", "--out", str(out)])
    assert summary["images"] == 4 and len(summary["channels"]) == 2
    assert summary["replay_max_relative_error"] < 1e-4
    assert summary["receptive_field"] == {"size": [27, 27], "stride": [4, 4], "padding": [8, 8]}
    for name in ("filters.png", "gabor_r2.png", "zeiler_fergus.png"):
        assert (out / name).stat().st_size > 5_000
    index = json.loads((out / "patches.json").read_text())
    assert index["deconv_method"] == "deconvnet" and len(index["channels"][0]["patches"]) == 2
