from __future__ import annotations

import runpy
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "report_receptive_fields.py"


def test_recipe_runs(tmp_path: Path) -> None:
    main = runpy.run_path(str(RECIPE))["main"]
    summary = main(["vgg16", "lenet5", "--out", str(tmp_path)])
    assert summary["vgg16"]["params"] == 138_357_544
    assert (tmp_path / "receptive_fields.png").stat().st_size > 10_000
    assert (tmp_path / "cost.png").is_file() and (tmp_path / "reports.json").is_file()
