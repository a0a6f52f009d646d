"""Bad and unusual input across every command: each ends with exactly one ``Error:`` line on stderr and
exit code 2, no traceback, nothing on stdout, no file written, and a file that was there stays byte-identical.

The cases are built per command from what the command takes (its click parameters), so a new option of
an existing kind is covered without a new line here.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cnnlens.cli import COMMANDS, cli

KEEP = b"a file the user already had"
M = "lenet5"  # a small model; its pretrained weights do not exist, so DEFAULT must be refused


class _Payload:
    """Unpickling this would create a file named PWNED: a weights file must never run code."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path("PWNED"),))


def _setup(root: Path) -> dict[str, str]:
    from cnnlens.images import save_image

    g = torch.Generator().manual_seed(0)
    f = {
        "photo": save_image(torch.rand(3, 40, 40, generator=g), root / "in" / "photo.png"),
        "tiny": save_image(torch.rand(3, 1, 1, generator=g), root / "in" / "tiny.png"),
    }
    for i in range(2):
        save_image(torch.rand(3, 36, 36, generator=g), root / "in" / "flat" / f"a{i}.png")
        save_image(torch.rand(3, 36, 36, generator=g), root / "in" / "labelled" / str(i) / f"a{i}.png")
    for i in range(8):
        save_image(torch.rand(3, 36, 36, generator=g), root / "in" / "labelled8" / str(i % 2) / f"b{i}.png")
    for i in range(40):  # tcav's random sets: 2 x 10 sets of 2
        save_image(torch.rand(3, 8, 8, generator=g), root / "in" / "random40" / f"r{i:02d}.png")
    (root / "in" / "bad.png").write_bytes(b"\x89PNG but not really")
    (root / "in" / "empty.png").write_bytes(b"")
    (root / "in" / "text.jpg").write_text("hello")
    (root / "in" / "folder.png").mkdir()
    (root / "in" / "badflat").mkdir()
    (root / "in" / "badflat" / "x.png").write_bytes(b"garbage")
    (root / "in" / "emptydir").mkdir()
    (root / "in" / "garbage.pth").write_bytes(b"\x00\x01 definitely not torch")
    torch.save(torch.nn.Linear(3, 2).state_dict(), root / "in" / "misfit.pth")
    shapes = {k: v.shape for k, v in torch.nn.Sequential(torch.nn.Conv2d(1, 7, 5)).state_dict().items()}
    torch.save({k: torch.zeros(s) for k, s in shapes.items()}, root / "in" / "shape.pth")
    with open(root / "in" / "evil.pth", "wb") as fh:
        pickle.dump({"weight": _Payload()}, fh)
    (root / "in" / "notutf8.csv").write_bytes("filename,label\na0.png,1\nb\xe9.png,2\n".encode("latin-1"))
    (root / "in" / "contradict.csv").write_text("filename,label\na0.png,1\na0.png,2\n")
    (root / "in" / "afile").write_text("a file where a folder should be")
    (root / "keep.png").write_bytes(KEEP)
    return {k: str(v) for k, v in f.items()} | {
        k: str(root / "in" / v)
        for k, v in {
            "bad": "bad.png", "empty": "empty.png", "text": "text.jpg", "folder": "folder.png", "flat": "flat",
            "labelled": "labelled", "labelled8": "labelled8", "badflat": "badflat", "emptydir": "emptydir", "garbage_w": "garbage.pth",
            "misfit_w": "misfit.pth", "shape_w": "shape.pth", "evil_w": "evil.pth", "notutf8": "notutf8.csv",
            "contradict": "contradict.csv", "afile": "afile", "random40": "random40",
        }.items()
    }


