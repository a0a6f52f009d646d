"""`report()` as a result, and `cnnlens report`, `layers`, `models`: formats, files, every registry
source, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.figure
import pytest
import torch
from click.testing import CliRunner

import cnnlens
from cnnlens.cli import cli
from cnnlens.registry import get_entry, list_models

NET_PY = '''
import torch.nn as nn


class Net(nn.Module):
    input_size = (3, 32, 32)
    mean = (0.5, 0.5, 0.5)
    std = (0.25, 0.25, 0.25)
    categories = ("cat", "dog")

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.pool(self.conv(x).relu()).flatten(1))
'''


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def net_file(tmp_path: Path) -> str:
    path = tmp_path / "net.py"
    path.write_text(NET_PY)
    return f"{path}:Net"


# -- the Report result ---------------------------------------------------------------------------------


def test_report_is_a_result_with_a_short_repr() -> None:
    r = cnnlens.report("vgg16")
    assert isinstance(r, cnnlens.Result)
    assert repr(r) == "Report(vgg16, 1x3x224x224, 138.4M params, 15.5 GMACs)"
    assert repr(cnnlens.report("lenet5")) == "Report(lenet5, 1x1x32x32, 61.7K params, 416.5 KMACs)"


def test_repr_html_holds_the_numbers() -> None:
    r = cnnlens.report("resnet18")
    page = r._repr_html_()
    assert page.startswith("<div>") and "<table>" in page
    assert "11,689,512" in page  # total parameters
    assert f"{r.totals.macs:,}" in page and f"{r.totals.activation_bytes:,} bytes" in page
    assert f"<td style='text-align:right'>{r['layer4'].params:,}</td>" in page  # a row's parameters
    assert f"{r['conv1'].macs:,}" in page and "435 / 32 / 217" in page  # a row's MACs, layer4's receptive field


def test_to_dict_names_the_model_and_its_source() -> None:
    d = cnnlens.report("mnist-cnn").to_dict()
    assert (d["model"], d["source"], d["input_size"]) == ("mnist-cnn", "mnist", [1, 1, 28, 28])
    model = cnnlens.create_model("lenet5", seed=3)
    d = cnnlens.report(model).to_dict()
    assert (d["model"], d["source"], d["weights"], d["random_init"]) == ("lenet5", "teaching", "random init, seed 3", True)
    assert d["input_size"] == [1, 1, 32, 32]  # the registered size of a created model
    import torch.nn as nn

    d = cnnlens.report(nn.Sequential(nn.Conv2d(3, 4, 3))).to_dict()
    assert (d["model"], d["source"], d["input_size"]) == ("Sequential", "module", [1, 3, 224, 224])
    json.dumps(d, allow_nan=False)


@pytest.mark.parametrize(
    ("size", "expected"), [(None, (1, 64, 56, 56)), (20, (1, 64, 20, 20)), ((40, 48), (1, 64, 40, 48)), ((64, 9, 9), (1, 64, 9, 9)), ((4, 64, 9, 9), (4, 64, 9, 9))]
)
def test_input_size_forms_in_the_api(size: object, expected: tuple[int, ...]) -> None:
    """One side or (H, W) take the model's channels (three-3x3 works on 64 feature maps)."""
    r = cnnlens.report("three-3x3", size)
    assert r.input_size == expected and r["2"].output_shape == [expected[0], 64, *expected[2:]]


@pytest.mark.parametrize("bad", [0, -3, (1, 2, 3, 4, 5), "abc", 2.5, (0, 32)])
def test_bad_input_size_names_the_parameter(bad: object) -> None:
    with pytest.raises(cnnlens.CnnlensError, match="^input_size must be") as err:
        cnnlens.report("lenet5", bad)
    assert err.value.param == "input_size"


def test_bad_arguments_are_refused_before_work() -> None:
    with pytest.raises(cnnlens.CnnlensError, match=r"^optimizer 'adm' unknown \(did you mean: adam"):
        cnnlens.report("lenet5", optimizer="adm")
    with pytest.raises(cnnlens.CnnlensError, match="^depth must be >= 1, not 0"):
        cnnlens.report("lenet5", depth=0)
    with pytest.raises(cnnlens.CnnlensError, match="^model must be a model name or an nn.Module, not int"):
        cnnlens.report(3)  # type: ignore[arg-type]
    with pytest.raises(cnnlens.CnnlensError, match=r"^input_size: lenet5 cannot run on input 1x1x64x64 \(its usual input is 1x32x32\)"):
        cnnlens.report("lenet5", 64)
    with pytest.raises(cnnlens.CnnlensError, match=r"^input_size: vgg16 cannot run on input 1x3x16x16 \(below its minimum 32x32\)"):
        cnnlens.report("vgg16", 16)


