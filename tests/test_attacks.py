"""FGSM / iterative FGSM / PGD: analytic checks, torchattacks and captum agreement, model hygiene, results, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from click.testing import CliRunner

import cnnlens
from cnnlens import CnnlensError, Normalized, Preprocessing
from cnnlens.attacks import attack, fgsm, input_gradient, iterative_fgsm, pgd, predict, quantize_8bit
from cnnlens.cli import cli
from cnnlens.testing import model_state

# pixels straight in: no normalization, no resize
IDENTITY = Preprocessing(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), resize_size=None, crop_size=None)
IMAGENET = Preprocessing()


def linear_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).eval()


def small_cnn(seed: int = 0) -> nn.Module:
    """Conv + BN + Dropout + in-place ReLU: train mode would change its output and its BN statistics."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 4),
    )


def images(n: int = 4, size: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def full_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer (BatchNorm running statistics and counters included)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


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
    adv = fgsm(net, x, y, eps=eps, preprocessing=IDENTITY)
    torch.testing.assert_close(adv, expected, atol=1e-7, rtol=0)
    torch.testing.assert_close(input_gradient(net, x, y, preprocessing=IDENTITY), grad, atol=1e-7, rtol=1e-5)
    inside = (x > eps) & (x < 1 - eps)
    assert torch.allclose((adv - x)[inside].abs(), torch.tensor(eps), atol=1e-6)
    with torch.no_grad():
        assert F.cross_entropy(net(adv), y) > F.cross_entropy(net(x), y) + 1e-3


def test_the_models_normalization_is_applied_inside() -> None:
    """A plain module gets ImageNet statistics (model_info); preprocessing= overrides; Normalized is used as it is."""
    net = linear_model()
    x, y = images(), torch.tensor([0, 1, 2, 3])
    wrapped = Normalized(net, IMAGENET)
    by_default = fgsm(net, x, y, eps=0.05)
    assert torch.equal(by_default, fgsm(wrapped, x, y, eps=0.05))
    assert torch.equal(by_default, fgsm(net, x, y, eps=0.05, preprocessing=IMAGENET))
    assert not torch.equal(by_default, fgsm(net, x, y, eps=0.05, preprocessing=IDENTITY))
    # the gradient is taken through the normalization: d/dx J(W (x - m) / s) = grad_z / s
    z = IMAGENET.normalize(x)
    W, b = net[1].weight.detach(), net[1].bias.detach()
    p = F.softmax(z.flatten(1) @ W.T + b, dim=1)
    grad_z = ((p - F.one_hot(y, 5).float()) @ W / len(y)).view_as(x)
    std = torch.tensor(IMAGENET.std).view(1, 3, 1, 1)
    torch.testing.assert_close(input_gradient(net, x, y), grad_z / std, atol=1e-6, rtol=1e-5)


def test_targeted_fgsm_lowers_the_target_loss_and_pgd_reaches_the_target() -> None:
    net = linear_model()
    x, t = images(), torch.full((4,), 4)
    adv = fgsm(net, x, t, eps=0.02, targeted=True, preprocessing=IDENTITY)
    with torch.no_grad():
        assert F.cross_entropy(net(adv), t) < F.cross_entropy(net(x), t)
    res = attack(net, x, target=4, eps=0.5, steps=20, step_size=0.05, preprocessing=IDENTITY)
    assert res.success.all() and (res.adversarial_class == 4).all()
    assert res.perturbation.abs().max() <= 0.5 + 1e-6
    assert res.target_names == ["class 4"] * 4 and res.kind == "iterative FGSM"


def test_pgd_stays_in_the_ball_and_in_range_and_repeats_under_a_seed() -> None:
    net = small_cnn().eval()
    x, y = images(6, 8), torch.tensor([0, 1, 2, 3, 0, 1])
    eps = 8 / 255
    run = lambda seed: pgd(net, x, y, eps=eps, steps=5, seed=seed, preprocessing=IDENTITY)  # noqa: E731
    a, b, c = run(3), run(3), run(4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - x).abs().max() <= eps + 1e-6 and a.min() >= 0 and a.max() <= 1
    with torch.no_grad():
        loss = lambda z: F.cross_entropy(net(z), y).item()  # noqa: E731
        assert loss(a) > loss(fgsm(net, x, y, eps=eps, preprocessing=IDENTITY)) - 1e-4 > loss(x)


def test_eps_zero_returns_the_image_and_bad_numbers_are_refused_naming_the_parameter() -> None:
    net = linear_model()
    x = images()
    assert torch.equal(fgsm(net, x, 0, eps=0), x)
    for bad in (-0.01, 1.5, float("nan"), float("inf"), "abc"):
        with pytest.raises(CnnlensError, match=r"^eps ") as info:
            fgsm(net, x, 0, eps=bad)
        assert info.value.param == "eps"
    for kwargs, param in [
        ({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"), ({"step_size": float("nan")}, "step_size"),
        ({"step_size": -0.1}, "step_size"), ({"step_size": 0}, "step_size"), ({"step_size": 2}, "step_size"),
    ]:
        with pytest.raises(CnnlensError, match=rf"^{param} ") as info:
            attack(net, x, eps=0.1, **{"steps": 3, **kwargs})
        assert info.value.param == param
    with pytest.raises(CnnlensError, match="out of range"):
        fgsm(net, x, 7, eps=0.1)
    with pytest.raises(CnnlensError, match="out of range"):
        pgd(net, x, -1, eps=0.1, steps=2, targeted=True)
    with pytest.raises(CnnlensError, match=r"\[0, 1\]"):
        fgsm(net, x * 3 - 1, 0, eps=0.1)  # normalized input, not pixels
    with pytest.raises(CnnlensError, match="4 images"):
        attack(net, x, [0, 1], eps=0.1)


# ---------------------------------------------------------------- agreement with torchattacks and captum

def cnn_pixels() -> nn.Module:
    """A conv-BN-ReLU CNN with the ImageNet normalization inside: pixels in [0, 1] in, logits out."""
    torch.manual_seed(0)
    block = lambda cin, cout: [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]  # noqa: E731
    body = nn.Sequential(*block(3, 16), nn.MaxPool2d(2), *block(16, 32), *block(32, 32), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    for m in body.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial running statistics, as in a trained model
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return Normalized(body, IMAGENET).eval()


def test_fgsm_matches_torchattacks() -> None:
    torchattacks = pytest.importorskip("torchattacks")
    net = cnn_pixels()
    raw = net.model
    x, y = images(8, 24), torch.tensor([1, 3, 5, 7, 0, 2, 4, 6])
    for eps in (0.007, 8 / 255, 0.3):
        theirs = torchattacks.FGSM(net, eps=eps)(x, y)
        torch.testing.assert_close(fgsm(net, x, y, eps=eps), theirs, atol=1e-6, rtol=0)
        torch.testing.assert_close(fgsm(raw, x, y, eps=eps, preprocessing=IMAGENET), theirs, atol=1e-6, rtol=0)
    # the same with torchattacks normalizing a raw model itself
    atk = torchattacks.FGSM(raw, eps=8 / 255)
    atk.set_normalization_used(mean=list(IMAGENET.mean), std=list(IMAGENET.std))
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
    res = attack(net.model, x, y, eps=8 / 255, steps=5, step_size=2 / 255, preprocessing=IMAGENET)
    assert torch.equal(res.adversarial, ours)


def test_fgsm_matches_captum_robust_with_a_logits_loss_and_captum_default_loss_is_wrong_on_logits() -> None:
    from captum.robust import FGSM

    net = small_cnn().eval()
    x, y = images(4, 8), torch.tensor([0, 1, 2, 3])
    ce = lambda out, t: F.cross_entropy(out, t, reduction="none")  # noqa: E731  (per-sample losses, as captum wants)
    captum_fgsm = FGSM(net, loss_func=ce, lower_bound=0.0, upper_bound=1.0)
    captum_fgsm.zero_thresh = 0.0  # captum leaves |grad| <= 1e-6 unperturbed by default
    theirs = captum_fgsm.perturb(x, 0.05, y)
    torch.testing.assert_close(fgsm(net, x, y, eps=0.05, preprocessing=IDENTITY), theirs, atol=1e-6, rtol=0)
    default = FGSM(net, lower_bound=0.0, upper_bound=1.0).perturb(x, 0.05, y)  # -log(output): assumes probabilities
    assert not torch.allclose(default, theirs, atol=1e-6)


# ---------------------------------------------------------------- model hygiene

def test_a_model_left_in_train_mode_keeps_its_state_and_batchnorm_statistics() -> None:
    net = small_cnn()
    net.train()  # a user's model left in training mode, parameters trainable
    x, y = images(4, 8), torch.tensor([0, 1, 2, 3])
    before, state = model_state(net), full_state(net)
    calls = [
        lambda: input_gradient(net, x, y),
        lambda: fgsm(net, x, y, eps=0.03),
        lambda: pgd(net, x, y, eps=0.03, steps=3, seed=0),
        lambda: attack(net, x, y, eps=0.03),
        lambda: attack(net, x, y, eps=0.03, steps=2, random_start=True),
        lambda: predict(net, x),
    ]
    for call in calls:
        call()
        assert model_state(net) == before and same_state(full_state(net), state)
        assert net.training and all(m.training for m in net.modules())
    g_train = input_gradient(net, x, y)
    net.eval()
    assert torch.equal(g_train, input_gradient(net, x, y))  # eval mode inside: BN running statistics, no Dropout
    r1 = attack(net, x, y, eps=0.03)
    net.train()
    assert torch.equal(attack(net, x, y, eps=0.03).adversarial, r1.adversarial)
    for bad in ([0, 1, 2, 9], "nine"):
        with pytest.raises(CnnlensError):
            attack(net, x, bad, eps=0.03)
    with pytest.raises(CnnlensError):
        attack(net, x, y, eps=2.0)
    assert model_state(net) == before and same_state(full_state(net), state)


# ---------------------------------------------------------------- results

def test_attack_result_numbers_names_and_cpu_tensors() -> None:
    net = small_cnn().eval()
    x = images(3, 8)
    res = attack(net, x, eps=0.1, preprocessing=IDENTITY)
    cls, conf = predict(net, x, preprocessing=IDENTITY)
    assert torch.equal(res.labels, cls) and torch.equal(res.clean_class, cls)
    torch.testing.assert_close(res.clean_probability, conf)
    cls2, conf2 = predict(net, res.adversarial, preprocessing=IDENTITY)
    assert torch.equal(res.adversarial_class, cls2)
    torch.testing.assert_close(res.adversarial_probability, conf2)
    cls8, conf8 = predict(net, quantize_8bit(res.adversarial), preprocessing=IDENTITY)
    assert torch.equal(res.saved_class, cls8) and torch.equal(res.saved_adversarial, quantize_8bit(res.adversarial))
    torch.testing.assert_close(res.saved_probability, conf8)
    for t in (res.original, res.adversarial, res.gradient_sign, res.labels, res.clean_class, res.saved_class):
        assert t.device.type == "cpu"
    assert res.clean_names == [f"class {int(c)}" for c in cls]
    data = res.to_dict()
    assert json.loads(res.to_json()) == json.loads(json.dumps(data))
    assert data["model"] == "Sequential" and data["random_init"] is False and data["attack"] == "FGSM"
    assert len(data["images"]) == 3 and data["images"][1]["clean_class"] == int(cls[1])
    assert data["success_rate"] == pytest.approx(float(res.success.float().mean()))
    fig = res.figure(1)
    assert len(fig.axes) == 5 and "x_adv" in fig.axes[4].get_title() and "8-bit" in fig.axes[4].get_title()
    assert "Sequential" in fig._suptitle.get_text()


def test_class_names_of_a_registry_model_label_by_name_and_random_init_in_json_and_title() -> None:
    model = cnnlens.create_model("resnet18", None, seed=0)
    x = images(1, 64)
    res = attack(model, x, "tabby", eps=0.03, target="Goldfish")
    assert int(res.labels[0]) == 281 and res.label_names == ["tabby"] and res.target_names == ["goldfish"]
    assert res.adversarial_names == [model.cnnlens_info.categories[int(res.adversarial_class[0])]]
    data = res.to_dict()
    assert data["random_init"] is True and data["weights"] == "random init, seed 0"
    assert data["images"][0]["label_name"] == "tabby" and data["images"][0]["target"] == 1
    assert "random init, seed 0" in res.figure()._suptitle.get_text()
    html = res._repr_html_()
    assert "resnet18" in html and "<img" in html and res.adversarial_names[0] in html
    with pytest.raises(CnnlensError, match=r"^label: unknown class 'tabbby' \(did you mean: tabby"):
        attack(model, x, "tabbby", eps=0.03)
    with pytest.raises(CnnlensError, match=r"^target: class 1000 out of range"):
        attack(model, x, target=1000, eps=0.03)


def test_images_as_paths_are_prepared_for_the_model_and_the_saved_file_is_what_was_classified(tmp_path: Path, photo: Path) -> None:
    from cnnlens.images import load_image

    model = cnnlens.create_model("lenet5", None, seed=0)  # 1-channel 32x32 classifier
    res = attack(model, photo, eps=0.05, steps=3, random_start=True, seed=0)
    assert res.original.shape == (1, 1, 32, 32) and res.source == str(photo)
    out = res.save_image(tmp_path / "adv.png")
    back = model.cnnlens_info.preprocessing.prepare(load_image(out)[None], fit="none")
    torch.testing.assert_close(back, res.saved_adversarial, atol=1e-6, rtol=0)
    cls, prob = predict(model, out)
    assert torch.equal(cls, res.saved_class)
    torch.testing.assert_close(prob, res.saved_probability, atol=1e-5, rtol=0)
    with pytest.raises(CnnlensError, match="exists"):
        res.save_image(out)
    with pytest.raises(CnnlensError, match="suffix"):
        res.save_image(tmp_path / "adv.jpg")


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


def test_cli_fgsm_json_is_the_result_and_files_are_written(tmp_path: Path, user_model: str, photo: Path) -> None:
    from cnnlens.images import load_image

    out = tmp_path / "fig.png"
    result = run(["fgsm", user_model, str(photo), "-w", "none", "--eps", "8/255", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    expected = attack(cnnlens.create_model(user_model, None, seed=0), photo, eps=8 / 255).to_dict()
    assert data == json.loads(json.dumps(expected))  # --json is exactly result.to_dict()
    row = data["images"][0]
    assert data["eps"] == pytest.approx(8 / 255) and row["linf"] <= 8 / 255 + 1e-6 and data["weights"] == "random init, seed 0"
    assert row["clean_name"] in ("zero", "one", "two") and row["saved_name"] in ("zero", "one", "two")
    adv = load_image(tmp_path / "fig-adversarial.png")
    assert adv.shape == (3, 28, 28) and out.stat().st_size > 1000
    before = out.read_bytes()
    again = run(["fgsm", user_model, str(photo), "-w", "none", "-o", str(out)])
    assert again.exit_code == 2 and "exists" in again.stderr and out.read_bytes() == before  # never overwrites silently
    targeted = run(["fgsm", user_model, str(photo), "-w", "none", "--target", "two", "--eps", "1",
                    "--steps", "5", "--step-size", "0.2", "-o", str(out), "--overwrite", "--json"])
    assert targeted.exit_code == 0, targeted.output
    data = json.loads(targeted.stdout)
    assert data["images"][0]["target"] == 2 and data["images"][0]["target_name"] == "two" and data["steps"] == 5
    text = run(["fgsm", user_model, str(photo), "-w", "none", "-o", str(tmp_path / "t.png")])
    assert "as an 8-bit image" in text.stdout and (tmp_path / "t-adversarial.png").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--eps", "1.5"], "Error: --eps must be <= 1"),
        (["--eps", "-0.1"], "Error: --eps must be >= 0"),
        (["--eps", "nan"], "Error: --eps must be a finite number"),
        (["--eps", "abc"], "Error: --eps 'abc'"),
        (["--step-size", "nan", "--steps", "3"], "Error: --step-size must be a finite number"),
        (["--step-size", "-1", "--steps", "3"], "Error: --step-size must be > 0"),
        (["--steps", "0"], "Error: --steps must be >= 1"),
        (["--label", "seven"], "Error: --label: unknown class 'seven'"),
        (["--label", "3"], "Error: --label: class 3 out of range"),
        (["--target", "banana"], "Error: --target: unknown class 'banana'"),
        (["-o", "f.xyz"], "Error: --output"),
        (["--image", "a.jpg"], "Error: --image"),
        (["--image", "f.png"], "Error: --output and --image are the same file"),
        (["-w", "missing.pt"], "Error: --weights"),
    ],
)
def test_cli_fgsm_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, user_model: str, photo: Path, extra: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["fgsm", user_model, str(photo), "-w", "none", "-o", "f.png", *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", "tiny.py"]


def test_cli_fgsm_model_without_pretrained_weights_needs_w(tmp_path: Path, photo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["fgsm", "mnist-cnn", str(photo)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: --weights: mnist-cnn has no pretrained weights") and "none" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_cli_fgsm_unreadable_image_is_one_line_and_exit_2(tmp_path: Path, user_model: str) -> None:
    bad = tmp_path / "broken.png"
    bad.write_text("not an image")
    for path in (bad, tmp_path / "missing.png"):
        result = CliRunner().invoke(cli, ["fgsm", user_model, str(path), "-w", "none", "-o", str(tmp_path / "f.png")])
        assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "image" in result.stderr
        assert not (tmp_path / "f.png").exists() and not (tmp_path / "f-adversarial.png").exists()


SOURCES = ["squeezenet1_0", "lenet5", "mnist-cnn", "FILE", "timm/resnet18"]


@pytest.mark.parametrize("name", SOURCES)
def test_cli_fgsm_on_every_registry_source_repeats_under_a_seed(tmp_path: Path, photo: Path, user_model: str, name: str) -> None:
    if name.startswith("timm/"):
        pytest.importorskip("timm")
    model = user_model if name == "FILE" else name

    def files(seed: int, tag: str) -> tuple[bytes, bytes, dict]:
        out = tmp_path / f"{tag}.png"
        result = run(["fgsm", model, str(photo), "-w", "none", "--seed", str(seed), "--eps", "0.05", "--steps", "2",
                      "--random-start", "-o", str(out), "--json"])
        assert result.exit_code == 0, result.output
        return out.read_bytes(), (tmp_path / f"{tag}-adversarial.png").read_bytes(), json.loads(result.stdout)

    a, b, c = files(0, "a"), files(0, "b"), files(1, "c")
    assert a == b  # same seed: same random init, same random start, same bytes
    assert a[1] != c[1] and a[0] != c[0] and a[2] != c[2]
    assert a[2]["random_init"] is True and a[2]["weights"] == "random init, seed 0" and a[2]["attack"] == "PGD"
    size = {"lenet5": [1, 32, 32], "mnist-cnn": [1, 28, 28], "FILE": [1, 28, 28]}.get(name, [3, 224, 224])
    assert a[2]["input_size"] == size


@pytest.mark.slow
def test_pgd_agreement_with_torchattacks_on_trained_mobilenet(mobilenet_trained: nn.Module, data) -> None:  # noqa: ANN001
    """16 ImageNet samples, eps 8/255, 10 steps of 2/255 from the images (torchattacks' PGD without random
    start): the plain float path (contiguous input, BatchNorm as it is) gives torchattacks' pixels; the fast
    default (BatchNorm folded, channels-last) rounds differently, which flips the signs of near-zero
    gradients, so the pixels part ways (how many agree depends on the machine and its threads) while the attack does the same."""
    import csv

    from cnnlens.attacks.core import pgd_steps
    from cnnlens.hooks import eval_mode
    from cnnlens.pixelnet import pixel_net

    torchattacks = pytest.importorskip("torchattacks")
    prep = cnnlens.model_info(mobilenet_trained).preprocessing
    rows = list(csv.DictReader(open(data / "imagenet_samples/labels.csv")))[::62][:16]
    x = cnnlens.pixels.as_pixels([str(data / "imagenet_samples" / r["filename"]) for r in rows], prep, fit="crop")
    y = torch.tensor([int(r["class_index"]) for r in rows])
    net = Normalized(mobilenet_trained, prep).eval()
    theirs = torchattacks.PGD(net, eps=8 / 255, alpha=2 / 255, steps=10, random_start=False)(x, y)
    with eval_mode(mobilenet_trained):
        plain = pgd_steps(pixel_net(mobilenet_trained, prep), x, y, eps=8 / 255, step_size=2 / 255, steps=10, random_start=False, channels_last=False)
    assert ((plain - theirs).abs() <= 1e-6).float().mean() > 0.999
    fast = iterative_fgsm(mobilenet_trained, x, y, eps=8 / 255, step_size=2 / 255, steps=10)
    with torch.no_grad():
        ours, ref = net(fast).argmax(1), net(theirs).argmax(1)
    assert (ours != y).sum() == (ref != y).sum() == 16  # every image fooled by both
    assert (ours == ref).sum() >= 14
    assert (fast - theirs).abs().max() <= 2 * 8 / 255 + 1e-6