def _base(command: str, f: dict[str, str]) -> list[str]:
    """Arguments with which the command would run (cheaply) on lenet5, weights given separately."""
    return {
        "layers": ["layers", M],
        "report": ["report", M],
        "filters": ["filters", M],
        "patches": ["patches", M, "--data", f["flat"]],
        "deconv": ["deconv", M, f["photo"]],
        "visualize": ["visualize", M, "-u", "logits:1", "--steps", "1", "--size", "32"],
        "dream": ["dream", f["photo"], "-m", M, "--steps", "1", "--octaves", "1"],
        "style": ["style", f["photo"], f["photo"], "-m", M, "--steps", "1", "--size", "32"],
        "invert": ["invert", f["photo"], "-m", M, "--steps", "1", "--size", "32"],
        "fgsm": ["fgsm", M, f["photo"]],
        "robustness": ["robustness", M, "--data", f["labelled"]],
        "attribute": ["attribute", M, f["photo"], "--method", "saliency"],
        "tuning": ["tuning", M, "--orientations", "4", "--num-frequencies", "2", "--phases", "4"],
        "hierarchy": ["hierarchy", M, "--orientations", "4", "--num-frequencies", "2", "--phases", "4", "--no-baseline"],
        "invariance": ["invariance", M, "--data", f["flat"], "--limit", "2", "--no-baseline"],
        "similarity": ["similarity", M, "--data", f["flat"], "-l", "2"],
        "probe": ["probe", M, "--data", f["labelled8"], "--folds", "2", "-l", "2"],
        "embed": ["embed", M, "--data", f["labelled8"], "-l", "2"],
        "circuit": ["circuit", M, "-u", "3:1", "--depth", "1", "-k", "2"],
        "relevance": ["relevance", M, f["photo"], "-u", "3", "-k", "2"],
        "concepts": ["concepts", M, "--data", f["flat"], "-l", "3", "-k", "2", "--top", "1", "--steps", "1"],
        "tcav": ["tcav", M, "--concept", "striped", "--random", f["random40"], "-l", "3", "-t", "1"],
        "microscope": ["microscope", M, "--data", f["flat"], "-o", "site", "--layers", "3", "--units", "1", "-k", "1", "--steps", "1",
                       "--no-tuning", "--attribution", "0", "--method", "none"],
    }[command]


def _options(command: str) -> set[str]:
    cmd = cli.get_command(None, command)  # type: ignore[arg-type]
    return {o for p in cmd.params for o in getattr(p, "opts", [])}


MODEL_COMMANDS = [
    "layers", "report", "filters", "patches", "deconv", "visualize", "dream", "style", "invert", "fgsm", "robustness",
    "attribute", "tuning", "hierarchy", "invariance", "similarity", "probe", "embed", "circuit", "relevance", "microscope", "concepts", "tcav",
]


