"""cnnlens Grad-CAM against pytorch-grad-cam's ``GradCAM`` on the same model, layer, images and batch.

    pip install --target /tmp/gradcam grad-cam          # benchmark only, never a cnnlens dependency
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_attribution.py [--gradcam-path /tmp/gradcam] [--device cuda] [--quick]

The folder given by --gradcam-path is appended to ``sys.path`` after the project's own packages, so
pytorch-grad-cam (and its OpenCV) run on the project's torch. Both explain each image's top class
at ``layer4`` of a random-init resnet50 (weights do not change the work) on a batch of 8 images of
224 x 224: pytorch-grad-cam gets the normalized batch and a ``GradCAM`` built once, outside the
timing; cnnlens gets pixels and does everything in the call (normalization, targets, probabilities).
Runs alternate (cnnlens, pytorch-grad-cam, ...) and the best of each is kept, so load on the machine
hits both alike. Prints images/s of each, the ratio cnnlens / pytorch-grad-cam (target >= 1.0), and
``paired``, the median over rounds of the ratio of back-to-back runs. Also checks that the two agree:
pytorch-grad-cam min-max scales each map after an OpenCV bilinear resize; the same scaling of
cnnlens' map gives the largest difference printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import torch


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gradcam-path", default="/tmp/gradcam")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--layer", default="layer4")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sys.path.append(args.gradcam_path)
    import pytorch_grad_cam
    from pytorch_grad_cam import GradCAM

    import cnnlens
    from cnnlens.attribution import AttributionSettings, attribute

    dev = args.device
    repeat = 2 if args.quick else 6
    model = cnnlens.create_model(args.model, seed=0, device=dev)
    prep = cnnlens.model_info(model).preprocessing
    x = torch.rand(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    normalized = prep.normalize(x).to(dev)
    cam = GradCAM(model=model, target_layers=[model.get_submodule(args.layer)])
    print(f"torch {torch.__version__}, pytorch-grad-cam from {pytorch_grad_cam.__file__}, device {dev}, threads {torch.get_num_threads()}")

    def ours() -> torch.Tensor:
        return attribute(model, x, "gradcam", layer=args.layer, settings=AttributionSettings(batch_size=args.batch), progress=False).maps

    def theirs() -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cam(input_tensor=normalized, targets=None)

    fns = {"cnnlens": ours, "pytorch-grad-cam": theirs}
    results = {name: fn() for name, fn in fns.items()}  # warm-up, and the maps to compare
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            sync(dev)
            start = time.perf_counter()
            fn()
            sync(dev)
            times[name].append(time.perf_counter() - start)
    a = results["cnnlens"]
    lo = a.flatten(1).amin(1).view(-1, 1, 1)
    hi = a.flatten(1).amax(1).view(-1, 1, 1)
    scaled = (a - lo) / (hi - lo + 1e-7)
    diff = float((scaled - torch.from_numpy(results["pytorch-grad-cam"])).abs().max())  # type: ignore[arg-type]
    rate = {k: args.batch / min(v) for k, v in times.items()}
    paired = statistics.median(t / o for o, t in zip(times["cnnlens"], times["pytorch-grad-cam"]))
    print(f"{args.model} {args.layer}, batch {args.batch}, 224 px, {repeat} rounds")
    for k, v in rate.items():
        print(f"  {k:18s} {v:7.2f} images/s (best of {repeat})")
    print(f"  ratio cnnlens / pytorch-grad-cam: {rate['cnnlens'] / rate['pytorch-grad-cam']:.2f} (paired median {paired:.2f})")
    print(f"  largest difference of the min-max scaled maps: {diff:.2e}")


if __name__ == "__main__":
    main()
