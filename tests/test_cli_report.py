"""`cnnlens report`, `layers`, `models`: formats, files, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnnlens.cli import cli


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_report_json_schema() -> None:
    code, out, _ = run("report", "resnet18", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert set(data["totals"]) >= {"params", "trainable_params", "macs", "flops", "activation_bytes", "training_bytes_estimate"}
    assert data["totals"]["params"] == 11_689_512
    row = next(r for r in data["layers"] if r["name"] == "layer4")
    assert set(row) >= {"name", "type", "output_shape", "params", "macs", "flops", "output_bytes", "receptive_field", "dense_equivalent_params"}
    assert row["receptive_field"] == {"size": [435, 435], "stride": [32, 32], "padding": [217, 217]}
    assert next(r for r in data["layers"] if r["name"] == "fc")["receptive_field"] == "global"
    assert {"features", "layer4"} & {r["name"] for r in data["layers"]}  # containers have rows


def test_report_table_depth_and_footer() -> None:
    code, out, _ = run("report", "vgg16", "--depth", "1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["layer", "type"]
    names = [line.split()[0] for line in lines[2:5]]
    assert names == ["features", "avgpool", "classifier"]
    assert "params: 138,357,544" in out
    assert "FLOPs = 2 x MACs" in out


@pytest.mark.parametrize(("size", "expected"), [("224", [1, 3, 224, 224]), ("3x227x227", [1, 3, 227, 227]), ("2x3x64x64", [2, 3, 64, 64])])
def test_input_size_forms(size: str, expected: list[int]) -> None:
    code, out, _ = run("report", "alexnet", "--input-size", size, "--format", "json")
    assert code == 0 and json.loads(out)["input_size"] == expected


def test_csv_and_markdown() -> None:
    code, out, _ = run("report", "lenet5", "--format", "csv")
    assert code == 0 and out.splitlines()[1].startswith("0,Conv2d,1x6x28x28,156")
    code, out, _ = run("report", "lenet5", "--format", "markdown")
    assert code == 0 and out.startswith("| layer |")


def test_output_file_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    assert run("report", "squeezenet1_0", "--format", "json", "-o", str(target))[0] == 0
    first = target.read_text()
    code, _, err = run("report", "squeezenet1_0", "-o", str(target))
    assert code == 2 and "exists" in err and target.read_text() == first
    assert run("report", "squeezenet1_0", "-o", str(target), "--overwrite")[0] == 0
    assert target.read_text() != first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "resnet5"], "did you mean: resnet50"),
        (["report", "vgg16", "--input-size", "3x"], "bad --input-size"),
        (["report", "vgg16", "--input-size", "abc"], "bad --input-size"),
        (["report", "vgg16", "--input-size", "8"], "cannot run on input"),
        (["layers", "vgg1"], "did you mean"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    code, out, err = run(*args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and err.startswith("Error: ")


def test_layers_lists_names_and_shapes() -> None:
    code, out, _ = run("layers", "resnet18", "--depth", "2")
    assert code == 0
    assert any(line.split()[:2] == ["layer4.1", "BasicBlock"] and line.endswith("512 x 7 x 7") for line in out.splitlines())
    code, out, _ = run("layers", "googlenet", "--json")
    names = {r["name"] for r in json.loads(out)}
    assert {"inception5b", "aux1"} <= names


def test_models_lists_torchvision_and_teaching_models() -> None:
    code, out, _ = run("models")
    assert code == 0 and {"vgg16", "regnet_y_128gf", "lenet5", "alexnet-paper"} <= set(out.split())


def test_python_dash_m_and_fast_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "cnnlens", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "report" in proc.stdout
    code = "import sys, cnnlens.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0  # --help imports no torch
