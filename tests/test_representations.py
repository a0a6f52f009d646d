"""Representations by depth: CKA against Kornblith et al.'s reference formulas (written here in numpy,
independently of cnnlens), minibatch CKA against the per-batch estimates computed by hand, shards
against one process, linear probes and PCA maps against scikit-learn, and the commands."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import cnnlens
from cnnlens.cli import cli
from cnnlens.distributed import Sharding, merge
from cnnlens.errors import CnnlensError
from cnnlens.hooks import capture
from cnnlens.representations import (
    cka,
    embed,
    fit_probe,
    pca_2d,
    probe,
    similarity,
    stratified_folds,
)

# -- Kornblith et al.'s reference code (the CKA colab of google-research), in numpy -------------------


def ref_gram_linear(x: np.ndarray) -> np.ndarray:
    return x.dot(x.T)


def ref_gram_rbf(x: np.ndarray, threshold: float = 1.0) -> np.ndarray:
    dot_products = x.dot(x.T)
    sq_norms = np.diag(dot_products)
    sq_distances = -2 * dot_products + sq_norms[:, None] + sq_norms[None, :]
    sq_median_distance = np.median(sq_distances)
    return np.exp(-sq_distances / (2 * threshold**2 * sq_median_distance))


def ref_center_gram(gram: np.ndarray, unbiased: bool = False) -> np.ndarray:
    gram = gram.copy()
    if unbiased:
        n = gram.shape[0]
        np.fill_diagonal(gram, 0)
        means = np.sum(gram, 0, dtype=np.float64) / (n - 2)
        means -= np.sum(means) / (2 * (n - 1))
        gram -= means[:, None]
        gram -= means[None, :]
        np.fill_diagonal(gram, 0)
    else:
        means = np.mean(gram, 0, dtype=np.float64)
        means -= np.mean(means) / 2
        gram -= means[:, None]
        gram -= means[None, :]
    return gram


def ref_cka(gram_x: np.ndarray, gram_y: np.ndarray, debiased: bool = False) -> float:
    gram_x = ref_center_gram(gram_x, unbiased=debiased)
    gram_y = ref_center_gram(gram_y, unbiased=debiased)
    scaled_hsic = gram_x.ravel().dot(gram_y.ravel())
    return float(scaled_hsic / (np.linalg.norm(gram_x) * np.linalg.norm(gram_y)))


def ref_hsic(gram_x: np.ndarray, gram_y: np.ndarray, debiased: bool) -> float:
    """The HSIC estimate of one batch: the centred Grams' dot product over n(n-3) (unbiased) or (n-1)^2."""
    n = gram_x.shape[0]
    dot = ref_center_gram(gram_x, debiased).ravel().dot(ref_center_gram(gram_y, debiased).ravel())
    return float(dot / (n * (n - 3) if debiased else (n - 1) ** 2))


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray]:
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = np.random.randn(100, 10) + x
    return x, y


# -- cka on feature matrices ----------------------------------------------------------------------------


