"""Style transfer speed: cnnlens vs the PyTorch tutorial's algorithm, same backbone, size and iterations.

The baseline is the algorithm of pytorch/tutorials ``advanced_source/neural_style_tutorial.py``,
written out here as the tutorial runs it: loss modules inserted into the network (non-in-place ReLUs)
and the network trimmed after its last loss layer, Gram divided by ``a·b·c·d``, MSE losses,
``style_weight=1e6``, ``content_weight=1``, ``LBFGS([img])`` with its defaults (``max_iter=20``, no
line search), the image clamped inside the closure, and steps counted as closure calls.

cnnlens optimizes the *same* objective: with its Gram (÷ H·W) the tutorial's layer loss is
``mean((G - A)²) / C²``, so cnnlens gets ``style_layer_weights = 1e6 / C_l²`` (checked below: both
objectives agree on the same image). Reported: the tutorial's final loss after N closure calls and its
time, and the time cnnlens needs to reach that loss (N L-BFGS iterations at most), as the paired median
over --rounds interleaved rounds (default 7) of cnnlens' time to that loss / the tutorial's time.

    python benchmarks/bench_style.py [--backbone vgg19|squeezenet1_0] [--size 128] [--steps 150] [--rounds 7] [--inits content,color-matched]

The headline row starts cnnlens where the tutorial starts, from the content image (cnnlens' default).
``color-matched`` (the content with the style's colour mean and covariance, Gatys et al. 2017) is
printed as a separate row: a different start, so it compares an option, not the same work.

``--invert`` measures instead how much of a photo comes back from each depth of the ImageNet
squeezenet1_0 by inversion (Mahendran & Vedaldi), with the former defaults (L-BFGS, 200 steps,
λ_TV = 2, no jitter) and the current ones (Adam with a cosine decay, 300 steps, λ_TV = 3 x the layer's
stride, a jitter of stride // 8 pixels):
the pixel correlation with the photo, the correlation of squeezenet's own ``features.4`` activations
(a layer shallower than the deep ones inverted), and that of an independent network's (the ImageNet
mobilenet_v2, ``features.14.conv.0``), which the inversion never saw:

    python benchmarks/bench_style.py --invert --size 224
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import cnnlens
from cnnlens.style import StyleSettings, stylize

from paired import ratios

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WEIGHTS = DATA / "imagenet/squeezenet1_0_imagenet_deepcompression.pth"
# the tutorial's conv_1..conv_5 (style) and conv_4 (content), pre-ReLU, per backbone
TAPS = {
    "vgg19": (["features.0", "features.2", "features.5", "features.7", "features.10"], "features.7"),
    # squeezenet1_0: conv1 (pre-ReLU) then the fire2..fire5 modules
    "squeezenet1_0": (["features.0", "features.3", "features.4", "features.5", "features.7"], "features.5"),
}
STYLE_TAPS, CONTENT_TAP = TAPS["vgg19"]


# ------------------------------------------------------------------ the tutorial's algorithm
def tutorial_gram(x: torch.Tensor) -> torch.Tensor:
    a, b, c, d = x.size()
    f = x.view(a * b, c * d)
    return torch.mm(f, f.t()).div(a * b * c * d)


class ContentLoss(nn.Module):
    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target = target.detach()
        self.loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.loss = F.mse_loss(x, self.target)
        return x


class StyleLoss(nn.Module):
    def __init__(self, target_feature: torch.Tensor) -> None:
        super().__init__()
        self.target = tutorial_gram(target_feature).detach()
        self.loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.loss = F.mse_loss(tutorial_gram(x), self.target)
        return x


class Normalization(nn.Module):
    """The tutorial's normalization module (here the model's own preprocessing)."""

    def __init__(self, preprocessing: cnnlens.Preprocessing) -> None:
        super().__init__()
        self.preprocessing = preprocessing

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.preprocessing.normalize(img)


def tutorial_model(net: nn.Module, content: torch.Tensor, style: torch.Tensor, *, trim: bool):
    """The tutorial's get_style_model_and_losses on squeezenet1_0 (children of ``features``), then the classifier."""
    net = copy.deepcopy(net)
    for m in net.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    model = nn.Sequential()
    model.add_module("normalization", Normalization(cnnlens.model_info(net).preprocessing))
    content_losses, style_losses = [], []
    for i, layer in enumerate(net.features.children()):
        model.add_module(f"layer_{i}", layer)
        name = f"features.{i}"
        if name == CONTENT_TAP:
            cl = ContentLoss(model(content).detach())
            model.add_module(f"content_loss_{i}", cl)
            content_losses.append(cl)
        if name in STYLE_TAPS:
            sl = StyleLoss(model(style).detach())
            model.add_module(f"style_loss_{i}", sl)
            style_losses.append(sl)
        if trim and name == STYLE_TAPS[-1]:
            break
    if not trim:
        if hasattr(net, "avgpool"):  # vgg: avgpool, flatten, 3 fully connected layers
            model.add_module("classifier", nn.Sequential(net.avgpool, nn.Flatten(1), net.classifier))
        else:  # squeezenet: conv classifier, then flatten
            model.add_module("classifier", nn.Sequential(net.classifier, nn.Flatten(1)))
    return model.eval(), style_losses, content_losses


