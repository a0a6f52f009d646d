"""A layer's full tuning against the floor: a plain batched forward pass over the same stimuli.

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python benchmarks/bench_tuning.py [--layers features.4 features.7] [--contrasts]

For each layer of squeezenet1_0 (the trained weights of the development data folder when present),
`cnnlens.tuning.tuning_curves` measures every channel with the full grid (16 orientations x 12
frequencies x 8 phases and the blank; with --contrasts also the contrast series): it computes the
receptive field, draws the gratings batch by batch on the device, normalizes them, runs the network
as far as the layer, reads the centre unit of every channel and computes every measure. The floor
is the cheapest plain way to get the same numbers: the very same stimulus tensors, drawn beforehand
(not timed), through ``nn.Sequential(*model.features[:k + 1])`` with no hooks, in the same batches.
Target: tuning time / floor time <= 1.2. Rounds interleave the two (--rounds, default 7); the ratio
is the paired median over rounds of tuning time / floor time in the same round, for the wall time and
for the process's CPU time (on a machine shared with other work the CPU time is the steadier).

Both run the stimuli on the smallest canvas that holds the unit's receptive field (7x7 pixels for
features.0, 111x111 for features.10; see `cnnlens.tuning.engine`), which gives exactly the responses
of the 224x224 image; the last column is the same plain forward pass at 224x224 (timed on a few
batches and scaled), the cost of drawing every grating as a whole image.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import cnnlens
from cnnlens.tuning import Gratings, Grid, grating_batches, tuning_curves

from paired import ratios

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT.parent / "shared" / "data" / "imagenet" / "squeezenet1_0_imagenet_deepcompression.pth"


def stimuli(result: cnnlens.tuning.TuningResult, batch_size: int) -> list[torch.Tensor]:
    """The exact stimulus batches ``tuning_curves`` drew: the grid and blank, then the contrast series."""
    layer = result.layers[0]
    pl = layer.placement
    params = Grid(result.orientations, layer.frequencies, result.phases, result.contrast).params(layer.frequencies)
    batches = list(grating_batches(params, pl, window=result.window, batch_size=batch_size, device=torch.device("cpu")))
    if result.contrasts:
        triples = list(dict.fromkeys((u.preferred_orientation_deg, u.preferred_frequency, u.preferred_phase_deg) for u in layer.units))
        k = len(result.contrasts)
        extra = [torch.tensor([t[i] for t in triples for _ in range(k)], dtype=torch.float64) for i in range(3)]
        extra.append(torch.tensor([cc for _ in triples for cc in result.contrasts], dtype=torch.float64))
        batches += list(grating_batches(tuple(extra), pl, window=result.window, batch_size=batch_size, device=torch.device("cpu")))
    return batches


def clocks() -> tuple[float, float]:
    """Wall time and this process's CPU time (all threads): on a shared machine the CPU time is the
    steadier measure of the work done."""
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    now = clocks()
    return now[0] - start[0], now[1] - start[1]


def plain(net: torch.nn.Module, prep: cnnlens.Preprocessing, batches: list[torch.Tensor]) -> tuple[float, float]:
    start = clocks()
    with torch.no_grad():
        for x in batches:
            net(prep.normalize(prep.convert_channels(x)))
    return since(start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", nargs="+", default=["features.0", "features.4", "features.7", "features.10", "features.12"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--contrasts", action="store_true", help="also the contrast series (in both runs)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds; ratios are paired medians")
    args = parser.parse_args()
    model = cnnlens.create_model("squeezenet1_0", WEIGHTS if WEIGHTS.is_file() else None, seed=0)
    prep = cnnlens.model_info(model).preprocessing
    print(f"{cnnlens.model_info(model).label}, {torch.get_num_threads()} threads, batch {args.batch_size}")
    print(f"baseline: the same stimuli through nn.Sequential(*features[:k + 1]), no hooks; paired medians over {args.rounds} rounds")
    print("| layer | canvas | stimuli | tuning, best: wall / CPU (s) | plain forward, best: wall / CPU (s) | paired ratio wall / CPU | plain forward at 224 px, CPU (s) |")
    print("|---|---|---|---|---|---|---|")
    contrasts = cnnlens.tuning.CONTRASTS if args.contrasts else None
    tuning_curves(model, 'features.0:0', contrasts=None, progress=False, gratings=Gratings(orientations=4, frequencies=2, phases=4))  # warm up
    for layer in args.layers:
        index = int(layer.split(".")[1])
        head = torch.nn.Sequential(*list(model.features)[: index + 1]).eval()
        tuned, floor = [], []
        for _ in range(args.rounds):  # interleaved rounds
            start = clocks()
            result = tuning_curves(model, layer, contrasts=contrasts, batch_size=args.batch_size, progress=False)
            tuned.append(since(start))
            batches = stimuli(result, args.batch_size)
            floor.append(plain(head, prep, batches))
        n = sum(b.shape[0] for b in batches)
        full = torch.rand(args.batch_size, 1, 224, 224)
        sample = min(2, len(batches))
        big = plain(head, prep, [full] * sample)[1] * len(batches) / sample
        canvas = result.layers[0].placement.canvas
        tw, tc = min(t[0] for t in tuned), min(t[1] for t in tuned)
        fw, fc = min(t[0] for t in floor), min(t[1] for t in floor)
        rw = ratios([t[0] for t in tuned], [f[0] for f in floor])[0]
        rc = ratios([t[1] for t in tuned], [f[1] for f in floor])[0]
        print(f"| {layer} | {canvas} | {n} | {tw:.2f} / {tc:.2f} | {fw:.2f} / {fc:.2f} | {rw:.2f} / {rc:.2f} | {big:.1f} |", flush=True)


if __name__ == "__main__":
    main()
