"""Every command on CUDA: runs, writes its files, and agrees with the CPU run; plus CUDA timings.

    python benchmarks/cuda_check.py [--out DIR] [--model squeezenet1_0]

For a machine with a GPU (CI has none). Each model command of the CLI runs on a random-init model
with tiny sizes (the settings of tests/test_cli_matrix.py) once with `--device cuda` and once with
`--device cpu`; the script prints per command the exit codes, the wall time of each, and how far
the headline numbers of the two JSON outputs lie apart (the largest relative difference over the
numbers both hold; random-init nets in float32, so ~1e-5 is agreement, and commands that search --
attacks, feature visualizations -- may differ more where a gradient sign flips). Then it times the
microscope build and FGSM/PGD on CUDA.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_cli_matrix import COMMANDS, _commands  # noqa: E402

from cnnlens.cli import cli  # noqa: E402
from cnnlens.images import save_image  # noqa: E402


def numbers(value: object, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(numbers(v, f"{prefix}.{k}"))
    elif isinstance(value, list):
        for i, v in enumerate(value[:64]):
            out.update(numbers(v, f"{prefix}[{i}]"))
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        out[prefix] = float(value)
    return out


def largest_difference(a: dict[str, float], b: dict[str, float]) -> tuple[float, str]:
    worst, where = 0.0, ""
    for key in a.keys() & b.keys():
        if any(s in key for s in ("seconds", "time", "elapsed")):
            continue
        d = abs(a[key] - b[key]) / max(abs(a[key]), abs(b[key]), 1e-6)
        if d > worst:
            worst, where = d, key
    return worst, where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("cuda-check"))
    parser.add_argument("--model", default="squeezenet1_0")
    parser.add_argument("--device", default="cuda", help="the device compared with the CPU (cpu: a dry run of this script)")
    parser.add_argument("--commands", default=None, help="comma-separated subset")
    parser.add_argument("--site-images", type=int, default=64)
    args = parser.parse_args()
    dev = args.device
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}, "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}")  # fmt: skip
    root = args.out
    g = torch.Generator().manual_seed(0)
    folders = {"photo": save_image(torch.rand(3, 40, 48, generator=g), root / "in" / "photo.png", overwrite=True),
               "style": save_image(torch.rand(3, 40, 40, generator=g), root / "in" / "style.png", overwrite=True),
               "flat": root / "in" / "flat", "labelled": root / "in" / "labelled"}  # fmt: skip
    for i in range(4):
        save_image(torch.rand(3, 36, 36, generator=g), folders["flat"] / f"img{i}.png", overwrite=True)
        save_image(torch.rand(3, 36, 36, generator=g), folders["labelled"] / str(i % 2) / f"img{i}.png", overwrite=True)
    rows = []
    for command in args.commands.split(",") if args.commands else COMMANDS:
        if command in ("layers", "report"):
            continue
        result = {}
        for device in (dev, "cpu"):
            out = root / command / device
            out.mkdir(parents=True, exist_ok=True)
            argv = [str(a) for a in _commands(args.model, folders, out)[command]] + ["--seed", "0", "--device", device, "--overwrite"]
            if command == "microscope":
                argv.remove("--overwrite")
                argv += ["--overwrite"]
            start = time.perf_counter()
            run = CliRunner().invoke(cli, argv, catch_exceptions=True)
            seconds = time.perf_counter() - start
            try:
                data = json.loads(run.stdout)
            except ValueError:
                data = {}
            result[device] = (run.exit_code, seconds, data, (run.stderr or str(run.exception))[-300:])
        diff, where = largest_difference(numbers(result[dev][2]), numbers(result["cpu"][2]))
        row = {"command": command, "cuda_exit": result[dev][0], "cpu_exit": result["cpu"][0], "cuda_s": round(result[dev][1], 2),
               "cpu_s": round(result["cpu"][1], 2), "max_rel_diff": diff, "at": where}  # fmt: skip
        if result[dev][0] != 0:
            row["cuda_error"] = result[dev][3]
        rows.append(row)
        print(json.dumps(row), flush=True)
    failed = [r["command"] for r in rows if r["cuda_exit"] != 0]
    print(f"{len(rows) - len(failed)} of {len(rows)} commands ran on CUDA; failed: {failed}")

    # timings on CUDA
    import cnnlens
    from cnnlens.attacks import fgsm, pgd
    from cnnlens.microscope import SiteSettings, build_site

    net = cnnlens.create_model("squeezenet1_0", seed=0, device=dev)
    images = torch.rand(args.site_images, 3, 224, 224, generator=g)
    start = time.perf_counter()
    site = build_site(net, images, root / 'site', units=16, overwrite=True, progress=False, settings=SiteSettings(featvis_steps=128, attribution=8))
    sync()
    print(f"microscope on {dev}, squeezenet1_0 random init, {args.site_images} images, 4 layers x 16 units: {time.perf_counter() - start:.1f} s, "
          f"stages {json.dumps({k: v['seconds'] for k, v in site.stages.items()})}")  # fmt: skip
    model = cnnlens.create_model("resnet18", seed=0, device=dev)
    x = torch.rand(8, 3, 128, 128, generator=g)
    labels = torch.arange(8)
    for name, fn in (("fgsm", lambda: fgsm(model, x, labels, eps=0.01)), ("pgd-10", lambda: pgd(model, x, labels, eps=0.01, steps=10))):
        fn()
        sync()
        start = time.perf_counter()
        for _ in range(10):
            fn()
        sync()
        print(f"{name} resnet18 batch 8 at 128 px on {dev}: {80 / (time.perf_counter() - start):.0f} img/s")
    (root / "rows.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