def run_tutorial(net, content, style, steps: int, *, trim: bool, style_weight: float = 1e6, content_weight: float = 1.0):
    model, style_losses, content_losses = tutorial_model(net, content, style, trim=trim)
    model.requires_grad_(False)
    input_img = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([input_img])
    run = [0]
    start = time.perf_counter()
    while run[0] <= steps:

        def closure():
            with torch.no_grad():
                input_img.clamp_(0, 1)
            optimizer.zero_grad()
            model(input_img)
            loss = style_weight * sum(sl.loss for sl in style_losses) + content_weight * sum(cl.loss for cl in content_losses)
            loss.backward()
            run[0] += 1
            return loss

        optimizer.step(closure)
    with torch.no_grad():
        input_img.clamp_(0, 1)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        model(input_img)
        final = style_weight * sum(sl.loss for sl in style_losses) + content_weight * sum(cl.loss for cl in content_losses)
    return input_img.detach(), float(final), seconds, run[0]


# ------------------------------------------------------------------ cnnlens on the same objective
def cnnlens_kwargs(net: nn.Module, style: torch.Tensor) -> dict:
    record = cnnlens.forward_until(net, cnnlens.model_info(net).preprocessing.normalize(style), STYLE_TAPS)
    channels = [record[name].shape[1] for name in STYLE_TAPS]
    return dict(content_layer=CONTENT_TAP, style_layers=STYLE_TAPS, style_layer_weights=[1e6 / c**2 for c in channels],
                content_weight=1.0, style_weight=1.0, tv_weight=0.0)


def run_cnnlens(net, content, style, steps: int, target: float | None = None, init: str = "content"):
    times: list[float] = []
    totals: list[float] = []
    start = time.perf_counter()

    def callback(step) -> None:
        times.append(time.perf_counter() - start)
        totals.append(step.losses["total"])

    settings = StyleSettings(init=init, **cnnlens_kwargs(net, style))
    result = stylize(net, content[0], style[0], steps=steps, settings=settings, callback=callback, progress=False)
    reach = next((t for t, v in zip(times, totals) if target is not None and v <= target), None)
    return result, reach, time.perf_counter() - start


# ------------------------------------------------------------------ inversion quality against depth
OLD_INVERT = dict(settings_kw=dict(optimizer="lbfgs", tv_weight=2.0), steps=200)  # the defaults before Adam with jitter