def test_cka_equals_the_published_values_of_the_reference_example(xy: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = xy
    assert cka(x, y) == pytest.approx(0.55761, abs=5e-6)
    assert cka(x, y, kernel="rbf", threshold=0.5) == pytest.approx(0.65483, abs=5e-6)
    assert cka(x, y, debiased=True) == pytest.approx(0.51346, abs=5e-6)
    # and the reference code itself, to float64 precision
    assert cka(x, y) == pytest.approx(ref_cka(ref_gram_linear(x), ref_gram_linear(y)), rel=1e-12)
    assert cka(x, y, kernel="rbf", threshold=0.5) == pytest.approx(ref_cka(ref_gram_rbf(x, 0.5), ref_gram_rbf(y, 0.5)), rel=1e-12)
    assert cka(x, y, debiased=True) == pytest.approx(ref_cka(ref_gram_linear(x), ref_gram_linear(y), True), rel=1e-12)


@pytest.mark.parametrize("n,dx,dy", [(7, 3, 40), (33, 50, 5), (64, 64, 64)])
@pytest.mark.parametrize("kernel,threshold", [("linear", 1.0), ("rbf", 1.0), ("rbf", 0.3)])
@pytest.mark.parametrize("debiased", [False, True])
def test_cka_matches_the_reference_on_other_shapes(n: int, dx: int, dy: int, kernel: str, threshold: float, debiased: bool) -> None:
    rng = np.random.default_rng(n + dx)
    x = rng.standard_normal((n, dx))
    y = np.tanh(x @ rng.standard_normal((dx, dy))) + 0.5 * rng.standard_normal((n, dy))
    gram = ref_gram_linear if kernel == "linear" else (lambda a: ref_gram_rbf(a, threshold))
    assert cka(x, y, kernel=kernel, threshold=threshold, debiased=debiased) == pytest.approx(ref_cka(gram(x), gram(y), debiased), rel=1e-10, abs=1e-12)


def test_cka_invariances(xy: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = xy
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((10, 10)))
    base = cka(x, y)
    assert cka(x, x) == pytest.approx(1.0, abs=1e-12) and cka(x, x, debiased=True) == pytest.approx(1.0, abs=1e-12)
    assert cka(x @ q, y) == pytest.approx(base, rel=1e-10)  # orthogonal transform
    assert cka(3.7 * x, y) == pytest.approx(base, rel=1e-10)  # isotropic scaling
    assert cka(x + 5.0, y) == pytest.approx(base, rel=1e-10)  # a shift (the Grams are centred)
    assert cka(x @ q, y, kernel="rbf", threshold=0.5) == pytest.approx(cka(x, y, kernel="rbf", threshold=0.5), rel=1e-10)
    a = np.diag(np.linspace(0.1, 10, 10)) @ q  # invertible, not orthogonal: CKA changes
    assert abs(cka(x @ a, y) - base) > 0.05
    # torch tensors, float32 and (N, C, H, W) features give the same numbers
    assert cka(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(base, rel=1e-12)
    assert cka(torch.from_numpy(x).float(), torch.from_numpy(y).float()) == pytest.approx(base, rel=1e-5)
    assert cka(x.reshape(100, 10, 1, 1), y) == pytest.approx(base, rel=1e-12)


def test_cka_refuses_what_it_cannot_compute() -> None:
    x = np.random.default_rng(0).standard_normal((10, 4))
    with pytest.raises(CnnlensError, match="same examples"):
        cka(x, x[:9])
    with pytest.raises(CnnlensError, match="kernel 'cosine' unknown"):
        cka(x, x, kernel="cosine")
    with pytest.raises(CnnlensError, match="threshold"):
        cka(x, x, kernel="rbf", threshold=0)
    with pytest.raises(CnnlensError, match="at least 4 examples"):
        cka(x[:3], x[:3], debiased=True)
    with pytest.raises(CnnlensError, match=r"\(N, D\)"):
        cka(x[0], x[0])
    assert math.isnan(cka(np.ones((10, 3)), x))  # a constant representation


# -- layer-level similarity ------------------------------------------------------------------------------


class TwoConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


PREP = cnnlens.Preprocessing(resize_size=24, crop_size=24)


def tiny(seed: int = 0) -> nn.Module:
    """A small conv net that takes 24-pixel images (its normalization inside, as cnnlens.Normalized)."""
    torch.manual_seed(seed)
    return cnnlens.Normalized(TwoConv().eval(), PREP)


def pixels(n: int, seed: int = 0, side: int = 24) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed))


def features_of(model: nn.Module, x: torch.Tensor, layers: list[str]) -> dict[str, np.ndarray]:
    """The layers' outputs on 24-pixel images, read independently of cnnlens' passes."""
    net = model.model
    with torch.no_grad(), capture(net, [n for n in layers if n != "logits"]) as rec:
        out = net(PREP.normalize(x))
    return {n: (out if n == "logits" else rec[n]).reshape(len(x), -1).double().numpy() for n in layers}


