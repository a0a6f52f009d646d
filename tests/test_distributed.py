"""Folder-scale work shared among processes: the shared pieces (split, exact sums, top-k merge, partial
states, checkpoints) and, on ~64 tiny images, patches and robustness computed by shards, by resumed runs
and by 2 gloo processes under torchrun (127.0.0.1 only) equal the single-process result byte for byte."""

from __future__ import annotations

import copy
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import cnnlens
from cnnlens.attacks import compare_robustness, robustness
from cnnlens.cli import cli
from cnnlens.distributed import (
    Checkpoint, ExactSum, Partial, Shard, Sharding, TopK, batch_ranges, fingerprint, merge, model_fingerprint, read_partial, split,
)
from cnnlens.seeds import item_seed
from cnnlens.errors import CnnlensError
from cnnlens.units import PatchSettings, top_patches

NET = '''
import os

import torch.nn as nn


class Net(nn.Module):
    """A tiny classifier of 16x16 colour images; with CNNLENS_TEST_EXIT=RANK:N the process of that rank
    exits at once in its N-th forward pass on real images (a machine lost half way)."""

    input_size = (3, 16, 16)
    mean = (0.5, 0.5, 0.5)
    std = (0.25, 0.25, 0.25)

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(6, 3))
        self.calls = 0

    def forward(self, x):
        exit_at = os.environ.get("CNNLENS_TEST_EXIT")
        if x.device.type != "meta" and exit_at:
            self.calls += 1
            rank, _, after = exit_at.partition(":")
            if rank == os.environ.get("RANK") and self.calls == int(after):
                os._exit(3)
        return self.head(self.features(x))
'''

