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

from cnnlens import CnnlensError
from cnnlens.attacks import (
    batches,
    fgsm,
    labelled_folder,
    load_attack_model,
    plot_robustness,
    read_idx,
    read_labels_csv,
    robustness,
)
from cnnlens.cli import cli
from cnnlens.testing import model_state


def tiny_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()


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
    data = labelled_folder(tmp_path / "named")
    assert data.labels == [0, 0, 1, 1, 2, 2]  # ant, bee, cat as ImageFolder
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
    (tmp_path / "labels.csv").write_text("wnid,filename,class_index\nx,img0.png,5\nx,img1.png,6\nx,img2.png,7\n")
    assert labelled_folder(tmp_path).labels == [5, 6, 7]  # DIR/labels.csv by default, header columns by name
    assert read_labels_csv(tmp_path / "lab.csv") == {"img2.png": 1, "img0.png": 2, "img1.png": 0}
    (tmp_path / "bad.csv").write_text("img0.png,one\n")
    with pytest.raises(CnnlensError, match="class index"):
        labelled_folder(tmp_path, labels=tmp_path / "bad.csv")
    (tmp_path / "missing.csv").write_text("nope.png,1\n")
    with pytest.raises(CnnlensError, match="not in"):
        labelled_folder(tmp_path, labels=tmp_path / "missing.csv")
    (tmp_path / "flat").mkdir()
    write_png(tmp_path / "flat" / "a.png", 0)
    with pytest.raises(CnnlensError, match="no labels"):
        labelled_folder(tmp_path / "flat")


def test_idx_files(tmp_path: Path) -> None:
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    labels = np.array([7, 1, 3], dtype=np.uint8)
    header = lambda arr, code: bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)  # noqa: E731
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(header(images, 3) + images.tobytes())
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(header(labels, 1) + labels.tobytes())
    assert np.array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), images)
    data = labelled_folder(tmp_path, limit=2)
    x, y = data[1]
    assert data.labels == [7, 1] and y == 1 and x.shape == (1, 4, 5)
    assert torch.allclose(x[0], torch.from_numpy(images[1]).float() / 255)


# ---------------------------------------------------------------- robustness mechanics

def test_robustness_matches_per_eps_attacks_and_leaves_the_model_alone() -> None:
    net = tiny_net()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(10, 3, 8, 8, generator=g)
    with torch.no_grad():
        pred = net(x).argmax(1)
    y = pred.clone()
    y[:3] = (y[:3] + 1) % 3  # 7 of 10 right before the attack
    before = model_state(net)
    eps = [0.0, 0.05, 0.2]
    res = robustness(net, [(x[:4], y[:4]), (x[4:], y[4:])], eps=eps, attacks=["fgsm", "ifgsm", "pgd"], steps=3,
                     generator=torch.Generator().manual_seed(1))
    assert model_state(net) == before
    assert res.n == 10 and res.n_correct == 7 and res.clean_accuracy == pytest.approx(0.7)
    for name in ("fgsm", "ifgsm", "pgd"):
        assert res[name].accuracy[0] == pytest.approx(0.7) and res[name].accuracy_on_correct[0] == 1.0
    for i, e in enumerate(eps[1:], start=1):
        # independent: one call per batch and eps (batch means matter for the gradient scale only, not its sign)
        ok = torch.cat([net(fgsm(net, xb, yb, eps=e)).argmax(1) == yb for xb, yb in ((x[:4], y[:4]), (x[4:], y[4:]))])
        assert res["fgsm"].accuracy[i] == pytest.approx(ok.float().mean().item())
        assert res["fgsm"].accuracy_on_correct[i] == pytest.approx(ok[3:].float().mean().item())
        assert res["fgsm"].flipped[i] == pytest.approx(1 - ok[3:].float().mean().item())
    assert json.loads(res.to_json())["curves"]["pgd"]["accuracy"] == res["pgd"].accuracy
    fig = plot_robustness(res)
    assert len(fig.axes[0].lines) == 6  # 3 attacks x (all, originally correct)