def test_figure_and_save_by_suffix(tmp_path: Path) -> None:
    r = cnnlens.report("lenet5")
    fig = r.figure()
    assert isinstance(fig, matplotlib.figure.Figure)
    assert fig._suptitle.get_text() == "lenet5: input 1x1x32x32, 61.7K params, 416.5 KMACs"
    bars = [p.get_height() for p in fig.axes[0].patches]
    assert len(bars) == 12 and bars[0] == pytest.approx(6 * 28 * 28 * 4 / 1e3)  # C1's output in kB
    assert [t.get_text() for t in fig.axes[2].get_xticklabels()][:2] == ["0 (Conv2d)", "1 (Tanh)"]
    assert [row.name for row in cnnlens.report("vgg16", depth=1).figure_rows()] == ["features", "avgpool", "classifier"]
    for suffix, start in [(".json", "{"), (".csv", "name,type,output_shape"), (".md", "| layer |"), (".txt", "layer  ")]:
        path = r.save(tmp_path / f"r{suffix}")
        assert path.read_text().startswith(start)
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(r.to_dict()))
    assert (tmp_path / "r.csv").read_text() == r.to_csv() and (tmp_path / "r.md").read_text() == r.to_markdown()
    assert r.save(tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(cnnlens.CnnlensError, match="unknown suffix '.xyz'"):
        r.save(tmp_path / "r.xyz")
    with pytest.raises(cnnlens.CnnlensError, match="exists"):
        r.save(tmp_path / "r.csv")
    assert not (tmp_path / "r.xyz").exists()


def test_a_torchscript_module_is_refused_in_one_line() -> None:
    """A scripted model takes no forward hooks: the report says so and names the fix, instead of blaming
    the input size."""
    scripted = torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()))
    with pytest.raises(cnnlens.CnnlensError, match=r"^model is a TorchScript module.*scripted from$"):
        cnnlens.report(scripted, 16)