def _cases() -> list[tuple[str, str, list[str], str]]:
    """(id, command, args relative to the base, text the Error line must contain)."""
    cases: list[tuple[str, str, list[str], str]] = []

    def add(command: str, name: str, args: list[str], expect: str = "") -> None:
        cases.append((f"{command}-{name}", command, args, expect))

    for command in MODEL_COMMANDS:
        opts = _options(command)
        swap = ["-m"] if "-m" in opts else []  # image commands take the model as -m
        add(command, "unknown-model", [*swap, "resnt18"] if swap else ["@model=resnt18"], "resnet18")
        add(command, "unknown-file-model", [*swap, "nowhere.py:Net"] if swap else ["@model=nowhere.py:Net"], "not found")
        add(command, "model-file-without-class", [*swap, "@afile.py:Net"] if swap else ["@model=@afile.py:Net"], "")
        if "--weights" in opts:
            add(command, "weights-missing-file", ["-w", "missing.pth"], "--weights")
            add(command, "weights-garbage", ["-w", "@garbage_w"], "--weights")
            add(command, "weights-misfit-keys", ["-w", "@misfit_w"], "--weights")
            add(command, "weights-misfit-shape", ["-w", "@shape_w"], "--weights")
            add(command, "weights-pickle-code", ["-w", "@evil_w"], "--weights")
            add(command, "weights-default-absent", ["-w", "DEFAULT"], "--weights")
            add(command, "weights-unknown-name", ["-w", "IMAGENET1K_V9"], "--weights")
        if "--device" in opts:
            add(command, "device-unknown", ["--device", "gpu7"], "--device")
            add(command, "device-cuda-absent", ["--device", "cuda:3"], "--device")
        if "--seed" in opts:
            add(command, "seed-too-large", ["--seed", str(2**64)], "--seed")
            add(command, "seed-negative", ["--seed", "-1"], "--seed")
        if "--output" in opts and command != "microscope":  # its -o is a folder: cases of its own below
            add(command, "output-unknown-suffix", ["-o", "out.xyz"], "out.xyz")
            add(command, "output-exists", ["-o", "keep.png"], "exists")
            add(command, "output-parent-is-a-file", ["-o", "@afile/out.png"], "not a folder")
            add(command, "output-is-a-folder", ["-o", "@folder"], "")
        if "--image" in opts:
            add(command, "image-same-as-output", ["-o", "same.png", "--image", "same.png"], "same file")
            add(command, "image-unknown-suffix", ["--image", "x.xyz"], "x.xyz")
            add(command, "image-exists", ["--image", "keep.png"], "exists")
        if "--batch-size" in opts:
            add(command, "batch-size-zero", ["-b", "0"], "--batch-size")
        if "--steps" in opts:
            add(command, "steps-not-a-number", ["--steps", "many"], "--steps")
            add(command, "steps-negative", ["--steps", "-3"], "--steps")
        if "--size" in opts:
            add(command, "size-zero", ["--size", "0"], "--size")
            add(command, "size-absurd", ["--size", "1000000"], "--size")
        if "--unit" in opts or "-u" in opts:
            add(command, "unit-bad-syntax", ["-u", "conv:1@x,y"], "--unit")
            add(command, "unit-unknown-layer", ["-u", "nolayer:1"], "--unit")
            add(command, "unit-unknown-class", ["-u", "logits:eleven"], "")
        if "--lr" in opts:
            add(command, "lr-nan", ["--lr", "nan"], "--lr")
            add(command, "lr-negative", ["--lr", "-0.1"], "--lr")
    # images that cannot be read, for commands that take one
    for command in ("deconv", "dream", "style", "invert", "fgsm", "attribute", "relevance"):
        for kind in ("missing", "bad", "empty", "text", "folder"):
            add(command, f"image-{kind}", [f"@image={kind}"], "")
    # numbers of one command
    for name, args in {
        "step-size-nan": ["--step-size", "nan"], "step-size-negative": ["--step-size", "-1"], "octave-scale-nan": ["--octave-scale", "nan"],
        "octave-scale-below-1": ["--octave-scale", "0.5"], "octaves-zero": ["--octaves", "0"], "jitter-negative": ["--jitter", "-2"],
        "tile-size-tiny": ["--tile-size", "1"], "layer-unknown": ["-u", "nolayer"],
    }.items():
        add("dream", name, args)
    for name, args in {
        "eps-nan": ["--eps", "nan"], "eps-negative": ["--eps", "-0.1"], "eps-above-one": ["--eps", "2"], "eps-text": ["--eps", "much"],
        "step-size-nan": ["--steps", "3", "--step-size", "nan"], "label-unknown": ["--label", "eleven"], "target-out-of-range": ["--target", "10"],
    }.items():
        add("fgsm", name, args)
    for name, args in {
        "eps-list-bad": ["--eps", "0,x"], "attack-unknown": ["--attack", "deepfool"], "labels-not-utf8": ["--labels", "@notutf8"],
        "labels-contradict": ["--data", "@flat", "--labels", "@contradict"], "data-missing": ["--data", "nowhere"], "data-empty": ["--data", "@emptydir"],
        "limit-zero": ["--limit", "0"],
    }.items():
        add("robustness", name, args)
    for name, args in {
        "content-weight-nan": ["--content-weight", "nan"], "style-weight-negative": ["--style-weight", "-1"], "tv-weight-nan": ["--tv-weight", "nan"],
        "blend-mismatch": ["--style-blend", "0.5,0.3,0.2"], "content-layer-unknown": ["--content-layer", "nolayer"], "style-layer-unknown": ["--style-layer", "nolayer"],
    }.items():
        add("style", name, args)
    for name, args in {"beta-nan": ["--beta", "nan"], "tv-weight-negative": ["--tv-weight", "-2"], "layer-unknown": ["-l", "nolayer"], "jitter-negative": ["--jitter", "-1"]}.items():
        add("invert", name, args)
    for name, args in {"data-missing": ["--data", "nowhere"], "data-empty": ["--data", "@emptydir"], "data-bad-image": ["--data", "@badflat"], "top-zero": ["-k", "0"],
                       "from-index-garbage": ["--from-index", "@garbage_w"]}.items():
        add("patches", name, args)
    for name, args in {"layer-unknown": ["-l", "nolayer"], "layer-not-conv": ["-l", "4"]}.items():
        add("filters", name, args)
    for name, args in {"input-size-bad": ["--input-size", "3xAx4"], "input-size-zero": ["--input-size", "0"], "depth-zero": ["--depth", "0"]}.items():
        add("report", name, args)
    for name, args in {"unit-class-name-grey": ["-u", "logits:cat"], "unit-position-outside": ["-u", "0:1@99,99"], "unit-channel-outside": ["-u", "0:99"]}.items():
        add("deconv", name, args)
    for name, args in {"diversity-nan": ["--diversity", "nan"], "batch-zero": ["--batch", "0"], "redirect-negative": ["--redirect-steps", "-1"]}.items():
        add("visualize", name, args)
    for name, args in {"method-unknown": ["--method", "gradkam"], "target-unknown": ["-t", "eleven"], "layer-unknown": ["-l", "nolayer"],
                       "folder-empty": ["@image=emptydir"]}.items():
        add("attribute", name, args)
    for name, args in {"orientations-zero": ["--orientations", "0"], "contrast-nan": ["--contrast", "nan"], "contrast-above-one": ["--contrast", "2"],
                       "layer-unknown": ["-u", "nolayer"], "frequencies-bad": ["--frequencies", "a,b"]}.items():
        add("tuning", name, args)
    for name, args in {"layer-unknown": ["-l", "nolayer"], "osi-threshold-nan": ["--osi-threshold", "nan"]}.items():
        add("hierarchy", name, args)
    for name, args in {"transform-unknown": ["--transform", "shear"], "data-missing": ["--data", "nowhere"], "data-empty": ["--data", "@emptydir"],
                       "layer-unknown": ["-l", "nolayer"]}.items():
        add("invariance", name, args)
    for name, args in {"part-missing": ["@merge", "nowhere.json"], "part-garbage": ["@merge", "@notutf8"], "part-not-json": ["@merge", "@garbage_w"],
                       "output-unknown-suffix": ["@merge", "@contradict", "-o", "x.xyz"]}.items():
        add("merge", name, args)
    for name, args in {"data-missing": ["--data", "nowhere"], "data-empty": ["--data", "@emptydir"], "data-bad-image": ["--data", "@badflat"],
                       "layers-unknown": ["--layers", "nolayer"], "layers-not-a-map": ["--layers", "9"], "units-zero": ["--units", "0"], "top-zero": ["-k", "0"],
                       "attribution-negative": ["--attribution", "-1"], "method-unknown": ["--method", "deconv"], "output-is-a-file": ["-o", "keep.png"],
                       "output-parent-is-a-file": ["-o", "@afile/site"], "output-holds-other-files": ["-o", "@flat"]}.items():
        add("microscope", name, args)
    for name, args in {"data-missing": ["--data", "nowhere"], "data-empty": ["--data", "@emptydir"], "data-bad-image": ["--data", "@badflat"],
                       "layer-unknown": ["-l", "nolayer"], "layer-empty": ["-l", ","], "kernel-unknown": ["--kernel", "cosine"],
                       "threshold-nan": ["--threshold", "nan"], "threshold-zero": ["--threshold", "0"], "limit-zero": ["--limit", "0"],
                       "baseline-and-second-model": ["--baseline", "random", "-w2", "none"], "model2-unknown": ["-m2", "resnt18"],
                       "weights2-garbage": ["-w2", "@garbage_w"], "layer2-unknown": ["-w2", "none", "-l2", "nolayer"],
                       "shard-figure-output": ["--shard", "0/2", "-o", "part.png"], "shard-bad": ["--shard", "2/2", "-o", "part.json"],
                       "debiased-batch-too-small": ["--debiased", "-b", "3"]}.items():
        add("similarity", name, args)
    for name, args in {"data-missing": ["--data", "nowhere"], "data-empty": ["--data", "@emptydir"], "data-unlabelled": ["--data", "@flat"],
                       "labels-not-utf8": ["--labels", "@notutf8"], "labels-contradict": ["--data", "@flat", "--labels", "@contradict"],
                       "folds-one": ["--folds", "1"], "folds-too-many": ["--folds", "5"], "weight-decay-nan": ["--weight-decay", "nan"],
                       "weight-decay-negative": ["--weight-decay", "-1"], "layer-unknown": ["-l", "nolayer"], "one-class": ["--data", "@labelled8/0"],
                       "baseline-unknown": ["--baseline", "trained"]}.items():
        add("probe", name, args)
    for name, args in {"data-missing": ["--data", "nowhere"], "data-empty": ["--data", "@emptydir"], "data-bad-image": ["--data", "@badflat"],
                       "method-unknown": ["--method", "umap"], "layer-unknown": ["-l", "nolayer"], "too-few-images": ["--data", "@flat"],
                       "limit-zero": ["--limit", "0"]}.items():
        add("embed", name, args)
    for name, args in {"unit-no-channel": ["-u", "3"], "unit-first-stage": ["-u", "0:1"], "depth-zero": ["--depth", "0"], "top-zero": ["-k", "0"],
                       "data-missing": ["--data", "nowhere"], "data-bad-image": ["--data", "@badflat"]}.items():
        add("circuit", name, args)
    for name, args in {"composite-unknown": ["--composite", "epsilon-plus-flatt"], "unit-unknown-layer": ["-u", "nolayer"],
                       "unit-channel-out-of-range": ["-u", "3:999"], "unit-logits": ["-u", "logits:1"], "unit-two-layers": ["-u", "0:1,3:1"],
                       "top-zero": ["-k", "0"], "target-unknown": ["-t", "nocls"], "target-out-of-range": ["-t", "99"],
                       "image-a-folder-of-images": ["@image=flat"]}.items():
        add("relevance", name, args)
    for name, args in {"by-unknown": ["--by", "gradient"], "target-without-by": ["--target", "1"],
                       "target-unknown": ["--by", "relevance", "--target", "nocls"]}.items():
        add("patches", name, args)
    for name, args in {"data-missing": ["--data", "nowhere"], "data-empty": ["--data", "@emptydir"], "data-bad-image": ["--data", "@badflat"],
                       "layer-unknown": ["-l", "nolayer"], "layer-not-a-map": ["-l", "9"], "concepts-zero": ["-k", "0"],
                       "concepts-above-channels": ["-k", "99"], "rows-zero": ["--rows", "0"], "target-unknown": ["-t", "eleven"],
                       "no-crops-without-visualize": ["--no-crops", "--no-visualize"], "limit-zero": ["--limit", "0"]}.items():
        add("concepts", name, args)
    for name, args in {"concept-unknown": ["--concept", "zigzag"], "random-missing": ["--random", "nowhere"], "random-too-few": ["--random", "@flat"],
                       "random-empty": ["--random", "@emptydir"], "random-bad-image": ["--random", "@badflat"], "layer-unknown": ["-l", "nolayer"],
                       "target-unknown": ["-t", "eleven"], "target-top": ["-t", "top"], "target-out-of-range": ["-t", "10"],
                       "alpha-zero": ["--alpha", "0"], "random-sets-below-ten": ["--random-sets", "5"], "images-missing": ["--images", "nowhere"]}.items():
        add("tcav", name, args)
    add("models", "source-unknown", ["@models", "--source", "pypi"], "--source")
    add("nonexistent", "command-unknown", ["@bare"], "")
    return cases