def test_robustness_checks_its_inputs() -> None:
    net = tiny_net()
    x, y = torch.rand(2, 3, 8, 8), torch.tensor([0, 1])
    with pytest.raises(CnnlensError, match="eps"):
        robustness(net, [(x, y)], eps=[0, 2])
    with pytest.raises(CnnlensError, match="unknown attack"):
        robustness(net, [(x, y)], attacks=["cw"])
    with pytest.raises(CnnlensError, match="outside"):
        robustness(net, [(x, torch.tensor([0, 5]))], eps=[0.1])


def test_cli_robustness_on_a_folder(tmp_path: Path) -> None:
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
    out = tmp_path / "curve.png"
    args = ["robustness", f"{src}:M", "--weights", "none", "--data", str(tmp_path / "data"), "--eps", "0,2/255,0.1",
            "--attack", "fgsm,pgd", "--steps", "2", "--batch-size", "4", "-o", str(out), "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["n"] == 9 and data["eps"][1] == pytest.approx(2 / 255) and set(data["curves"]) == {"fgsm", "pgd"}
    assert out.stat().st_size > 1000
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 2 and "exists" in again.stderr
    bad = CliRunner().invoke(cli, [*args[:-3], "--eps", "0,1.5"])
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1


# ---------------------------------------------------------------- meaning, on the real weights

MNIST_EPS_03 = {"clntrained": 0.009, "advtrained": 0.960}  # ../shared/data/README.md, first 1,000 test images


@pytest.mark.parametrize("name", ["clntrained", "advtrained"])
def test_mnist_lenet5_pair_at_eps_0_3(data: Path, name: str) -> None:
    weights = data / "mnist" / f"mnist_lenet5_{name}.pt"
    if not weights.is_file():
        pytest.skip(f"{weights} is absent")
    am = load_attack_model("lenet5-mnist", weights)
    before = model_state(am.model)
    res = robustness(am.model, batches(labelled_folder(data / "mnist", limit=1000), 500), eps=[0.0, 0.3])
    assert model_state(am.model) == before
    assert res.clean_accuracy > 0.97
    assert res["fgsm"].accuracy[1] == pytest.approx(MNIST_EPS_03[name], abs=0.006)


def test_mnist_pgd_is_stronger_than_fgsm_on_the_robust_model(data: Path) -> None:
    weights = data / "mnist" / "mnist_lenet5_advtrained.pt"
    if not weights.is_file():
        pytest.skip(f"{weights} is absent")
    am = load_attack_model("lenet5-mnist", weights)
    res = robustness(am.model, batches(labelled_folder(data / "mnist", limit=100), 100), eps=[0.3], attacks=["fgsm", "pgd"],
                     steps=5, generator=torch.Generator().manual_seed(0))
    assert res["pgd"].accuracy[0] < res["fgsm"].accuracy[0]
    assert res["pgd"].accuracy[0] > 0.8  # adversarial training (PGD-40 at 0.3) holds against PGD-5 too


def _imagenet_flip_rate(data: Path, model: nn.Module, every: int) -> tuple[float, int, float]:
    from cnnlens.attacks import AttackModel

    samples = data / "imagenet_samples"
    if not (samples / "labels.csv").is_file():
        pytest.skip("imagenet_samples are absent")
    from cnnlens import Normalized, preprocessing

    prep = preprocessing("mobilenet_v2")
    wrapped = AttackModel("mobilenet_v2", Normalized(model, prep.mean, prep.std).eval(), (3, 224, 224), prep.categories,
                          lambda im: prep.resize_and_crop(im.expand(3, -1, -1) if im.shape[0] == 1 else im).clamp(0, 1))
    ds = labelled_folder(samples, transform=wrapped.image)
    ds = ds.subset(range(0, len(ds), every))
    res = robustness(wrapped.model, batches(ds, 25), eps=[0.0, 0.007])
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
    assert clean == pytest.approx(0.826, abs=0.003)  # README: 82.4 % with PIL resizing; 826/1000 with cnnlens loading
    assert flipped == pytest.approx(FLIPPED_ALL_1000, abs=0.01)
    assert not math.isnan(flipped)


FLIPPED_ALL_1000 = 804 / 826  # `cnnlens robustness mobilenet_v2 ... --eps 0,0.007` on all 1,000 (docs/attacks.md)
