"""Every model command on one model of each registry source, with ``-w none --seed S`` and tiny sizes:
the command runs (or refuses in one line where docs/models.md says it does not apply), and under the
same seed it writes identical bytes, under another seed other numbers (the random initialisation
included). The run under the other seed prints its JSON only (no figure is drawn), except the
microscope, whose output is its site: 150 full runs instead of 210."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cnnlens.cli import cli
from cnnlens.images import save_image

# one model of each source; the file model is the `file_model` fixture
SOURCES = ["squeezenet1_0", "lenet5", "mnist-cnn", "file", "timm/resnet18"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("matrix")
    g = torch.Generator().manual_seed(0)
    photo = save_image(torch.rand(3, 40, 48, generator=g), root / "photo.png")
    style = save_image(torch.rand(3, 40, 40, generator=g), root / "style.png")
    flat = root / "flat"
    labelled = root / "labelled"
    for i in range(4):
        save_image(torch.rand(3, 36, 36, generator=g), flat / f"img{i}.png")
        save_image(torch.rand(3, 36, 36, generator=g), labelled / str(i % 2) / f"img{i}.png")
    return {"photo": photo, "style": style, "flat": flat, "labelled": labelled}


def _commands(model: str, f: dict[str, Path], out: Path) -> dict[str, list[str]]:
    seedless = {"layers": ["layers", model], "report": ["report", model, "--json"]}
    w = ["-w", "none"]
    return {
        **seedless,
        "filters": ["filters", model, *w, "-o", out / "filters.png", "--json"],
        "patches": ["patches", model, *w, "--data", f["flat"], "-k", "2", "--num-channels", "2", "-b", "2", "-o", out / "patches.png", "--json"],
        "deconv": ["deconv", model, f["photo"], *w, "-o", out / "deconv.png", "--json"],
        "visualize": ["visualize", model, *w, "-u", "logits:1", "--steps", "2", "--size", "32", "-o", out / "vis.png", "--image", out / "vis-grid.png", "--json"],
        "dream": ["dream", f["photo"], "-m", model, *w, "--steps", "2", "--octaves", "2", "--size", "32", "--image", out / "dream.png", "--json"],
        "style": ["style", f["photo"], f["style"], "-m", model, *w, "--steps", "2", "--size", "32", "--init", "noise", "-o", out / "style.png", "--image", out / "style-image.png", "--json"],
        "invert": ["invert", f["photo"], "-m", model, *w, "--steps", "2", "--size", "32", "-o", out / "invert.png", "--image", out / "invert-image.png", "--json"],
        "fgsm": ["fgsm", model, f["photo"], *w, "--steps", "2", "--random-start", "--eps", "0.05", "-o", out / "fgsm.png", "--image", out / "fgsm-adv.png", "--json"],
        "robustness": ["robustness", model, "--data", f["labelled"], *w, "--eps", "0,0.05", "--attack", "pgd", "--steps", "2", "-b", "2", "-o", out / "robustness.png", "--json"],
        "attribute": ["attribute", model, f["photo"], *w, "--method", "gradcam", "--method", "smoothgrad", "--smoothgrad-samples", "2", "-o", out / "attribute.png", "--json"],
        "tuning": ["tuning", model, *w, "--orientations", "4", "--num-frequencies", "2", "--phases", "4", "-o", out / "tuning.png", "--json"],
        "hierarchy": ["hierarchy", model, *w, "--orientations", "4", "--num-frequencies", "2", "--phases", "4", "--size", "48", "--no-baseline", "-o", out / "hierarchy.png", "--json"],
        "invariance": ["invariance", model, "--data", f["flat"], *w, "--limit", "2", "--size", "48", "--no-baseline", "-o", out / "invariance.png", "--json"],
        "microscope": ["microscope", model, *w, "--data", f["flat"], "-o", out / "site", "--units", "1", "-k", "1", "--steps", "1", "--featvis-size", "32",
                       "--no-tuning", "--no-circuits", "--no-relevance", "--attribution", "0", "--method", "none", "--limit", "2", "--json"],
    }


COMMANDS = [
    "layers", "report", "filters", "patches", "deconv", "visualize", "dream", "style", "invert", "fgsm", "robustness",
    "attribute", "tuning", "hierarchy", "invariance", "microscope",
]


def _run(args: list[object]) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _numbers_only(args: list[object]) -> list[object]:
    """``args`` without the files they write (``-o F``, ``--image F``): the command prints its JSON only."""
    out: list[object] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-o", "--image"):
            skip = True
            continue
        out.append(a)
    return out


def _outputs(folder: Path) -> dict[str, bytes]:
    """Every file written (a site is a folder of files), by its path in ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("source", SOURCES)