LAYERS = ["features.1", "features.3", "logits"]


def test_one_batch_is_the_full_batch_cka_and_the_diagonal_is_one() -> None:
    model, x = tiny(), pixels(20)
    feats = features_of(model, x, LAYERS)
    for debiased in (False, True):
        s = similarity(model, x, layers_a=LAYERS, debiased=debiased, batch_size=64, progress=False)
        assert s.n_batches == 1 and s.matrix.shape == (3, 3)
        for i, a in enumerate(LAYERS):
            for j, b in enumerate(LAYERS):
                expected = ref_cka(ref_gram_linear(feats[a]), ref_gram_linear(feats[b]), debiased)
                assert float(s.matrix[i, j]) == pytest.approx(expected, rel=2e-5), (a, b, debiased)
        assert torch.allclose(torch.diagonal(s.matrix), torch.ones(3, dtype=torch.float64), atol=1e-6)
        assert torch.allclose(s.matrix, s.matrix.T, atol=1e-12)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_minibatch_cka_is_the_mean_of_the_per_batch_estimates(kernel: str) -> None:
    """Nguyen et al.'s estimator: per batch of 8 (and a last batch of 6) the unbiased HSIC of each pair, averaged."""
    model, other, x = tiny(0), tiny(1), pixels(30)
    fa, fb = features_of(model, x, LAYERS), features_of(other, x, ["features.3", "logits"])
    s = similarity(model, x, layers_a=LAYERS, model_b=other, layers_b=["features.3", "logits"], kernel=kernel, threshold=0.7,
                   debiased=True, batch_size=8, progress=False)  # fmt: skip
    gram = ref_gram_linear if kernel == "linear" else (lambda a: ref_gram_rbf(a, 0.7))
    batches = [slice(i, i + 8) for i in range(0, 30, 8)]
    assert s.n_batches == 4
    for i, a in enumerate(LAYERS):
        for j, b in enumerate(["features.3", "logits"]):
            cross = np.mean([ref_hsic(gram(fa[a][k]), gram(fb[b][k]), True) for k in batches])
            self_a = np.mean([ref_hsic(gram(fa[a][k]), gram(fa[a][k]), True) for k in batches])
            self_b = np.mean([ref_hsic(gram(fb[b][k]), gram(fb[b][k]), True) for k in batches])
            assert float(s.matrix[i, j]) == pytest.approx(cross / math.sqrt(self_a * self_b), rel=2e-5), (a, b)


def test_shards_merge_to_one_process_exactly(tmp_path: Path) -> None:
    model, other, x = tiny(0), tiny(1), pixels(37)
    kwargs = dict(layers_a=LAYERS, model_b=other, debiased=True, batch_size=6, progress=False)
    one = similarity(model, x, **kwargs)
    parts = []
    for i in range(3):
        part = similarity(model, x, sharding=Sharding(shard=f"{i}/3"), **kwargs)
        part.save(tmp_path / f"part-{i}.json")
        parts.append(tmp_path / f"part-{i}.json")
    merged = merge(list(reversed(parts)))
    assert torch.equal(merged.matrix, one.matrix) and merged.to_dict() == one.to_dict()
    assert one.left_out == 1 and any("last 1 image" in w for w in one.warnings)  # 37 = 6 * 6 + 1


def test_similarity_leaves_models_as_they_were_and_refuses_bad_input() -> None:
    model, x = tiny(), pixels(10)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    similarity(model, x, layers_a=LAYERS, progress=False)
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    model.eval()
    for kwargs, message in [
        (dict(layers_a=["features.9"]), "layers_a: .*features.9"),
        (dict(layers_a=[]), "layers_a is empty"),
        (dict(kernel="cosine"), "kernel 'cosine' unknown"),
        (dict(batch_size=3, debiased=True), "batch_size"),
        (dict(threshold=float("nan")), "threshold"),
        (dict(debiased="yes"), "debiased must be True or False"),
    ]:
        with pytest.raises(CnnlensError, match=message):
            similarity(model, x, progress=False, **kwargs)
    with pytest.raises(CnnlensError, match="at least 4 images"):
        similarity(model, x[:3], debiased=True, progress=False)


