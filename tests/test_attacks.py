"""FGSM / iterative FGSM / PGD: analytic checks, torchattacks agreement, model hygiene, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from click.testing import CliRunner

from cnnlens import CnnlensError, Normalized
from cnnlens.attacks import attack, fgsm, iterative_fgsm, pgd, plot_attack, predict
from cnnlens.cli import cli
from cnnlens.testing import model_state


def linear_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).eval()


def small_cnn(seed: int = 0) -> nn.Module:
    """Conv + BN + Dropout + in-place ReLU: train mode would change its output."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 4),
    )


def images(n: int = 4, size: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- analytic

def test_fgsm_on_linear_model_is_eps_times_sign_of_analytic_gradient() -> None:
    net = linear_model()
    x, y = images(), torch.tensor([0, 1, 2, 3])
    eps = 0.05
    # independent gradient of mean cross-entropy for logits = W x + b: W^T (softmax - onehot) / B
    W, b = net[1].weight.detach(), net[1].bias.detach()
    p = F.softmax(x.flatten(1) @ W.T + b, dim=1)
    grad = ((p - F.one_hot(y, 5).float()) @ W / len(y)).view_as(x)
    expected = (x + eps * grad.sign()).clamp(0, 1)
    adv = fgsm(net, x, y, eps=eps)
    torch.testing.assert_close(adv, expected, atol=1e-7, rtol=0)
    inside = (x > eps) & (x < 1 - eps)
    assert torch.allclose((adv - x)[inside].abs(), torch.tensor(eps), atol=1e-6)
    with torch.no_grad():
        assert F.cross_entropy(net(adv), y) > F.cross_entropy(net(x), y) + 1e-3


def test_targeted_fgsm_lowers_the_target_loss_and_pgd_reaches_the_target() -> None:
    net = linear_model()
    x, t = images(), torch.full((4,), 4)
    adv = fgsm(net, x, t, eps=0.02, targeted=True)
    with torch.no_grad():
        assert F.cross_entropy(net(adv), t) < F.cross_entropy(net(x), t)
    res = attack(net, x, target=4, eps=0.5, steps=20, step_size=0.05)
    assert res.success.all() and (res.adversarial_class == 4).all()
    assert res.perturbation.abs().max() <= 0.5 + 1e-6


def test_pgd_stays_in_the_ball_and_in_range_and_repeats_under_a_seed() -> None:
    net = small_cnn().eval()
    x, y = images(6, 8), torch.tensor([0, 1, 2, 3, 0, 1])
    eps = 8 / 255
    a = pgd(net, x, y, eps=eps, steps=5, generator=torch.Generator().manual_seed(3))
    b = pgd(net, x, y, eps=eps, steps=5, generator=torch.Generator().manual_seed(3))
    c = pgd(net, x, y, eps=eps, steps=5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - x).abs().max() <= eps + 1e-6 and a.min() >= 0 and a.max() <= 1
    with torch.no_grad():
        loss = lambda z: F.cross_entropy(net(z), y).item()  # noqa: E731
        assert loss(a) > loss(fgsm(net, x, y, eps=eps)) - 1e-4 > loss(x)


def test_eps_zero_returns_the_image_and_eps_is_checked() -> None:
    net = linear_model()
    x = images()
    assert torch.equal(fgsm(net, x, 0, eps=0), x)
    for bad in (-0.01, 1.5, float("nan")):
        with pytest.raises(CnnlensError, match="eps"):
            fgsm(net, x, 0, eps=bad)
    with pytest.raises(CnnlensError, match="outside the model's classes"):
        fgsm(net, x, 7, eps=0.1)
    with pytest.raises(CnnlensError, match="outside the model's classes"):
        pgd(net, x, -1, eps=0.1, steps=2, targeted=True)
    with pytest.raises(CnnlensError, match=r"\[0, 1\]"):
        fgsm(net, x * 3 - 1, 0, eps=0.1)  # normalized input, not pixels


# ---------------------------------------------------------------- agreement with torchattacks

def cnn_pixels() -> nn.Module:
    """A conv-BN-ReLU CNN with the ImageNet normalization inside: pixels in [0, 1] in, logits out."""
    torch.manual_seed(0)
    block = lambda cin, cout: [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]  # noqa: E731
    body = nn.Sequential(*block(3, 16), nn.MaxPool2d(2), *block(16, 32), *block(32, 32), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    for m in body.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial running statistics, as in a trained model
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return Normalized(body, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)).eval()


def test_fgsm_matches_torchattacks() -> None:
    torchattacks = pytest.importorskip("torchattacks")
    net = cnn_pixels()
    x, y = images(8, 24), torch.tensor([1, 3, 5, 7, 0, 2, 4, 6])
    for eps in (0.007, 8 / 255, 0.3):
        ours = fgsm(net, x, y, eps=eps)
        theirs = torchattacks.FGSM(net, eps=eps)(x, y)
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    # the same with torchattacks normalizing a raw model itself
    raw = net.model
    atk = torchattacks.FGSM(raw, eps=8 / 255)
    atk.set_normalization_used(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    theirs = atk(atk.normalize(x), y)
    torch.testing.assert_close(fgsm(net, x, y, eps=8 / 255), atk.inverse_normalize(theirs), atol=1e-5, rtol=0)
    # targeted
    t = torch.tensor([0, 0, 2, 2, 9, 9, 8, 8])
    atk = torchattacks.FGSM(net, eps=4 / 255)
    atk.set_mode_targeted_by_label(quiet=True)
    torch.testing.assert_close(fgsm(net, x, t, eps=4 / 255, targeted=True), atk(x, t), atol=1e-6, rtol=0)


def test_iterative_fgsm_matches_torchattacks_pgd_without_random_start() -> None:
    torchattacks = pytest.importorskip("torchattacks")
    net = cnn_pixels()
    x, y = images(8, 24), torch.tensor([1, 3, 5, 7, 0, 2, 4, 6])
    ours = iterative_fgsm(net, x, y, eps=8 / 255, step_size=2 / 255, steps=5)
    theirs = torchattacks.PGD(net, eps=8 / 255, alpha=2 / 255, steps=5, random_start=False)(x, y)
    close = (ours - theirs).abs() <= 1e-6
    assert close.float().mean() > 0.999  # one ulp in a projection can flip a zero-gradient sign later


def test_fgsm_matches_captum_robust_with_a_logits_loss_and_captum_default_loss_is_wrong_on_logits() -> None:
    from captum.robust import FGSM

    net = small_cnn().eval()
    x, y = images(4, 8), torch.tensor([0, 1, 2, 3])
    ce = lambda out, t: F.cross_entropy(out, t, reduction="none")  # noqa: E731  (per-sample losses, as captum wants)
    captum_fgsm = FGSM(net, loss_func=ce, lower_bound=0.0, upper_bound=1.0)
    captum_fgsm.zero_thresh = 0.0  # captum leaves |grad| <= 1e-6 unperturbed by default
    theirs = captum_fgsm.perturb(x, 0.05, y)
    torch.testing.assert_close(fgsm(net, x, y, eps=0.05), theirs, atol=1e-6, rtol=0)
    default = FGSM(net, lower_bound=0.0, upper_bound=1.0).perturb(x, 0.05, y)  # -log(output): assumes probabilities
    assert not torch.allclose(default, theirs, atol=1e-6)


# ---------------------------------------------------------------- model hygiene

def test_model_state_is_unchanged_and_eval_mode_is_used() -> None:
    net = small_cnn()
    net.train()  # a user's model left in training mode, parameters trainable
    x, y = images(4, 8), torch.tensor([0, 1, 2, 3])
    before = model_state(net)
    running = net[1].running_mean.clone()
    r1 = attack(net, x, y, eps=0.03)
    pgd(net, x, y, eps=0.03, steps=3, generator=torch.Generator().manual_seed(0))
    assert model_state(net) == before
    assert torch.equal(net[1].running_mean, running)  # BN statistics not updated: eval mode inside
    net.eval()
    r2 = attack(net, x, y, eps=0.03)
    assert torch.equal(r1.adversarial, r2.adversarial)
    net.train()
    assert model_state(net) == before
    with pytest.raises(CnnlensError):
        attack(net, x, [0, 1, 2, 9], eps=0.03)  # unknown label
    with pytest.raises(CnnlensError):
        attack(net, x, y, eps=2.0)
    assert model_state(net) == before


def test_attack_result_reports_predictions_and_uses_the_prediction_as_label() -> None:
    net = small_cnn().eval()
    x = images(3, 8)
    res = attack(net, x, eps=0.1, categories=["a", "b", "c", "d"])
    cls, conf = predict(net, x)
    assert torch.equal(res.labels, cls) and torch.equal(res.clean_class, cls)
    torch.testing.assert_close(res.clean_probability, conf)
    cls2, conf2 = predict(net, res.adversarial)
    assert torch.equal(res.adversarial_class, cls2)
    torch.testing.assert_close(res.adversarial_probability, conf2)
    rows = res.to_dict()
    assert len(rows) == 3 and rows[0]["clean_category"] in "abcd"
    assert json.loads(json.dumps(rows))[0]["eps"] == pytest.approx(0.1)
    fig = plot_attack(res, 1)
    assert len(fig.axes) == 5 and "x_adv" in fig.axes[4].get_title()


# ---------------------------------------------------------------- CLI

@pytest.fixture
def user_model(tmp_path: Path) -> str:
    src = tmp_path / "tiny.py"
    src.write_text(
        "import torch.nn as nn\n"
        "class Tiny(nn.Module):\n"
        "    input_size = (1, 28, 28)\n"
        "    categories = ['zero', 'one', 'two']\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 3))\n"
        "    def forward(self, x):\n"
        "        return self.net(x)\n"
    )
    return f"{src}:Tiny"


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    import skimage.io

    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    skimage.io.imsave(path, (rng.random((40, 48, 3)) * 255).astype(np.uint8), check_contrast=False)
    return path


def run(args: list[str]) -> object:
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_cli_fgsm_writes_figure_and_adversarial_image(tmp_path: Path, user_model: str, photo: Path) -> None:
    from cnnlens.images import load_image

    out = tmp_path / "fig.png"
    result = run(["fgsm", user_model, str(photo), "--weights", "none", "--eps", "8/255", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["eps"] == pytest.approx(8 / 255) and data["linf"] <= 8 / 255 + 1e-6
    assert data["clean_category"] in ("zero", "one", "two") and data["saved_category"] in ("zero", "one", "two")
    adv = load_image(tmp_path / "fig-adversarial.png")
    assert adv.shape == (3, 28, 28) and out.stat().st_size > 1000
    again = run(["fgsm", user_model, str(photo), "--weights", "none", "-o", str(out)])
    assert again.exit_code == 2 and "exists" in again.stderr  # never overwrites silently
    targeted = run(["fgsm", user_model, str(photo), "--weights", "none", "--target", "two", "--eps", "1",
                    "--steps", "5", "--step-size", "0.2", "-o", str(out), "--overwrite", "--json"])
    assert targeted.exit_code == 0, targeted.output
    row = json.loads(targeted.stdout)
    assert row["target"] == 2 and row["steps"] == 5


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--eps", "1.5"], "eps"),
        (["--eps", "-0.1"], "eps"),
        (["--eps", "abc"], "eps"),
        (["--label", "seven"], "unknown label"),
        (["--label", "3"], "unknown label"),
        (["--target", "banana"], "unknown target"),
    ],
)
def test_cli_fgsm_bad_input_is_one_line_and_exit_2(tmp_path: Path, user_model: str, photo: Path, extra: list[str], message: str) -> None:
    result = run(["fgsm", user_model, str(photo), "--weights", "none", "-o", str(tmp_path / "f.png"), *extra])
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1 and result.stderr.startswith("Error:")


def test_cli_fgsm_unreadable_image_is_one_line_and_exit_2(tmp_path: Path, user_model: str) -> None:
    bad = tmp_path / "broken.png"
    bad.write_text("not an image")
    for path in (bad, tmp_path / "missing.png"):
        result = run(["fgsm", user_model, str(path), "--weights", "none", "-o", str(tmp_path / "f.png")])
        assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "image" in result.stderr


def test_cli_fgsm_on_a_torchvision_model(tmp_path: Path, photo: Path) -> None:
    out = tmp_path / "m.png"
    result = run(["fgsm", "squeezenet1_1", str(photo), "--weights", "none", "--label", "tench", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["label"] == 0 and data["linf"] == pytest.approx(0.007, abs=1e-6)
    from cnnlens.images import load_image

    assert load_image(tmp_path / "m-adversarial.png").shape == (3, 224, 224)  # resize + centre crop of its weights