def test_every_command_on_every_source_repeats_under_its_seed(
    source: str, command: str, folders: dict[str, Path], file_model: str, tmp_path: Path
) -> None:
    if source.startswith("timm/"):
        pytest.importorskip("timm")
    model = file_model if source == "file" else source
    runs: dict[str, tuple[str, dict[str, bytes]]] = {}
    seeds = {"a": 0, "b": 0, "c": 1} if command not in ("layers", "report") else {"a": 0}
    for tag, seed in seeds.items():
        out = tmp_path / tag
        out.mkdir()
        args = _commands(model, folders, out)[command]
        if tag == "c" and command != "microscope":
            args = _numbers_only(args)
        if command not in ("layers", "report"):
            args = [*args, "--seed", str(seed), "--device", "cpu"]
        result = _run(args)
        assert result.exit_code == 0, f"{' '.join(map(str, args))}\n{result.output}"
        runs[tag] = (result.stdout, _outputs(out))
        if "--json" in args:
            data = json.loads(result.stdout)
            if command not in ("layers", "report"):
                assert "random init" in json.dumps(data), "the JSON must say the weights are a random init"
    if command in ("layers", "report"):
        return
    assert runs["a"][1], "the command wrote no file"
    assert runs["a"][1] == runs["b"][1], "same seed, other bytes"
    if command == "microscope":
        differing = [name for name in runs["a"][1] if runs["a"][1][name] != runs["c"][1].get(name)]
        assert differing, "another seed gave the same bytes"
    else:
        assert not runs["c"][1], "the JSON-only run wrote a file"
        # the numbers differ, not only the weights label that names the seed (accuracy counts over four
        # images are the one exception: two random initialisations can get the same ones right)
        mask = {"a": "seed 0", "c": "seed 1"} if command != "robustness" else {}
        numbers = {tag: json.loads(runs[tag][0].replace(mask.get(tag, "seed S"), "seed S")) for tag in ("a", "c")}
        assert numbers["a"] != numbers["c"], "another seed gave the same numbers"


def test_models_json_lists_every_name_with_source_input_size_and_pretrained() -> None:
    from cnnlens.registry import list_models

    result = _run(["models", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    names = [r["name"] for r in rows]
    assert names == list_models()
    by_name = {r["name"]: r for r in rows}
    assert by_name["vgg16"]["source"] == "torchvision" and by_name["vgg16"]["input_size"] == [3, 224, 224] and by_name["vgg16"]["pretrained"]
    assert by_name["inception_v3"]["input_size"] == [3, 299, 299]
    assert by_name["lenet5"]["source"] == "teaching" and by_name["lenet5"]["input_size"] == [1, 32, 32] and not by_name["lenet5"]["pretrained"]
    assert by_name["mnist-cnn"]["source"] == "mnist" and by_name["mnist-cnn"]["input_size"] == [1, 28, 28]
    if any(n.startswith("timm/") for n in names):
        assert by_name["timm/resnet18"]["source"] == "timm" and by_name["timm/resnet18"]["pretrained"]


@pytest.mark.parametrize("command", ["patches", "deconv", "visualize", "dream", "invert", "fgsm", "robustness", "attribute", "tuning", "invariance", "microscope"])
def test_a_model_that_takes_no_images_is_refused_in_one_line(command: str, folders: dict[str, Path], tmp_path: Path) -> None:
    """three-3x3 takes 64 feature maps, not images: docs/models.md says `no` for these commands."""
    args = _commands("three-3x3", folders, tmp_path)[command]
    result = _run([*args, "--seed", "0"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len([line for line in lines if line.startswith("Error:")]) == 1 and "Traceback" not in result.output
    assert not any(tmp_path.iterdir())