def test_default_layers_go_from_the_first_stage_to_the_logits() -> None:
    sq = cnnlens.create_model("squeezenet1_0", seed=0)
    assert cnnlens.default_layers(sq, "representations") == [
        "features.2", "features.3", "features.4", "features.5", "features.7", "features.8", "features.9", "features.10", "features.12", "logits",
    ]  # fmt: skip
    r18 = cnnlens.default_layers(cnnlens.create_model("resnet18", seed=0), "representations")
    assert r18[0] == "conv1" and r18[-1] == "logits" and len(r18) == 9 and "bn1" not in r18
    g = cnnlens.default_layers(cnnlens.create_model("googlenet", seed=0), "representations")
    assert not any(n.startswith("aux") for n in g)  # modules a forward in eval mode does not call are left out


def test_similarity_result_protocol(tmp_path: Path) -> None:
    s = similarity(tiny(), pixels(12), layers_a=LAYERS, progress=False)
    d = json.loads(s.to_json())
    assert d["layers_a"] == LAYERS and len(d["cka"]) == 3 and d["n_images"] == 12 and "one batch" in d["estimator"]
    assert "features.3" in s.to_text() and "1.0000" in s.to_text()
    s.save(tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 5000
    assert s.diagonal() == {n: pytest.approx(1.0, abs=1e-6) for n in LAYERS}
    with pytest.raises(CnnlensError, match="was not compared"):
        s.value("features.0", "logits")


# -- probes --------------------------------------------------------------------------------------------


def test_fit_probe_agrees_with_scikit_learn() -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 6))
    y = (x[:, 0] + 0.5 * x[:, 1] + 0.3 * rng.standard_normal(200) > 0).astype(int) + (x[:, 2] > 1).astype(int)
    w, b = fit_probe(torch.from_numpy(x), torch.from_numpy(y), 3, weight_decay=1e-2)
    # the same objective in scikit-learn: mean cross-entropy + (lambda/2)|W|^2  <=>  C = 1 / (n * lambda)
    ref = sklearn.LogisticRegression(C=1 / (200 * 1e-2), tol=1e-10, max_iter=10_000).fit(x, y)
    ours = (torch.from_numpy(x) @ w + b).softmax(1).numpy()
    assert np.abs(ours - ref.predict_proba(x)).max() < 1e-4