def test_tied_weights_and_parameter_views() -> None:
    """Tied weights are counted once and run (functional_call needs one stand-in for them); a parameter
    used through a view (timm's attention-pool latents) does not trip FlopCounterMode's module tracker."""
    import torch
    import torch.nn as nn

    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)
            self.b.weight = self.a.weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x.flatten(1)))

    tied = Tied().train()
    r = cnnlens.report(tied, (1, 1, 2, 2))
    assert r.totals.params == 16 + 4 + 4 and r.totals.macs == 2 * 16 and r.totals.saved_for_backward_bytes == 2 * 4 * 4
    assert tied.training and tied.a.weight.requires_grad and tied.a.weight.device.type == "cpu"

    class Latents(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.latent, self.q = nn.Parameter(torch.zeros(1, 2, 8)), nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.q(self.latent.expand(x.shape[0], -1, -1)).mean(1) + x.mean((1, 2, 3))[:, None]

    net = nn.Sequential(nn.Conv2d(3, 1, 3), Latents())
    assert cnnlens.report(net, (1, 3, 8, 8)).totals.macs == 3 * 9 * 6 * 6 + 2 * 8 * 8


PROBE_PY = """
import torch
import torch.nn as nn


class Probe(nn.Module):
    input_size = (3, 8, 8)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.scale = float(self.conv.weight.std())  # reads a value while building: impossible on the meta device
        self.fc = nn.Linear(144, 2)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))
"""


def test_a_builder_that_reads_values_is_built_off_the_meta_device(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(PROBE_PY)
    r = cnnlens.report(f"{tmp_path / 'probe.py'}:Probe")
    assert r.totals.params == 4 * 27 + 4 + 144 * 2 + 2 and r.totals.macs == 4 * 27 * 36 + 144 * 2
    assert r.to_dict()["weights"] == "random init"


def test_report_is_the_function_and_reports_the_package() -> None:
    import inspect

    assert cnnlens.report is cnnlens.reports.report and cnnlens.reports.Report is cnnlens.Report
    assert inspect.isfunction(cnnlens.report) and not isinstance(cnnlens.report, type(cnnlens))
    assert list(inspect.signature(cnnlens.report).parameters)[:2] == ["model", "input_size"]


# -- cnnlens report --------------------------------------------------------------------------------------


def test_report_json_schema() -> None:
    code, out, _ = run("report", "resnet18", "--json")
    assert code == 0
    data = json.loads(out)
    assert data == json.loads(json.dumps(cnnlens.report("resnet18").to_dict()))
    assert (data["model"], data["source"]) == ("resnet18", "torchvision")
    assert set(data["totals"]) >= {"params", "trainable_params", "macs", "flops", "activation_bytes", "training_bytes_estimate"}
    assert data["totals"]["params"] == 11_689_512
    row = next(r for r in data["layers"] if r["name"] == "layer4")
    assert set(row) >= {"name", "type", "output_shape", "params", "macs", "flops", "output_bytes", "receptive_field", "dense_equivalent_params"}
    assert row["receptive_field"] == {"size": [435, 435], "stride": [32, 32], "padding": [217, 217]}
    assert next(r for r in data["layers"] if r["name"] == "fc")["receptive_field"] == "global"


def _real_params(name: str) -> int:
    return sum(p.numel() for p in cnnlens.create_model(name, seed=0).parameters())


@pytest.mark.parametrize("name", ["resnet18", "lenet5", "mnist-cnn", "file", "timm/resnet18"])
def test_report_takes_every_source(name: str, net_file: str) -> None:
    if name.startswith("timm/"):
        pytest.importorskip("timm")
    if name == "file":
        name = net_file
    entry = get_entry(name)
    code, out, err = run("report", name, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["model"], data["source"]) == (entry.name, entry.source)
    assert data["input_size"] == [1, *entry.input_size]
    assert data["totals"]["params"] == _real_params(name)
    code, out, _ = run("layers", name, "--json")
    assert code == 0 and json.loads(out)["layers"][0]["name"] in {"conv1", "0", "conv"}


def test_report_table_depth_and_footer() -> None:
    code, out, _ = run("report", "vgg16", "--depth", "1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["layer", "type"]
    assert [line.split()[0] for line in lines[2:5]] == ["features", "avgpool", "classifier"]
    assert "vgg16, input 1 x 3 x 224 x 224" in out and "params: 138,357,544" in out and "FLOPs = 2 x MACs" in out


@pytest.mark.parametrize(
    ("size", "expected"),
    [("224", [1, 3, 224, 224]), ("200x180", [1, 3, 200, 180]), ("3x227x227", [1, 3, 227, 227]), ("2x3x64x64", [2, 3, 64, 64])],
)
def test_input_size_forms(size: str, expected: list[int]) -> None:
    code, out, _ = run("report", "alexnet", "--input-size", size, "--json")
    assert code == 0 and json.loads(out)["input_size"] == expected


def test_one_side_keeps_the_models_channels() -> None:
    code, out, _ = run("report", "three-3x3", "--input-size", "20", "--json")
    assert code == 0 and json.loads(out)["input_size"] == [1, 64, 20, 20]


def test_csv_and_markdown() -> None:
    code, out, _ = run("report", "lenet5", "--format", "csv")
    assert code == 0 and out.splitlines()[1].startswith("0,Conv2d,1x6x28x28,156,117600,")
    code, out, _ = run("report", "lenet5", "--format", "markdown")
    assert code == 0 and out.startswith("| layer |") and "| `0` | Conv2d | 6 x 28 x 28 | 156 |" in out


@pytest.mark.parametrize("suffix", [".json", ".csv", ".md", ".txt", ".png", ".svg"])
def test_output_file_by_suffix(tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"r{suffix}"
    code, out, err = run("report", "lenet5", "-o", str(target))
    assert code == 0 and out == "" and f"wrote {target}" in err
    r = cnnlens.report("lenet5")
    expected = {".json": r.to_json() + "\n", ".csv": r.to_csv(), ".md": r.to_markdown(), ".txt": r.to_text()}
    if suffix in expected:
        assert target.read_text() == expected[suffix]
    else:
        assert target.stat().st_size > 5_000


def test_json_and_output_together(tmp_path: Path) -> None:
    target = tmp_path / "r.csv"
    code, out, _ = run("report", "lenet5", "--json", "-o", str(target))
    assert code == 0 and json.loads(out)["totals"]["params"] == 61_706 and target.read_text().startswith("name,")


def test_output_is_checked_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "r.json"
    assert run("report", "squeezenet1_0", "-o", str(target))[0] == 0
    first = target.read_text()

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("report ran before the output was checked")

    monkeypatch.setattr("cnnlens.reports.report", no_work)
    code, _, err = run("report", "squeezenet1_0", "-o", str(target))
    assert code == 2 and "exists" in err and "--overwrite" in err and target.read_text() == first
    (tmp_path / "afile").write_text("x")
    for bad in (tmp_path / "r.xyz", tmp_path / "afile" / "r.csv", tmp_path / "r"):
        code, _, err = run("report", "squeezenet1_0", "-o", str(bad))
        assert code == 2 and err.startswith("Error: --output") and len(err.strip().splitlines()) == 1
        assert not bad.exists()
    monkeypatch.undo()
    assert run("report", "squeezenet1_1", "-o", str(target), "--overwrite")[0] == 0
    assert json.loads(target.read_text())["model"] == "squeezenet1_1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "resnet5"], "unknown model 'resnet5' (did you mean: resnet50"),
        (["report", "lenet"], "did you mean: lenet5"),
        (["report", "timm/resnet1"], "did you mean: resnet18"),
        (["report", "nowhere.py:Net"], "model file not found"),
        (["report", "vgg16", "--input-size", "3x"], "--input-size '3x': use 224"),
        (["report", "vgg16", "--input-size", "abc"], "--input-size 'abc'"),
        (["report", "vgg16", "--input-size", "8"], "--input-size: vgg16 cannot run on input 1x3x8x8 (below its minimum 32x32)"),
        (["report", "vgg16", "--format", "json"], "JSON is --json"),
        (["report", "vgg16", "--format", "tabel"], "did you mean: table"),
        (["report", "vgg16", "--format", "csv", "--json"], "give one"),
        (["report", "vgg16", "--format", "csv", "-o", "x.md"], "disagree"),
        (["report", "vgg16", "--optimizer", "adm"], "--optimizer 'adm' unknown (did you mean: adam"),
        (["report", "vgg16", "--depth", "0"], "--depth must be >= 1, not 0"),
        (["layers", "vgg1"], "did you mean"),
        (["models", "zzzqqq"], "no model name matches 'zzzqqq'"),
        (["models", "--source", "teach"], "source 'teach' unknown (did you mean: teaching?)"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    code, out, err = run(*args)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1 and err.startswith("Error: ")


# -- cnnlens layers and models -----------------------------------------------------------------------------


def test_layers_lists_names_and_shapes() -> None:
    code, out, _ = run("layers", "resnet18", "--depth", "2")
    assert code == 0
    assert any(line.split()[:2] == ["layer4.1", "BasicBlock"] and line.endswith("512 x 7 x 7") for line in out.splitlines())
    code, out, _ = run("layers", "googlenet", "--json")
    data = json.loads(out)
    assert (data["model"], data["source"], data["input_size"]) == ("googlenet", "torchvision", [1, 3, 224, 224])
    assert {"inception5b", "aux1"} <= {r["name"] for r in data["layers"]}
    assert next(r for r in data["layers"] if r["name"] == "inception5b")["output_shape"] == [1, 1024, 7, 7]


def test_models_json_lists_every_name() -> None:
    code, out, _ = run("models", "--json")
    assert code == 0
    data = json.loads(out)
    assert [d["name"] for d in data] == list_models()
    by_name = {d["name"]: d for d in data}
    for d in data:
        assert set(d) >= {"name", "source", "input_size", "min_size", "pretrained", "kind"}
        assert d == get_entry(d["name"]).to_dict()
    assert (by_name["resnet18"]["source"], by_name["resnet18"]["input_size"], by_name["resnet18"]["pretrained"]) == ("torchvision", [3, 224, 224], True)
    assert (by_name["lenet5"]["source"], by_name["lenet5"]["input_size"], by_name["lenet5"]["pretrained"]) == ("teaching", [1, 32, 32], False)
    assert (by_name["mnist-cnn"]["source"], by_name["mnist-cnn"]["min_size"]) == ("mnist", [28, 28])
    assert by_name["inception_v3"]["input_size"] == [3, 299, 299] and by_name["three-3x3"]["kind"] == "tensor"


def test_models_json_lists_timm_when_installed() -> None:
    pytest.importorskip("timm")
    code, out, _ = run("models", "timm/resnet1?", "--json")
    data = {d["name"]: d for d in json.loads(out)}
    assert code == 0 and data["timm/resnet18"]["source"] == "timm" and data["timm/resnet18"]["pretrained"] is True


def test_models_table_pattern_and_source() -> None:
    code, out, _ = run("models", "vgg1?")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["name", "source", "input"]
    assert [line.split()[0] for line in lines[1:]] == ["vgg11", "vgg13", "vgg16", "vgg19"]
    assert lines[1].split()[1:5] == ["torchvision", "3x224x224", "32x32", "yes"]
    code, out, _ = run("models", "--source", "teaching")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["alexnet-paper", "lenet5", "mlp-mnist", "three-3x3", "one-7x7"]
    code, out, _ = run("models", "mnist")  # a plain word matches anywhere in the name
    assert code == 0 and {"mnist-cnn", "mlp-mnist"} <= {line.split()[0] for line in out.splitlines()[1:]}


def test_help_has_examples_and_imports_no_torch() -> None:
    for command in ("models", "layers", "report"):
        code, out, _ = run(command, "--help")
        assert code == 0 and "Examples:" in out and f"cnnlens {command}" in out
    proc = subprocess.run([sys.executable, "-m", "cnnlens", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "report" in proc.stdout
    code = "import sys, cnnlens.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0  # --help imports no torch