CASES = _cases()
PROGRESS = re.compile(r": (started|stopped), \d|^microscope: ")


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_the_base_commands_run(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the bad part, each case's command runs: the failures above are the bad input's doing."""
    f = _setup(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, _build(command, [], f), catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_there_are_at_least_150_cases_over_every_command() -> None:
    assert len(CASES) >= 150
    assert {c[1] for c in CASES} >= set(COMMANDS)


def _build(command: str, args: list[str], f: dict[str, str]) -> list[str]:
    if args and args[0] == "@bare":
        return [command]
    if args and args[0] == "@models":
        return ["models", *args[1:]]
    if args and args[0] == "@merge":
        return ["merge", *[f[a[1:]] if a.startswith("@") else a for a in args[1:]]]
    base = _base(command, f)
    rest: list[str] = []
    for a in args:
        if a.startswith("@model="):
            base[1] = a.split("=", 1)[1].replace("@afile", f["afile"])
        elif a.startswith("@image="):
            kind = a.split("=", 1)[1]
            path = "no/such/photo.png" if kind == "missing" else f[kind]
            if command == "attribute" and kind == "folder":
                path = f["emptydir"]
            base = [path if x == f["photo"] else x for x in base]
            if command == "style":  # the style image too
                base = [x for x in base]
        elif a.startswith("@afile/"):
            rest.append(f["afile"] + a[len("@afile"):])
        elif a.startswith("@labelled8/"):
            rest.append(f["labelled8"] + a[len("@labelled8"):])
        elif a.startswith("@"):
            key = a[1:]
            rest.append(f[key] if key in f else a)
        else:
            rest.append(a.replace("@afile", f["afile"]))
    opts = _options(command)
    if "-m" in rest and "-m" in base:  # the case's model replaces the base's: an option given twice is refused
        i = base.index("-m")
        base = base[:i] + base[i + 2 :]
    weights = [] if "-w" in rest or "--weights" not in opts else ["-w", "none"]
    return [*base, *weights, *rest]


@pytest.mark.parametrize(("command", "args", "expect"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_written(command: str, args: list[str], expect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = _setup(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    argv = _build(command, args, f)
    result = CliRunner().invoke(cli, argv, catch_exceptions=False)
    # progress lines of work that had started (reading a folder image by image) may come before the error
    err_lines = [line for line in result.stderr.splitlines() if line.strip() and not PROGRESS.search(line)]
    assert result.exit_code == 2, f"{argv}\n{result.output}"
    assert "Traceback" not in result.output
    assert len(err_lines) == 1 and err_lines[0].startswith("Error: "), f"{argv}\n{result.stderr}"
    assert expect in err_lines[0], f"{argv}: {err_lines[0]!r} lacks {expect!r}"
    assert result.stdout == ""
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, "a file was written"
    assert (tmp_path / "keep.png").read_bytes() == KEEP
    assert not (tmp_path / "PWNED").exists()