def measure_inversions(size: int, photo: Path, layers: list[str] | None = None) -> list[dict]:
    """Invert ``photo`` from each inversion layer of the ImageNet squeezenet1_0 with the old and the new defaults."""
    from cnnlens.style import InvertSettings, correlation, invert

    squeeze = cnnlens.create_model("squeezenet1_0", WEIGHTS)
    judge = cnnlens.create_model("mobilenet_v2", DATA / "imagenet/mobilenet_v2_imagenet_dequantized.pth")
    judge_layer = "features.14.conv.0"

    def judged(x: torch.Tensor) -> torch.Tensor:
        return cnnlens.forward_until(judge, cnnlens.model_info(judge).preprocessing.normalize(x[None]), judge_layer)[judge_layer]

    rows = []
    for layer in layers or cnnlens.default_layers(squeeze, "invert"):
        for name, kwargs in (("former (L-BFGS, TV 2)", OLD_INVERT), ("default (Adam)", {})):
            kw = dict(kwargs)
            settings = InvertSettings(**kw.pop("settings_kw", {}))
            result = invert(squeeze, photo, layer, size=size, seed=0, progress=False, settings=settings, **kw)
            rows.append({
                "layer": layer, "settings": name, "reconstruction": result.reconstruction, "pixels": result.pixel_correlation,
                "features.4": result.correlations["features.4"],
                "mobilenet_v2": correlation(judged(result.image), judged(result.original)), "seconds": result.seconds,
            })
            r = rows[-1]
            if not kwargs:
                name = r["settings"] = f"default (Adam, TV {result.settings['tv_weight']:g}, jitter {result.settings['jitter']})"
            print(f"| `{layer}` | {name} | {r['reconstruction']:.3f} | {r['pixels']:.2f} | {r['features.4']:.2f} | "
                  f"{r['mobilenet_v2']:.2f} | {r['seconds']:.0f} |", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invert", action="store_true", help="measure inversion quality against depth instead (needs the data folder)")
    parser.add_argument("--photo", type=Path, default=DATA / "photos/chelsea.png", help="the photo to invert (--invert)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--inits", default="content,color-matched", help="cnnlens start images to time (stylize's init), comma-separated")
    parser.add_argument("--backbone", choices=sorted(TAPS), default="vgg19",
                        help="vgg19 (the tutorial's; random init, its weights are not offline) or squeezenet1_0 (ImageNet weights)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.invert:
        print(f"# {args.photo.name} at {args.size} px, ImageNet squeezenet1_0, torch threads {args.threads}")
        print("| layer | settings | reconstruction loss | pixel corr. | features.4 corr. | mobilenet_v2 corr. | s |")
        print("|---|---|---|---|---|---|---|")
        measure_inversions(args.size, args.photo)
        return
    global STYLE_TAPS, CONTENT_TAP
    STYLE_TAPS, CONTENT_TAP = TAPS[args.backbone]
    photos = DATA / "photos/chelsea.png"
    if args.backbone == "vgg19":
        torch.manual_seed(0)
        net = cnnlens.create_model("vgg19", None)
        if photos.is_file():
            content = cnnlens.load_image(photos, args.size)[None]
            style = cnnlens.load_image(DATA / "style/starry_night.jpg", args.size)[None]
        else:
            content, style = torch.rand(1, 3, args.size, args.size), torch.rand(1, 3, args.size, args.size)
        source = "random-init vgg19 (torch.manual_seed(0)), the tutorial's layers"
    elif WEIGHTS.is_file():
        net = cnnlens.create_model("squeezenet1_0", WEIGHTS)
        content = cnnlens.load_image(DATA / "photos/chelsea.png", args.size)[None]
        style = cnnlens.load_image(DATA / "style/starry_night.jpg", args.size)[None]
        source = "ImageNet squeezenet1_0 (development data folder), chelsea.png in starry_night.jpg"
    else:
        torch.manual_seed(0)
        net = cnnlens.create_model("squeezenet1_0", None)
        content, style = torch.rand(1, 3, args.size, args.size), torch.rand(1, 3, args.size, args.size)
        source = "random-init squeezenet1_0, random images (../shared/data absent)"
    net.requires_grad_(False)
    style = F.interpolate(style, size=content.shape[-2:], mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)

    # the two objectives are the same function
    model, sls, cls = tutorial_model(net, content, style, trim=True)
    probe = (content + 0.1 * torch.randn(content.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    with torch.no_grad():
        model(probe)
        tut = 1e6 * sum(s.loss for s in sls) + sum(c.loss for c in cls)
    from cnnlens.style import StyleObjective

    with cnnlens.eval_mode(net):
        ours, _ = StyleObjective(net, content, [style], **cnnlens_kwargs(net, style))(probe)
    print(f"# {source}, {tuple(content.shape[-2:])} px, {args.steps} L-BFGS iterations, torch threads {args.threads}")
    print(f"objective check: tutorial {float(tut):.6g}  cnnlens {float(ours):.6g}  (rel. diff {abs(float(tut) - float(ours)) / float(tut):.1e})")

    print("baseline: the tutorial's algorithm on its trimmed network (it stops after the last loss layer)")
    inits = args.inits.split(",")
    tutorial_times: list[float] = []
    reach: dict[str, list[float]] = {init: [] for init in inits}
    whole: dict[str, list[float]] = {init: [] for init in inits}
    final: dict[str, float] = {}
    target = None
    for _ in range(args.rounds):  # interleaved: the tutorial, then cnnlens from each start
        _, loss, seconds, evals = run_tutorial(net, content, style, args.steps, trim=True)
        target = loss if target is None else target
        tutorial_times.append(seconds)
        for init in inits:
            result, reached, total = run_cnnlens(net, content, style, args.steps, target, init)
            reach[init].append(reached if reached is not None else float("inf"))
            whole[init].append(total)
            final[init] = result.history[-1]["total"]
    print(f"{'tutorial (trimmed)':30s} final loss {target:10.4g}  best {min(tutorial_times):6.2f} s  ({evals} closure calls)")
    for init in inits:
        label = "cnnlens, same start (content)" if init == "content" else f"cnnlens, other start ({init})"
        median, lo, hi = ratios(reach[init], tutorial_times)
        if median == float("inf"):
            print(f"{label:30s} final loss {final[init]:10.4g}  did not reach {target:.4g} in {args.steps} iterations in most rounds; "
                  f"its {args.steps} iterations took {ratios(whole[init], tutorial_times)[0]:.2f} of the tutorial's time (paired median)")  # fmt: skip
        else:
            print(f"{label:30s} final loss {final[init]:10.4g}  time to the tutorial's loss / tutorial time: paired median {median:.2f} "
                  f"(range {lo:.2f}-{hi:.2f}, {args.rounds} rounds)")  # fmt: skip


if __name__ == "__main__":
    main()
