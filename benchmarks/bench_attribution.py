"""cnnlens Grad-CAM against pytorch-grad-cam's ``GradCAM`` on the same model, layer, images and batch.

    pip install --no-deps --target /tmp/gradcam grad-cam ttach opencv-python-headless   # benchmark only, never a cnnlens dependency
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_attribution.py [--gradcam-path /tmp/gradcam] [--device cuda] [--quick]

The folder given by --gradcam-path is appended to ``sys.path`` after the project's own packages, so
pytorch-grad-cam (and its OpenCV) run on the project's torch. Both explain each image's top class
at ``layer4`` of a random-init resnet50 (weights do not change the work) on a batch of 8 images of
224 x 224: pytorch-grad-cam gets the normalized batch and a ``GradCAM`` built once, outside the
timing; cnnlens gets pixels and does everything in the call (normalization, targets, probabilities).

Two baselines, both printed: pytorch-grad-cam as its README uses it (every parameter keeps
``requires_grad=True``, so its ``backward`` also computes every weight gradient of the network), and
pytorch-grad-cam at its best, on a copy whose parameters below the target layer are frozen by hand
(the activation at ``layer4`` still needs a gradient, so ``layer4`` and the head keep theirs): the
second one is the like-for-like comparison, the first the one a user of its README gets.
Rounds interleave the three; ratios are paired medians over --rounds rounds (default 7) of cnnlens
time / baseline time in the same round (< 1: cnnlens faster). Also checks that the two agree:
pytorch-grad-cam min-max scales each map after an OpenCV bilinear resize; the same scaling of
cnnlens' map gives the largest difference printed.
"""

from __future__ import annotations

import argparse
import copy
import sys
import warnings

import torch

from paired import interleave, paired, spread


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gradcam-path", default="/tmp/gradcam")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--layer", default="layer4")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    sys.path.append(args.gradcam_path)
    import pytorch_grad_cam
    from pytorch_grad_cam import GradCAM

    import cnnlens
    from cnnlens.attribution import AttributionSettings, attribute

    dev = args.device
    repeat = 2 if args.quick else args.rounds
    model = cnnlens.create_model(args.model, seed=0, device=dev)
    prep = cnnlens.model_info(model).preprocessing
    x = torch.rand(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    normalized = prep.normalize(x).to(dev)
    cam = GradCAM(model=model, target_layers=[model.get_submodule(args.layer)])
    frozen_model = copy.deepcopy(model)
    for name, module in frozen_model.named_modules():  # modules before the target layer, in call order
        if name == args.layer:
            break
        if name and not args.layer.startswith(name + "."):
            module.requires_grad_(False)
    frozen_cam = GradCAM(model=frozen_model, target_layers=[frozen_model.get_submodule(args.layer)])
    print(f"torch {torch.__version__}, pytorch-grad-cam from {pytorch_grad_cam.__file__}, device {dev}, threads {torch.get_num_threads()}")
    print("baseline: pytorch-grad-cam's GradCAM as in its README, and on a copy with the parameters below the layer frozen; "
          f"paired medians of cnnlens time / baseline time over {repeat} interleaved rounds")  # fmt: skip

    def ours() -> torch.Tensor:
        return attribute(model, x, "gradcam", layer=args.layer, settings=AttributionSettings(batch_size=args.batch), progress=False).maps

    def theirs(which: object = cam) -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return which(input_tensor=normalized, targets=None)

    fns = {"cnnlens": ours, "pytorch-grad-cam (README)": theirs, "pytorch-grad-cam (frozen below layer)": lambda: theirs(frozen_cam)}
    results = {name: fn() for name, fn in fns.items()}  # warm-up, and the maps to compare
    times = interleave(fns, repeat, warmup=False, sync=torch.cuda.synchronize if dev.startswith("cuda") else None)
    a = results["cnnlens"]
    lo = a.flatten(1).amin(1).view(-1, 1, 1)
    hi = a.flatten(1).amax(1).view(-1, 1, 1)
    scaled = (a - lo) / (hi - lo + 1e-7)
    diff = float((scaled - torch.from_numpy(results["pytorch-grad-cam (README)"])).abs().max())  # type: ignore[arg-type]
    diff_frozen = float((torch.from_numpy(results["pytorch-grad-cam (frozen below layer)"]) - torch.from_numpy(results["pytorch-grad-cam (README)"])).abs().max())  # type: ignore[arg-type]
    print(f"{args.model} {args.layer}, batch {args.batch}, 224 px, {repeat} interleaved rounds")
    for k, v in times.items():
        print(f"  {k:40s} {args.batch / min(v):7.2f} images/s (best round)")
    for base in list(times)[1:]:
        print(f"  cnnlens / {base}: paired median {paired(times, 'cnnlens', base):.2f} (range {spread(times, 'cnnlens', base)})")
    print(f"  largest difference of the min-max scaled maps: {diff:.2e} (frozen vs README pytorch-grad-cam: {diff_frozen:.1e})")


if __name__ == "__main__":
    main()
