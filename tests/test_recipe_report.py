from __future__ import annotations

import csv
import json
import runpy
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "report_receptive_fields.py"


def test_recipe_runs(tmp_path: Path) -> None:
    main = runpy.run_path(str(RECIPE))["main"]
    summary = main(["vgg16", "lenet5", "mnist-cnn", "--out", str(tmp_path)])
    assert summary["vgg16"]["params"] == 138_357_544 and summary["vgg16"]["source"] == "torchvision"
    assert summary["lenet5"] == {**summary["lenet5"], "params": 61_706, "source": "teaching", "input_size": [1, 1, 32, 32]}
    assert summary["mnist-cnn"]["source"] == "mnist"
    assert (tmp_path / "receptive_fields.png").stat().st_size > 10_000
    assert (tmp_path / "cost.png").is_file()
    assert json.loads((tmp_path / "reports.json").read_text()) == summary
    rows = list(csv.DictReader((tmp_path / "tables" / "lenet5.csv").open()))
    assert (rows[0]["name"], rows[0]["params"], rows[0]["rf_size"]) == ("0", "156", "5x5")
