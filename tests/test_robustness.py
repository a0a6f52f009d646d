"""Robustness curves and labelled datasets: mechanics on random models, meaning on the real weights."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import cnnlens
from cnnlens import CnnlensError, Preprocessing
from cnnlens.attacks import RobustnessComparison, compare_robustness, fgsm, plot_robustness, robustness
from cnnlens.folders import LabelledImages, batches, labelled_folder, read_idx, read_labels_csv
from cnnlens.cli import cli
from cnnlens.testing import model_state

IDENTITY = Preprocessing(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), resize_size=None, crop_size=None)


def tiny_net(seed: int = 0, bn: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 6, 3)] + ([nn.BatchNorm2d(6)] if bn else []) + [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)]
    return nn.Sequential(*layers).eval()


def write_png(path: Path, seed: int, size: int = 12) -> None:
    import skimage.io

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    skimage.io.imsave(path, (rng.random((size, size, 3)) * 255).astype(np.uint8), check_contrast=False)


# ---------------------------------------------------------------- datasets

def test_class_subfolders_sorted_and_numeric(tmp_path: Path) -> None:
    for name in ("cat", "ant", "bee"):
        for i in range(2):
            write_png(tmp_path / "named" / name / f"{i}.png", i)
    write_png(tmp_path / "named" / "stray.png", 9)  # not in a class folder: no label
    data = labelled_folder(tmp_path / "named")
    assert data.labels == [0, 0, 1, 1, 2, 2]  # ant, bee, cat as ImageFolder
    assert data.unlabelled == ["stray.png"] and data.to_dict()["unlabelled"] == 1
    for name in ("2", "10"):
        write_png(tmp_path / "numbers" / name / "a.png", 0)
    assert labelled_folder(tmp_path / "numbers").labels == [10, 2]  # paths sorted "10" < "2"; labels are the numbers
    assert len(labelled_folder(tmp_path / "named", limit=3)) == 3


def test_flat_folder_with_labels_csv(tmp_path: Path) -> None:
    for i in range(3):
        write_png(tmp_path / f"img{i}.png", i)
    (tmp_path / "lab.csv").write_text("img2.png,1\nimg0.png,2\nimg1.png,0\n")
    data = labelled_folder(tmp_path, labels=tmp_path / "lab.csv")
    assert data.labels == [2, 0, 1] and [p.name for p in data.paths] == ["img0.png", "img1.png", "img2.png"]
    assert data.absent == [] and data.unlabelled == []
    (tmp_path / "labels.csv").write_text("wnid,filename,class_index\nx,img0.png,5\nx,img1.png,6\nx,img2.png,7\n")
    assert labelled_folder(tmp_path).labels == [5, 6, 7]  # DIR/labels.csv by default, header columns by name
    assert read_labels_csv(tmp_path / "lab.csv") == {"img2.png": 1, "img0.png": 2, "img1.png": 0}
    (tmp_path / "bad.csv").write_text("img0.png,1\nimg1.png,one\n")
    with pytest.raises(CnnlensError, match="line 2: expected a filename and a class index"):
        labelled_folder(tmp_path, labels=tmp_path / "bad.csv")
    (tmp_path / "flat").mkdir()
    write_png(tmp_path / "flat" / "a.png", 0)
    with pytest.raises(CnnlensError, match="no labels"):
        labelled_folder(tmp_path / "flat")


def test_labels_csv_evaluates_images_present_and_labelled_and_counts_the_rest(tmp_path: Path) -> None:
    for i in range(4):
        write_png(tmp_path / f"img{i}.png", i)
    # img3 has no row; gone1/gone2 are named but absent (a subset of a labelled set); img1 twice with one class
    (tmp_path / "labels.csv").write_text("filename,label\nimg0.png,1\ngone1.png,2\nimg1.png,0\nimg1.png,0\nimg2.png,2\ngone2.png,0\n")
    data = labelled_folder(tmp_path)
    assert [p.name for p in data.paths] == ["img0.png", "img1.png", "img2.png"] and data.labels == [1, 0, 2]
    assert data.absent == ["gone1.png", "gone2.png"] and data.unlabelled == ["img3.png"]
    assert data.to_dict() == {"source": str(tmp_path), "images": 3, "absent_labelled": 2, "unlabelled": 1}
    assert data.notes()[0].startswith("2 labelled files are absent") and data.notes()[1].startswith("1 image in")
    (tmp_path / "none.csv").write_text("nope.png,1\n")
    with pytest.raises(CnnlensError, match=r"^labels: none of the 1 files"):
        labelled_folder(tmp_path, labels=tmp_path / "none.csv")


def test_labels_csv_contradictory_duplicates_and_encodings(tmp_path: Path) -> None:
    (tmp_path / "dup.csv").write_text("a.png,1\nb.png,2\na.png,3\n")
    with pytest.raises(CnnlensError, match=r"^labels .*a\.png has class 1 on line 1 and 3 on line 3") as info:
        read_labels_csv(tmp_path / "dup.csv")
    assert info.value.param == "labels"
    (tmp_path / "latin1.csv").write_bytes("a.png,1\n\xe9t\xe9.png,2\n".encode("latin-1"))
    with pytest.raises(CnnlensError, match=r"^labels .* is not UTF-8 text \(byte 0xe9"):
        read_labels_csv(tmp_path / "latin1.csv")
    (tmp_path / "bom.csv").write_bytes("\ufefffilename,class_index\n\u00e9t\u00e9.png,2\n".encode("utf-8"))
    assert read_labels_csv(tmp_path / "bom.csv") == {"\u00e9t\u00e9.png": 2}  # a UTF-8 BOM (Excel) is fine
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(CnnlensError, match="empty"):
        read_labels_csv(tmp_path / "empty.csv")


def test_idx_files(tmp_path: Path) -> None:
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    labels = np.array([7, 1, 3], dtype=np.uint8)
    header = lambda arr: bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)  # noqa: E731
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(header(images) + images.tobytes())
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(header(labels) + labels.tobytes())
    assert np.array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), images)
    data = labelled_folder(tmp_path, limit=2)
    x, y = data[1]
    assert data.labels == [7, 1] and y == 1 and x.shape == (1, 4, 5)
    assert torch.allclose(x[0], torch.from_numpy(images[1]).float() / 255)


# ---------------------------------------------------------------- robustness mechanics

def test_robustness_matches_per_eps_attacks_and_leaves_the_model_alone() -> None:
    net = tiny_net(bn=True)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(10, 3, 8, 8, generator=g)
    with torch.no_grad():
        pred = net(x).argmax(1)
    y = pred.clone()
    y[:3] = (y[:3] + 1) % 3  # 7 of 10 right before the attack
    net.train()  # left in train mode: evaluated in eval mode, statistics untouched
    before = model_state(net)
    stats = {k: v.clone() for k, v in net.state_dict().items()}
    eps = [0.0, 0.05, 0.2]
    res = robustness(net, [(x[:4], y[:4]), (x[4:], y[4:])], eps=eps, attacks=["fgsm", "ifgsm", "pgd"], steps=3,
                     seed=1, preprocessing=IDENTITY, progress=False)
    assert model_state(net) == before and all(torch.equal(v, net.state_dict()[k]) for k, v in stats.items())
    net.eval()
    assert res.n == 10 and res.n_correct == 7 and res.clean_accuracy == pytest.approx(0.7)
    for name in ("fgsm", "ifgsm", "pgd"):
        assert res[name].accuracy[0] == pytest.approx(0.7) and res[name].accuracy_on_correct[0] == 1.0
    for i, e in enumerate(eps[1:], start=1):
        # independent: one call per batch and eps (batch means matter for the gradient scale only, not its sign)
        with torch.no_grad():
            ok = torch.cat([net(fgsm(net, xb, yb, eps=e, preprocessing=IDENTITY)).argmax(1) == yb for xb, yb in ((x[:4], y[:4]), (x[4:], y[4:]))])
        assert res["fgsm"].accuracy[i] == pytest.approx(ok.float().mean().item())
        assert res["fgsm"].accuracy_on_correct[i] == pytest.approx(ok[3:].float().mean().item())
        assert res["fgsm"].flipped[i] == pytest.approx(1 - ok[3:].float().mean().item())
    data = json.loads(res.to_json())
    assert data["curves"]["pgd"]["accuracy"] == res["pgd"].accuracy and data["model"] == "Sequential"
    assert res["bim"] is res["ifgsm"]
    fig = plot_robustness(res)
    assert len(fig.axes[0].lines) == 6  # 3 attacks x (all, originally correct)
    table = res.to_text().splitlines()
    assert table[0].startswith("Sequential (weights as given): 10 images, clean accuracy 70.0 % (7 correct)")
    assert len(table) == 2 + len(eps) and table[2].split()[:3] == ["0", "70.0", "%"]


def test_robustness_checks_its_inputs_before_any_work() -> None:
    net = tiny_net()
    x, y = torch.rand(2, 3, 8, 8), torch.tensor([0, 1])
    for kwargs, param in [
        ({"eps": [0, 2]}, "eps"), ({"eps": [float("nan")]}, "eps"), ({"eps": []}, "eps"), ({"attacks": ["cw"]}, "attacks"),
        ({"steps": 0}, "steps"), ({"step_size": -1.0}, "step_size"), ({"batch_size": 0}, "batch_size"), ({"limit": 0}, "limit"),
    ]:
        with pytest.raises(CnnlensError, match=rf"^{param}") as info:
            robustness(net, [(x, y)], progress=False, **kwargs)
        assert info.value.param == param
    with pytest.raises(CnnlensError, match="outside"):
        robustness(net, [(x, torch.tensor([0, 5]))], eps=[0.1], progress=False)
    with pytest.raises(CnnlensError, match=r"^data"):
        robustness(net, 42, progress=False)


def test_robustness_on_a_folder_prepares_images_for_the_model_and_reports_left_out_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for i in range(5):
        write_png(tmp_path / f"im{i}.png", i, size=20)
    (tmp_path / "labels.csv").write_text("im0.png,1\nim1.png,2\nim2.png,0\nim3.png,3\ngone.png,4\n")  # im4 has no label
    model = cnnlens.create_model("lenet5", None, seed=0)  # grey 32x32: colour images are turned grey and resized
    res = robustness(model, tmp_path, eps=[0, 0.1], batch_size=3, progress=True)
    err = capsys.readouterr().err
    assert "1 labelled file is absent" in err and "1 image in" in err and "robustness: done" in err
    assert res.n == 4 and res.data == {**res.data, "images": 4, "absent_labelled": 1, "unlabelled": 1}
    data = res.to_dict()
    assert data["data"]["absent_labelled"] == 1 and data["data"]["unlabelled"] == 1 and "notes" not in data["data"]
    assert data["random_init"] is True and data["weights"] == "random init, seed 0"
    # the same numbers as a hand-made batch of prepared images
    prep = model.cnnlens_info.preprocessing
    x = torch.cat([prep.prepare(cnnlens.load_image(tmp_path / f"im{i}.png")[None]) for i in range(4)])
    by_hand = robustness(model, [(x, torch.tensor([1, 2, 0, 3]))], eps=[0, 0.1], progress=False)
    assert by_hand.curves["fgsm"].correct == res.curves["fgsm"].correct and by_hand.n_correct == res.n_correct
    assert "lenet5 (random init, seed 0)" in res.figure().axes[0].get_title()


def test_compare_robustness_gives_each_model_the_same_images_and_random_starts(tmp_path: Path) -> None:
    for c in range(3):
        write_png(tmp_path / f"c{c}" / "a.png", c, size=20)
    a = cnnlens.create_model("mnist-cnn", None, seed=0)
    b = cnnlens.create_model("mnist-cnn", None, seed=1)
    cmp = compare_robustness([a, b, a], tmp_path, eps=[0, 0.2], attacks=["pgd"], steps=2, seed=0, progress=False)
    assert isinstance(cmp, RobustnessComparison) and len(cmp) == 3 and cmp[0].n == 3
    assert cmp[0].to_dict() == cmp[2].to_dict()  # the same model gets the same random starts
    assert [r["weights"] for r in cmp.to_dict()["results"]] == ["random init, seed 0", "random init, seed 1", "random init, seed 0"]
    legend = [t.get_text() for t in cmp.figure().legends[0].get_texts()]
    assert legend[0] == "random init, seed 0: PGD-2"  # one architecture: curves named by their weights


# ---------------------------------------------------------------- CLI

@pytest.fixture
def folder_model(tmp_path: Path) -> str:
    src = tmp_path / "m.py"
    src.write_text(
        "import torch.nn as nn\n"
        "class M(nn.Sequential):\n"
        "    input_size = (3, 16, 16)\n"
        "    mean = (0.5, 0.5, 0.5)\n"
        "    std = (0.25, 0.25, 0.25)\n"
        "    def __init__(self):\n"
        "        super().__init__(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))\n"
    )
    for c in range(3):
        for i in range(3):
            write_png(tmp_path / "data" / f"c{c}" / f"{i}.png", 10 * c + i, size=20)
    return f"{src}:M"


def test_cli_robustness_on_a_folder(tmp_path: Path, folder_model: str) -> None:
    out = tmp_path / "curve.png"
    args = ["robustness", folder_model, "-w", "none", "--data", str(tmp_path / "data"), "--eps", "0,2/255,0.1",
            "--attack", "fgsm,pgd", "--steps", "2", "--batch-size", "4", "-o", str(out), "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    expected = robustness(cnnlens.create_model(folder_model, None, seed=0), tmp_path / "data", eps=[0, 2 / 255, 0.1], attacks=["fgsm", "pgd"],
                          steps=2, batch_size=4, seed=0, progress=False)
    assert data == json.loads(expected.to_json())  # --json is exactly result.to_dict()
    assert data["n"] == 9 and data["eps"][1] == pytest.approx(2 / 255) and set(data["curves"]) == {"fgsm", "pgd"}
    assert out.stat().st_size > 1000 and "robustness: done" in result.stderr
    before = out.read_bytes()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 2 and "exists" in again.stderr and out.read_bytes() == before
    table = CliRunner().invoke(cli, args[:-3])
    assert table.exit_code == 0 and table.stdout.splitlines()[0].startswith(f"{folder_model} (random init, seed 0): 9 images")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--eps", "0,1.5"], "Error: --eps must be <= 1"),
        (["--eps", "0,nan"], "Error: --eps must be a finite number"),
        (["--eps", "-0.1"], "Error: --eps must be >= 0"),
        (["--attack", "cw"], "Error: --attack: unknown attack 'cw'"),
        (["--steps", "0"], "Error: --steps must be >= 1"),
        (["--step-size", "nan"], "Error: --step-size must be a finite number"),
        (["--limit", "0"], "Error: --limit must be >= 1"),
        (["-o", "c.xyz"], "Error: --output"),
        (["--labels", "latin1.csv"], "Error: --labels latin1.csv is not UTF-8"),
        (["--labels", "dup.csv"], "Error: --labels dup.csv: a.png has class 1 on line 1 and 2 on line 2"),
    ],
)
def test_cli_robustness_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, folder_model: str, extra: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "latin1.csv").write_bytes("a.png,1\n\xe9.png,2\n".encode("latin-1"))
    (tmp_path / "dup.csv").write_text("a.png,1\na.png,2\n")
    listing = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(cli, ["robustness", folder_model, "-w", "none", "--data", "data", "-o", "c.png", *extra])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == listing


def test_cli_robustness_labels_subset_says_what_was_left_out_and_seeds_repeat(tmp_path: Path) -> None:
    for i in range(4):
        write_png(tmp_path / "flat" / f"im{i}.png", i, size=30)
    (tmp_path / "labels.csv").write_text("filename,class_index\nim0.png,1\nim1.png,2\nim2.png,7\nim9.png,3\n")

    def run(seed: int, tag: str) -> tuple[bytes, dict, str]:
        out = tmp_path / f"{tag}.png"
        result = CliRunner().invoke(cli, ["robustness", "lenet5", "-w", "none", "--seed", str(seed), "--data", str(tmp_path / "flat"),
                                          "--labels", str(tmp_path / "labels.csv"), "--eps", "0,0.1", "--attack", "pgd", "--steps", "2",
                                          "-o", str(out), "--json"])
        assert result.exit_code == 0, result.output
        return out.read_bytes(), json.loads(result.stdout), result.stderr

    a, b, c = run(0, "a"), run(0, "b"), run(5, "c")
    assert a[0] == b[0] and a[1] == b[1] and a[0] != c[0]
    assert a[1]["data"]["absent_labelled"] == 1 and a[1]["data"]["unlabelled"] == 1 and a[1]["n"] == 3
    assert "1 labelled file is absent" in a[2] and "im9.png" in a[2] and "1 image in" in a[2] and "im3.png" in a[2]


def test_cli_robustness_compares_several_weights(tmp_path: Path, folder_model: str) -> None:
    weights = tmp_path / "w.pt"
    torch.save(cnnlens.create_model(folder_model, None, seed=3).state_dict(), weights)
    result = CliRunner().invoke(cli, ["robustness", folder_model, "-w", "none", "-w", str(weights), "--data", str(tmp_path / "data"),
                                      "--eps", "0,0.1", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["weights"] for r in data["results"]] == ["random init, seed 0", "w.pt"]
    assert all(r["n"] == 9 for r in data["results"])


# ---------------------------------------------------------------- meaning, on the real weights

MNIST_EPS_03 = {"clntrained": 0.009, "advtrained": 0.960}  # the development data's README, first 1,000 test images


@pytest.mark.parametrize("name", ["clntrained", "advtrained"])
def test_mnist_pair_at_eps_0_3(data: Path, name: str) -> None:
    weights = data / "mnist" / f"mnist_lenet5_{name}.pt"
    if not weights.is_file():
        pytest.skip(f"{weights} is absent")
    model = cnnlens.create_model("mnist-cnn", weights)
    before = model_state(model)
    first = labelled_folder(data / "mnist").subset(range(1000))  # the images the README's numbers are for (limit= spreads)
    res = robustness(model, first, batch_size=500, eps=[0.0, 0.3], progress=False)
    assert model_state(model) == before
    assert res.clean_accuracy > 0.97
    assert res["fgsm"].accuracy[1] == pytest.approx(MNIST_EPS_03[name], abs=0.006)


def test_mnist_pgd_is_stronger_than_fgsm_on_the_robust_model(data: Path) -> None:
    weights = data / "mnist" / "mnist_lenet5_advtrained.pt"
    if not weights.is_file():
        pytest.skip(f"{weights} is absent")
    model = cnnlens.create_model("mnist-cnn", weights)
    res = robustness(model, labelled_folder(data / "mnist").subset(range(100)), batch_size=100, eps=[0.3], attacks=["fgsm", "pgd"],
                     steps=5, seed=0, progress=False)
    assert res["pgd"].accuracy[0] < res["fgsm"].accuracy[0]
    assert res["pgd"].accuracy[0] > 0.8  # adversarial training (PGD-40 at 0.3) holds against PGD-5 too


def _imagenet_flip_rate(data: Path, model: nn.Module, every: int) -> tuple[float, int, float]:
    samples = data / "imagenet_samples"
    if not (samples / "labels.csv").is_file():
        pytest.skip("imagenet_samples are absent")
    ds = labelled_folder(samples)
    ds = ds.subset(range(0, len(ds), every))
    res = robustness(model, ds, eps=[0.0, 0.007], batch_size=25, progress=False)
    return res["fgsm"].flipped[1], res.n_correct, res.clean_accuracy


def test_mobilenet_fgsm_0_007_flips_most_correct_imagenet_samples(data: Path, mobilenet_trained: nn.Module) -> None:
    before = model_state(mobilenet_trained)
    flipped, n_correct, clean = _imagenet_flip_rate(data, mobilenet_trained, every=100)  # 10 images, one per 100 classes
    assert model_state(mobilenet_trained) == before
    assert n_correct >= 6 and clean == pytest.approx(0.826, abs=0.25)
    assert flipped >= 0.7  # all 1,000: see the slow test and docs/attacks.md


@pytest.mark.slow
def test_mobilenet_fgsm_0_007_on_all_1000_imagenet_samples(data: Path, mobilenet_trained: nn.Module) -> None:
    flipped, n_correct, clean = _imagenet_flip_rate(data, mobilenet_trained, every=1)
    assert clean == pytest.approx(0.826, abs=0.003)  # the data README: 82.4 % with PIL resizing; 826/1000 with cnnlens loading
    assert flipped == pytest.approx(FLIPPED_ALL_1000, abs=0.01)
    assert not math.isnan(flipped)


FLIPPED_ALL_1000 = 804 / 826  # `cnnlens robustness mobilenet_v2 ... --eps 0,0.007` on all 1,000 (docs/attacks.md)


def test_batches_refuses_a_bad_batch_size() -> None:
    data = LabelledImages([0, 1], tensors=torch.rand(2, 1, 4, 4))
    assert [tuple(x.shape) for x, _ in batches(data, 1)] == [(1, 1, 4, 4), (1, 1, 4, 4)]
    with pytest.raises(CnnlensError, match="^batch_size"):
        list(batches(data, 0))