def test_stratified_folds_are_balanced_and_seeded() -> None:
    y = torch.tensor([0] * 23 + [1] * 9 + [2] * 3)
    f = stratified_folds(y, 5, seed=0)
    for c in range(3):
        counts = torch.bincount(f[y == c], minlength=5)
        assert int(counts.max()) - int(counts.min()) <= 1
    assert torch.equal(f, stratified_folds(y, 5, seed=0)) and not torch.equal(f, stratified_folds(y, 5, seed=1))


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 images in two classes a linear read-out separates: mostly red (class 0) or mostly blue (class 1)."""
    import skimage.io

    root = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(0)
    for i in range(60):
        img = (rng.random((24, 24, 3)) * 120).astype(np.uint8)
        img[:, :, 0 if i % 2 == 0 else 2] += 120
        (root / f"c{i % 2}").mkdir(exist_ok=True)
        skimage.io.imsave(root / f"c{i % 2}" / f"im{i:02d}.png", img, check_contrast=False)
    return root


def test_probe_reads_a_linearly_separable_labelling(labelled: Path) -> None:
    model = tiny()
    p = probe(model, labelled, layers=["features.1", "logits"], baseline=tiny(3), folds=4, progress=False)
    assert p.n_images == 60 and p.n_classes == 2 and p.chance == 0.5
    assert p.accuracy("features.1") == 1.0 and p.accuracy("features.1", baseline=True) == 1.0
    row = p.rows[0]
    assert len(row.fold_accuracy) == 4 and row.features == 6 and row.stderr == 0.0
    d = json.loads(p.to_json())
    assert d["layers"][0]["layer"] == "features.1" and "4-fold" in d["recipe"]
    assert "features.1" in p.to_text()
    with pytest.raises(CnnlensError, match="folds"):
        probe(model, labelled, folds=1, progress=False)
    with pytest.raises(CnnlensError, match="too few"):
        probe(model, labelled, folds=20, limit=30, progress=False)


def test_probe_of_a_random_init_says_there_is_no_separate_baseline(labelled: Path) -> None:
    model = cnnlens.create_model("lenet5", seed=0)
    p = probe(model, labelled, layers=["2"], baseline=True, folds=3, progress=False)
    assert p.baseline_rows is None and any("itself a random initialisation" in w for w in p.warnings)


# -- embeddings ------------------------------------------------------------------------------------------


def test_pca_map_equals_scikit_learn_up_to_sign() -> None:
    decomposition = pytest.importorskip("sklearn.decomposition")
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((50, 7)) @ np.diag([5, 3, 1, 1, 0.5, 0.2, 0.1]))
    coords, share = pca_2d(x)
    ref = decomposition.PCA(2).fit(x.numpy())
    expected = ref.transform(x.numpy())
    assert np.allclose(np.abs(coords.numpy()), np.abs(expected), atol=1e-10)
    assert np.allclose(share, ref.explained_variance_ratio_, atol=1e-12)


def test_embed_colours_by_class_folder(labelled: Path, tmp_path: Path) -> None:
    e = embed(tiny(), labelled, layers=["features.1", "logits"], progress=False)
    assert e.coords["features.1"].shape == (60, 2) and sorted(set(e.labels)) == [0, 1] and e.class_names == {0: "c0", 1: "c1"}
    assert 0 < e.explained["features.1"][0] <= 1
    e.save(tmp_path / "e.png")
    d = json.loads(e.to_json())
    assert len(d["layers"]["logits"]["coords"]) == 60 and d["class_names"] == {"0": "c0", "1": "c1"}
    with pytest.raises(CnnlensError, match="method 'umap' unknown"):
        embed(tiny(), labelled, method="umap", progress=False)


def test_embed_tsne_where_scikit_learn_is_installed(labelled: Path) -> None:
    pytest.importorskip("sklearn.manifold")
    a = embed(tiny(), labelled, layers=["logits"], method="tsne", seed=0, limit=30, progress=False)
    b = embed(tiny(), labelled, layers=["logits"], method="tsne", seed=0, limit=30, progress=False)
    assert a.coords["logits"].shape == (30, 2) and torch.equal(a.coords["logits"], b.coords["logits"])


# -- the commands --------------------------------------------------------------------------------------


def run_cli(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.stdout, result.stderr


def test_similarity_command_json_equals_the_api(labelled: Path) -> None:
    code, out, err = run_cli(["similarity", "lenet5", "-w", "none", "--data", str(labelled), "-l", "0,2", "-l", "logits", "--limit", "20", "--json"])
    assert code == 0, err
    d = json.loads(out)
    api = similarity(cnnlens.create_model("lenet5", seed=0), labelled, layers_a=["0", "2", "logits"], limit=20, progress=False)
    assert d["cka"] == json.loads(api.to_json())["cka"]
    code, out, err = run_cli(["similarity", "lenet5", "-w", "none", "--data", str(labelled), "-l", "2", "--limit", "12", "-w2", "none", "--json"])
    d = json.loads(out)
    assert code == 0 and d["model_b"]["weights"] == "random init, seed 1" and d["cka"][0][0] < 0.999  # --seed + 1: another init
    code, out, err = run_cli(["similarity", "lenet5", "-w", "none", "--data", str(labelled), "-l", "2", "--limit", "12", "--baseline", "--json"])
    assert code == 0 and "MODEL is itself a random initialisation (seed 0): the baseline is another one, seed 1" in err
    assert json.loads(out)["cka"] == d["cka"]  # the same second model as -w2 none


def test_similarity_command_refusals(labelled: Path, tmp_path: Path) -> None:
    base = ["similarity", "lenet5", "-w", "none", "--data", str(labelled)]
    for extra, message in [
        (["-l", "nope"], "Error: layers_a: "),
        (["--baseline", "random", "-w2", "none"], "Error: --baseline random is the second model"),
        (["--kernel", "cosine"], "Error: Invalid value for '--kernel'"),
        (["--threshold", "nan"], "Error: --threshold"),
        (["-l", ","], "Error: layer is empty"),
    ]:
        code, _, err = run_cli([*base, *extra, "--json"])
        assert code == 2 and err.startswith(message) and err.count("\n") == 1, (extra, err)
    code, _, err = run_cli(["similarity", "lenet5", "-w", "none", "--data", str(tmp_path / "absent"), "--json"])
    assert code == 2 and "no such folder" in err


def test_probe_and_embed_commands(labelled: Path, tmp_path: Path) -> None:
    code, out, err = run_cli(["probe", "lenet5", "-w", "none", "--data", str(labelled), "-l", "2", "--folds", "3", "--json"])
    assert code == 0, err
    assert json.loads(out)["layers"][0]["accuracy"] > 0.9
    code, out, err = run_cli(["embed", "lenet5", "-w", "none", "--data", str(labelled), "-l", "2,logits", "-o", str(tmp_path / "e.png")])
    assert code == 0, err and (tmp_path / "e.png").exists() and "PCA maps of 60 images" in out
    with (tmp_path / "labels.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["filename", "class_index"], ["c0/im00.png", 0]])
    code, _, err = run_cli(["probe", "lenet5", "-w", "none", "--data", str(labelled), "--labels", str(tmp_path / "labels.csv"), "--json"])
    assert code == 2 and "class" in err and err.count("\n") == 1


# -- the trained network on real photos (../shared/data) -----------------------------------------------


@pytest.mark.slow
def test_trained_squeezenet_layers_move_away_from_random_init_and_probes_rise(squeezenet_trained: nn.Module, data: Path, tmp_path: Path) -> None:
    """On 100 of the ImageNet samples: a trained layer is less like its random-init counterpart the
    deeper it is, neighbouring trained layers are alike, and "animal or not" is read better from deep
    trained layers than from the same layers at random initialisation."""
    samples = data / "imagenet_samples"
    layers = ["features.2", "features.5", "features.9", "features.12", "logits"]
    random = cnnlens.random_init_like(squeezenet_trained, 0)
    s = similarity(squeezenet_trained, samples, layers_a=layers, model_b=random, debiased=True, batch_size=50, limit=100, progress=False)
    diagonal = [s.value(n, n) for n in layers]
    assert diagonal[0] > 0.5 and diagonal[-1] < 0.2 and diagonal[0] > diagonal[2] > diagonal[-1], diagonal
    within = similarity(squeezenet_trained, samples, layers_a=layers, debiased=True, batch_size=50, limit=100, progress=False)
    assert within.value("features.2", "features.5") > 0.7 > within.value("features.2", "logits")
    rows = list(csv.DictReader((samples / "labels.csv").open()))
    with (tmp_path / "animals.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["filename", "class_index"], *[[r["filename"], int(int(r["class_index"]) > 397)] for r in rows]])
    p = probe(squeezenet_trained, samples, labels=tmp_path / "animals.csv", layers=["features.2", "features.12"], baseline=random, limit=200,
              progress=False)  # fmt: skip
    assert p.accuracy("features.12") > p.accuracy("features.2") and p.accuracy("features.12") > p.accuracy("features.12", baseline=True) + 0.1