N_IMAGES = 64
PATCHES = ["-u", "features.2", "-k", "4", "-b", "8", "--num-channels", "4"]
ROBUST = ["--seed", "1", "--eps", "0,0.02,0.03,0.05", "--attack", "fgsm,pgd", "--steps", "2", "-b", "8", "--limit", "61"]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``net.py`` (the model) and ``data/c{0,1,2}/*.png`` (64 tiny images in 3 classes)."""
    import skimage.io

    root = tmp_path_factory.mktemp("work")
    (root / "net.py").write_text(NET)
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        folder = root / "data" / f"c{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        image = (rng.random((20, 24, 3)) * 255).astype(np.uint8)
        image[:, :, i % 3] //= 3  # a little class structure
        skimage.io.imsave(folder / f"im{i:03d}.png", image, check_contrast=False)
    return root


def model(work: Path, seed: int = 0) -> nn.Module:
    return cnnlens.create_model(f"{work / 'net.py'}:Net", None, seed=seed)


def invoke(work: Path, args: list[str]) -> tuple[str, str]:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout, result.stderr


# ------------------------------------------------------------------------------------- the pieces


def test_split_sees_every_item_exactly_once() -> None:
    for n in range(0, 30):
        for count in range(1, 7):
            parts = [split(n, i, count) for i in range(count)]
            assert [i for p in parts for i in p] == list(range(n))
            assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
    assert batch_ranges({5, 0, 1, 2, 7, 6}) == [[0, 3], [5, 8]] and batch_ranges([]) == []


def test_shard_parse_and_its_errors() -> None:
    assert Shard.parse("2/8") == Shard(2, 8) and str(Shard.parse(" 0/1 ")) == "0/1"
    for bad in ("8/8", "1/0", "a/b", "-1/2", "3", "1/2/3"):
        with pytest.raises(CnnlensError, match=r"^shard") as info:
            Shard.parse(bad)
        assert info.value.param == "shard"


def test_exact_sum_is_exact_whatever_the_order_and_split() -> None:
    g = torch.Generator().manual_seed(0)
    v = (torch.randn(4, 500, generator=g) * torch.exp2(torch.randint(-150, 127, (4, 500), generator=g).float())).float()
    v[0, :8] = torch.tensor([1e-45, -1e-45, 3.4e38, 3.4e38, -3.4e38, 0.0, 2**-149, 1.0])  # subnormals, near-overflow
    exact = [sum((Fraction(float(x)) for x in row), Fraction(0)) for row in v.tolist()]
    one = ExactSum(4)
    one.add(v)
    assert [Fraction(t, 2**ExactSum.OFFSET) for t in one.totals()] == exact
    assert one.means(500) == [float(e / 500) for e in exact]  # rounded once
    # another split, another order, through JSON: the same integers
    parts = []
    for cols in (list(range(300, 500)), list(range(0, 120)), list(range(120, 300))):
        s = ExactSum(4)
        for c in reversed(cols):
            s.add(v[:, c])
        parts.append(ExactSum.from_json(json.loads(json.dumps(s.to_json()))))
    parts[0].merge(parts[1])
    parts[0].merge(parts[2])
    assert parts[0].totals() == one.totals()
    assert float(v[0].double().sum()) != float(exact[0])  # float64 summation would not be exact here
    odd = ExactSum(3)
    odd.add(torch.tensor([[1.0, math.nan, 2.0], [math.inf, 1.0, 2.0], [math.inf, -math.inf, 0.0]]))
    assert [str(m) for m in ExactSum.from_json(odd.to_json()).means(3)] == ["nan", "inf", "nan"]


def test_topk_merge_equals_a_stable_sort_of_everything() -> None:
    rng = random.Random(0)
    n, rows, k = 200, 5, 7
    values = torch.tensor([[float(rng.randint(0, 9)) for _ in range(n)] for _ in range(rows)])  # many ties
    values[0, 3] = math.nan
    payload = torch.randint(0, 50, (rows, n))
    order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]
    cuts = sorted(rng.sample(range(1, n), 4))
    parts = []
    for a, b in zip([0, *cuts], [*cuts, n]):
        t = TopK(rows, k)
        for start in range(a, b, 9):  # streaming, batch by batch
            stop = min(b, start + 9)
            t.add(values[:, start:stop], list(range(start, stop)), payload[:, start:stop])
        parts.append(TopK.from_json(json.loads(json.dumps(t.to_json()))))
    rng.shuffle(parts)
    merged = parts[0]
    for p in parts[1:]:
        merged.merge(p)
    assert torch.equal(merged.index, order) and torch.equal(merged.payload, payload.gather(1, order))
    assert torch.equal(merged.values.nan_to_num(-1), values.gather(1, order).nan_to_num(-1))
    assert merged.index[0, 0] == 3  # nan ranks first, as torch.sort puts it


def test_model_fingerprint_sees_every_parameter_and_buffer() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))  # num_batches_tracked: a 0-dim integer buffer
    before = model_fingerprint(net)
    assert model_fingerprint(copy.deepcopy(net)) == before
    with torch.no_grad():
        net[0].weight[0, 0, 0, 0] += 1e-7
    changed = model_fingerprint(net)
    net[1].num_batches_tracked += 1
    assert len({before, changed, model_fingerprint(net)}) == 3 and fingerprint(torch.tensor(1)) != fingerprint(torch.tensor(1.0))


def test_item_seeds_do_not_depend_on_anything_but_base_and_index() -> None:
    assert item_seed(7, 3) == item_seed(7, 3) and len({item_seed(7, i) for i in range(1000)}) == 1000
    assert item_seed(7, 3) != item_seed(8, 3) and 0 <= item_seed(2**62, 2**40) < 2**63


# ------------------------------------------------------------------- shards, merge, resume (one process)


def test_patch_shards_merge_to_the_one_process_result(work: Path, tmp_path: Path) -> None:
    net = model(work)
    kw = {"k": 4, "settings": PatchSettings(batch_size=8, crops=False), "limit": 61, "n_channels": 4, "progress": False}
    one = top_patches(net, "features.2", work / "data", **kw)
    parts = [top_patches(net, 'features.2', work / 'data', sharding=Sharding(shard=f'{i}/3'), **kw) for i in range(3)]
    assert all(isinstance(p, Partial) and p.complete for p in parts) and sum(p.images_done for p in parts) == 61
    files = [p.save(tmp_path / f"part-{i}.json") for i, p in enumerate(parts)]
    data = json.loads(files[0].read_text())
    assert data["partial"] is True and data["kind"] == "patches" and data["shard"] == "0/3" and data["done"] == [[0, 2]]
    merged = merge(list(reversed(files)))
    assert merged.to_json() == one.to_json() and one.n_images == 61 and len(one.channels) == 4
    # a fresh process merges the files without importing the capability first: each part names the
    # module of its state, which registers itself (cnnlens.distributed names no capability)
    assert data["module"] == "cnnlens.units.patches"
    code = "import sys; from cnnlens.distributed import merge; print(merge(sys.argv[1:]).to_json())"
    fresh = subprocess.run([sys.executable, "-c", code, *map(str, files)], capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0 and fresh.stdout.strip() == one.to_json(), fresh.stderr
    assert merge(parts).to_json() == one.to_json()
    # parts that do not make one run are refused in one line
    with pytest.raises(CnnlensError, match=r"do not cover images 16\.\.39 of 61; missing: shard 1/3 \(run it with --shard 1/3"):
        merge([files[0], files[2]])
    with pytest.raises(CnnlensError, match="both hold batch 0"):
        merge([files[0], files[0], files[1], files[2]])
    other = top_patches(model(work, seed=1), 'features.2', work / 'data', sharding=Sharding(shard='1/3'), **kw)
    with pytest.raises(CnnlensError, match="come from different runs: the model's weights differ"):
        merge([parts[0], other, parts[2]])
    with pytest.raises(CnnlensError, match="different runs: its batch size is 4"):
        merge([parts[0], top_patches(net, 'features.2', work / 'data', sharding=Sharding(shard='1/3'), **{**kw, 'settings': PatchSettings(batch_size=4, crops=False)}), parts[2]])
    with pytest.raises(CnnlensError, match="a partial state has no figure"):
        parts[0].figure()
    (tmp_path / "index.json").write_text(one.to_json())
    with pytest.raises(CnnlensError, match=r"index\.json is not a cnnlens partial state"):
        merge([tmp_path / "index.json"])


def test_robustness_shards_merge_to_the_one_process_result(work: Path) -> None:
    a, b = model(work, seed=1), model(work, seed=2)
    # --limit 61 spreads the 61 images over the 64 (cnnlens.folders.spread); under seed 3 PGD's random start changes the counts
    kw = {"eps": [0, 0.02, 0.03, 0.05], "attacks": ["fgsm", "ifgsm", "pgd"], "steps": 2, "batch_size": 8, "limit": 61, "progress": False}
    one = compare_robustness([a, b], work / "data", seed=3, **kw)
    parts = [compare_robustness([a, b], work / 'data', seed=3, sharding=Sharding(shard=f'{i}/4'), **kw) for i in range(4)]
    assert merge(parts[::-1]).to_json() == one.to_json()
    first = one[0]
    assert first.n == 61 and first["pgd"].correct[0] == first.n_correct and first["pgd"].correct != first["ifgsm"].correct
    assert first.to_json() == robustness(a, work / "data", seed=3, **kw).to_json()
    # every image's random start comes from the seed and its index: batches do not change the curve, seeds do
    assert robustness(a, work / "data", seed=3, **{**kw, "batch_size": 5}).to_json() == first.to_json()
    assert robustness(a, work / "data", seed=2, **kw)["pgd"].correct != first["pgd"].correct


def crash_after(net: nn.Module, calls: int) -> torch.utils.hooks.RemovableHandle:
    """Raise in the forward pass after ``calls`` passes on real images (the meta-device geometry pass is free)."""
    seen = [0]

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        if inputs[0].device.type == "meta":
            return
        seen[0] += 1
        if seen[0] > calls:
            raise RuntimeError("power cut")

    return net.register_forward_pre_hook(hook)


def test_a_run_stopped_half_way_resumes_to_the_same_result(work: Path, tmp_path: Path) -> None:
    net = model(work)
    kw = {"k": 4, "settings": PatchSettings(batch_size=8, crops=False), "n_channels": 4, "progress": False}
    one = top_patches(net, "features.2", work / "data", **kw)
    saving = Checkpoint(tmp_path / "run.json", every=3600)  # a failure saves what is done, whatever the interval
    handle = crash_after(net, 3)
    with pytest.raises(RuntimeError, match="power cut"):
        top_patches(net, 'features.2', work / 'data', sharding=Sharding(checkpoint=saving), **kw)
    handle.remove()
    saved = read_partial(saving.path)
    assert saved.images_done == 24 and not saved.complete and saved.done == [[0, 3]]
    calls = []
    net.register_forward_pre_hook(lambda m, i: calls.append(1) if i[0].device.type != "meta" else None)
    again = top_patches(net, 'features.2', work / 'data', sharding=Sharding(checkpoint=saving), **kw)
    assert len(calls) == 5 and again.to_json() == one.to_json()  # the 5 batches left, and the same result
    assert read_partial(saving.path).complete
    # a checkpoint of another run is refused, or replaced when asked
    with pytest.raises(CnnlensError, match=r"^checkpoint .*run\.json exists and holds another run \(k differs\)"):
        top_patches(net, 'features.2', work / 'data', sharding=Sharding(checkpoint=saving), **{**kw, 'k': 3})
    assert top_patches(net, 'features.2', work / 'data', sharding=Sharding(checkpoint=Checkpoint(saving.path, replace=True)), **{**kw, 'k': 3}).k == 3


def test_robustness_stopped_half_way_resumes_to_the_same_result(work: Path, tmp_path: Path) -> None:
    net = model(work)
    kw = {"eps": [0, 0.1], "attacks": ["fgsm", "pgd"], "steps": 2, "batch_size": 16, "progress": False}
    one = robustness(net, work / "data", seed=0, **kw)
    handle = crash_after(net, 15)  # 6 passes a batch: in the middle of the 3rd batch, whose counts must not be kept
    with pytest.raises(RuntimeError, match="power cut"):
        robustness(net, work / 'data', seed=0, sharding=Sharding(checkpoint=tmp_path / 'r.json'), **kw)
    handle.remove()
    saved = read_partial(tmp_path / "r.json")
    assert saved.images_done == 32 and sum(saved.state.n) == 32
    again = robustness(net, work / 'data', seed=0, sharding=Sharding(checkpoint=tmp_path / 'r.json'), **kw)
    assert again.to_json() == one.to_json()


def test_cli_shards_merge_and_checkpoints(work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work)
    base = ["patches", "net.py:Net", "-w", "none", "--data", "data", *PATCHES]
    invoke(work, [*base, "-o", str(tmp_path / "one.json")])
    assert not (tmp_path / "one.json.partial.json").exists()  # the checkpoint goes once the output is written
    for i in range(2):
        _, err = invoke(work, [*base, "--shard", f"{i}/2", "-o", str(tmp_path / f"part-{i}.json")])
        assert f"share {i}/2: 32 of 64 images; complete" in err
    out, _ = invoke(work, ["merge", str(tmp_path / "part-1.json"), str(tmp_path / "part-0.json"), "-o", str(tmp_path / "merged.json"), "--json"])
    assert (tmp_path / "merged.json").read_bytes() == (tmp_path / "one.json").read_bytes()
    assert json.loads(out) == json.loads((tmp_path / "one.json").read_text())
    # a share run again continues from its file (complete: nothing to do) and writes the same bytes
    before = (tmp_path / "part-0.json").read_bytes()
    invoke(work, [*base, "--shard", "0/2", "-o", str(tmp_path / "part-0.json")])
    assert (tmp_path / "part-0.json").read_bytes() == before
    # robustness: shards and merge, the table on stdout
    rob = ["robustness", "net.py:Net", "-w", "none", "--data", "data", *ROBUST]
    table, _ = invoke(work, rob)
    for i in range(3):
        invoke(work, [*rob, "--shard", f"{i}/3", "-o", str(tmp_path / f"r-{i}.json")])
    merged, _ = invoke(work, ["merge", *(str(tmp_path / f"r-{i}.json") for i in range(3))])
    assert merged == table and "61 images" in table


def test_cli_a_bad_image_half_way_keeps_the_work_done(work: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(work / "data", tmp_path / "data")
    base = ["patches", f"{work / 'net.py'}:Net", "-w", "none", "--data", str(tmp_path / "data"), *PATCHES]
    invoke(work, [*base, "-o", str(tmp_path / "one.json")])
    bad = cnnlens.folders.list_images(tmp_path / "data")[44]  # in global batch 5
    good = bad.read_bytes()
    bad.write_bytes(b"not a png")
    out = tmp_path / "two.json"
    result = CliRunner().invoke(cli, [*base, "-o", str(out)])
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output
    assert f"Error: cannot read image {bad}" in result.stderr and "the work done is saved in" in result.stderr
    assert "fix that input in place and run the same command to continue; delete the file to start afresh" in result.stderr  # how to resume
    assert not out.exists() and read_partial(tmp_path / "two.json.partial.json").done == [[0, 5]]
    bad.write_bytes(good)
    _, err = invoke(work, [*base, "-o", str(out)])
    assert "resuming from" in err and "5 of 8 batches done" in err
    assert out.read_bytes() == (tmp_path / "one.json").read_bytes()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--shard", "2/2", "-o", "p.json"], "Error: --shard 2/2: I goes from 0 to N-1"),
        (["--shard", "0/2", "-o", "p.png"], "Error: --shard writes the share's partial state: give -o PART.json"),
        (["--shard", "0/2", "-o", "p.json", "--json"], "Error: --shard writes a partial state to -o; --json is for the merged result"),
        (["--shard", "0/2", "-o", "p.json", "--deconv"], "Error: --deconv needs the merged result"),
        (["--checkpoint", "c.png", "-o", "x.png"], "Error: --checkpoint c.png: unknown suffix '.png'"),
        (["--checkpoint", "x.json", "-o", "x.json"], "Error: --checkpoint and --output are the same file"),
        (["--shard", "0/2", "-o", "taken.json"], "Error: --output taken.json exists and holds another run"),
    ],
)
def test_cli_run_options_bad_input_is_one_line(work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken.json").write_text("{}")
    listing = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(cli, ["patches", f"{work / 'net.py'}:Net", "-w", "none", "--data", str(work / "data"), *PATCHES, *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == listing


def test_cli_merge_bad_input_is_one_line(work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.json").write_text("[1, 2]")
    for args, message in [
        (["missing.json"], "Error: PARTS: no such file missing.json"),
        (["x.json"], "Error: x.json is not a cnnlens partial state"),
        (["x.json", "-o", "m.xyz"], "Error: --output m.xyz: unknown suffix"),
    ]:
        result = CliRunner().invoke(cli, ["merge", *args])
        assert result.exit_code == 2 and result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.output


# ------------------------------------------------------------------------------- 2 processes (torchrun)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun(cwd: Path, args: list[str], *, extra_env: dict[str, str] | None = None, timeout: float = 150) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --nproc-per-node 2 -m cnnlens ARGS`` on 127.0.0.1 with gloo;
    the whole process group is killed when it outlives ``timeout``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "MPLBACKEND": "Agg", **(extra_env or {})}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(free_port()), "-m", "cnnlens", *args]  # fmt: skip
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"torchrun {' '.join(args)} did not finish in {timeout} s")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work)
    base = ["patches", "net.py:Net", "-w", "none", "--data", "data", *PATCHES, "--limit", "61"]
    one_out, _ = invoke(work, [*base, "-o", str(tmp_path / "one.json"), "--json"])
    two = torchrun(work, [*base, "-o", str(tmp_path / "two.json"), "--json"])
    assert two.returncode == 0, two.stderr[-3000:]
    assert (tmp_path / "two.json").read_bytes() == (tmp_path / "one.json").read_bytes()
    assert two.stdout == one_out  # rank 0 alone prints
    assert two.stderr.count("wrote ") == 1 and "(rank 0 of 2)" in two.stderr and "rank 1" not in two.stderr.replace("rank 0 of 2", "")
    rob = ["robustness", "net.py:Net", "-w", "none", "--data", "data", *ROBUST]
    table, _ = invoke(work, [*rob, "-o", str(tmp_path / "one-r.json")])
    two = torchrun(work, [*rob, "-o", str(tmp_path / "two-r.json")])
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout == table and (tmp_path / "two-r.json").read_bytes() == (tmp_path / "one-r.json").read_bytes()


@pytest.mark.slow
def test_torchrun_run_killed_half_way_resumes_to_the_same_result(work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work)
    base = ["patches", "net.py:Net", "-w", "none", "--data", "data", *PATCHES, "--checkpoint-every", "0"]
    invoke(work, [*base, "-o", str(tmp_path / "one.json")])
    out = tmp_path / "two.json"
    killed = torchrun(work, [*base, "-o", str(out)], extra_env={"CNNLENS_TEST_EXIT": "1:3"})  # rank 1 dies in its 3rd batch
    assert killed.returncode != 0 and not out.exists()
    saved = read_partial(tmp_path / "two.json.partial.json")
    assert 0 < saved.images_done < N_IMAGES and not saved.complete
    resumed = torchrun(work, [*base, "-o", str(out)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr and f"{saved.images_done // 8} of 8 batches done" in resumed.stderr
    assert out.read_bytes() == (tmp_path / "one.json").read_bytes()
    assert not (tmp_path / "two.json.partial.json").exists()


@pytest.mark.slow
def test_torchrun_an_error_in_one_rank_stops_every_rank_and_keeps_the_work_done(work: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(work / "data", tmp_path / "data")
    bad = cnnlens.folders.list_images(tmp_path / "data")[44]  # global batch 5: the second batch of rank 1
    bad.write_bytes(b"not a png")
    out = tmp_path / "p.json"
    failed = torchrun(work, ["patches", "net.py:Net", "-w", "none", "--data", str(tmp_path / "data"), *PATCHES, "-o", str(out)])
    assert failed.returncode != 0 and not out.exists()
    assert f"Error: rank 1: cannot read image {bad}" in failed.stderr  # rank 0 names the rank and the file
    saved = read_partial(tmp_path / "p.json.partial.json")  # saved by both ranks when they stopped, whatever the interval
    assert saved.done == [[0, 2], [4, 5]] and saved.images_done == 24


@pytest.mark.slow
def test_torchrun_microscope_equals_one_process(work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The site's pass over the images shared by 2 processes: the same mined top-k, the same pages."""
    monkeypatch.chdir(work)
    base = ["microscope", "net.py:Net", "-w", "none", "--data", "data", "--layers", "features.2", "--units", "2", "-k", "3", "-b", "8",
            "--steps", "2", "--featvis-size", "32", "--no-tuning", "--attribution", "0", "--limit", "61"]  # fmt: skip
    invoke(work, [*base, "-o", str(tmp_path / "one")])
    two = torchrun(work, [*base, "-o", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr[-3000:]
    assert "merged the states of 2 processes" in two.stderr and two.stderr.count("wrote 5 pages") == 1
    for page in ("layers/features.2.json", "units/features.2/0.json", "units/features.2/1.json", ".cnnlens/mined/features.2.json",
                 "representations.json"):
        one_json = json.loads((tmp_path / "one" / page).read_text())
        two_json = json.loads((tmp_path / "two" / page).read_text())
        assert two_json == one_json, page


SIMILARITY = ["-l", "features.1,features.3,logits", "--debiased", "-b", "8", "--limit", "61"]


def test_cli_similarity_shards_merge_to_one_process(work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work)
    base = ["similarity", "net.py:Net", "-w", "none", "--data", "data", *SIMILARITY]
    one_out, _ = invoke(work, [*base, "-w2", "none", "-o", str(tmp_path / "one.json"), "--json"])
    for i in range(3):
        invoke(work, [*base, "-w2", "none", "--shard", f"{i}/3", "-o", str(tmp_path / f"part-{i}.json")])
    merged, _ = invoke(work, ["merge", *(str(tmp_path / f"part-{i}.json") for i in (2, 0, 1)), "--json"])
    assert merged == one_out and json.loads(one_out)["n_batches"] == 8  # 61 images: 7 batches of 8 and one of 5


@pytest.mark.slow
def test_torchrun_similarity_equals_one_process(work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work)
    base = ["similarity", "net.py:Net", "-w", "none", "--data", "data", *SIMILARITY, "-w2", "none"]
    one_out, _ = invoke(work, [*base, "-o", str(tmp_path / "one.json"), "--json"])
    two = torchrun(work, [*base, "-o", str(tmp_path / "two.json"), "--json"])
    assert two.returncode == 0, two.stderr[-3000:]
    assert (tmp_path / "two.json").read_bytes() == (tmp_path / "one.json").read_bytes() and two.stdout == one_out


@pytest.mark.slow
def test_torchrun_concepts_equal_one_process(work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every pass of discover (the sample, the concepts' patches, their importance) shared by two
    processes gives the result of one, byte for byte."""
    monkeypatch.chdir(work)
    base = ["concepts", "net.py:Net", "-w", "none", "--data", "data", "-l", "features.3", "-k", "3", "--top", "3", "-b", "8", "--rows", "500",
            "--no-visualize", "--limit", "61"]  # fmt: skip
    one_out, _ = invoke(work, [*base, "-o", str(tmp_path / "one.json"), "--json"])
    two = torchrun(work, [*base, "-o", str(tmp_path / "two.json"), "--json"])
    assert two.returncode == 0, two.stderr[-3000:]
    assert (tmp_path / "two.json").read_bytes() == (tmp_path / "one.json").read_bytes() and two.stdout == one_out
    assert json.loads(one_out)["n_rows"] == 500
