"""The public API, recorded: a public name or signature that changes fails here until the record is updated
on purpose (``python tests/test_api_surface.py --update``), as kornia keeps its surface."""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

RECORD = Path(__file__).with_name("api_surface.json")
MODULES = (
    "cnnlens", "cnnlens.address", "cnnlens.attacks", "cnnlens.attribution", "cnnlens.checks", "cnnlens.circuits", "cnnlens.concepts", "cnnlens.distributed", "cnnlens.errors",
    "cnnlens.featvis", "cnnlens.folders", "cnnlens.geometry", "cnnlens.gradients", "cnnlens.hooks", "cnnlens.images", "cnnlens.layers", "cnnlens.microscope",
    "cnnlens.outputs", "cnnlens.pixelnet", "cnnlens.pixels", "cnnlens.progress", "cnnlens.receptive_field", "cnnlens.registry", "cnnlens.relevance",
    "cnnlens.reports", "cnnlens.representations", "cnnlens.results", "cnnlens.seeds", "cnnlens.speed", "cnnlens.stimuli", "cnnlens.style", "cnnlens.testing", "cnnlens.tuning",
    "cnnlens.units", "cnnlens.zoo",
)
MAX_PARAMETERS = 12  # a public function groups its finer knobs in an option object beyond this


def _describe(obj: Any) -> Any:
    if inspect.isclass(obj):
        methods = {
            name: _signature(member)
            for name, member in sorted(vars(obj).items())
            if not name.startswith("_") and (inspect.isfunction(member) or isinstance(member, (property, classmethod, staticmethod)))
        }
        return {"class": _signature(obj), "methods": methods}
    if callable(obj):
        return _signature(obj)
    return type(obj).__name__


def _signature(obj: Any) -> str:
    if isinstance(obj, property):
        return "property"
    if isinstance(obj, (classmethod, staticmethod)):
        obj = obj.__func__
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def surface() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None)
        assert names is not None, f"{module_name} has no __all__"
        out[module_name] = {name: _describe(getattr(module, name)) for name in sorted(names)}
    return out


def test_public_api_is_as_recorded() -> None:
    recorded = json.loads(RECORD.read_text())
    current = surface()
    for module_name in MODULES:
        assert module_name in recorded, f"{module_name} is not recorded"
        gone = sorted(set(recorded[module_name]) - set(current[module_name]))
        added = sorted(set(current[module_name]) - set(recorded[module_name]))
        assert not gone, f"{module_name} lost public names {gone}"
        assert not added, f"{module_name} has new public names {added}: record them"
        for name, described in current[module_name].items():
            assert described == recorded[module_name][name], f"{module_name}.{name} changed: {described} != {recorded[module_name][name]}"


def test_every_public_name_has_a_docstring() -> None:
    missing = []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and not inspect.getdoc(obj):
                missing.append(f"{module_name}.{name}")
    assert missing == []


if __name__ == "__main__":
    if "--update" in sys.argv:
        RECORD.write_text(json.dumps(surface(), indent=1, sort_keys=True) + "\n")
        print(f"wrote {RECORD}")


def _parameter_counts() -> dict[str, int]:
    counts: dict[str, int] = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                counts[f"{module_name}.{name}"] = len(inspect.signature(obj).parameters)
            elif inspect.isclass(obj) and not hasattr(obj, "__dataclass_fields__"):
                for member_name, member in vars(obj).items():
                    if inspect.isfunction(member) and not member_name.startswith("_"):
                        counts[f"{module_name}.{name}.{member_name}"] = len(inspect.signature(member).parameters) - 1
    return counts


def test_no_public_function_takes_more_than_twelve_parameters() -> None:
    counts = _parameter_counts()
    assert counts["cnnlens.attribute"] <= MAX_PARAMETERS and len(counts) > 100
    assert {name: n for name, n in counts.items() if n > MAX_PARAMETERS} == {}


def test_every_recorded_name_is_documented() -> None:
    """The recorded surface is what README.md and docs/ name; anything else is free to change."""
    import re

    root = Path(__file__).resolve().parents[1]
    docs = "\n".join(p.read_text() for p in [root / "README.md", *root.glob("docs/*.md")])
    undocumented = [f"{module_name}.{name}" for module_name in MODULES if module_name not in ("cnnlens.testing", "cnnlens.zoo")
                    for name in importlib.import_module(module_name).__all__ if not re.search(rf"\b{re.escape(name)}\b", docs)]
    assert undocumented == []


def test_every_seed_is_an_int_or_none() -> None:
    """One randomness convention: a public function that draws random numbers takes ``seed: int | None``
    (and no ``generator=``); nothing seeds torch's global generators (grep-checked below)."""
    seeds, generators = [], []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) and name != "check_seed":  # the check itself takes anything
                params = inspect.signature(obj).parameters
                if "seed" in params:
                    seeds.append((f"{module_name}.{name}", str(params["seed"].annotation)))
                if "generator" in params:
                    generators.append(f"{module_name}.{name}")
    assert len(seeds) >= 10 and generators == []
    assert [(name, a) for name, a in seeds if a.replace(" ", "") != "int|None"] == []
    root = Path(__file__).resolve().parents[1] / "cnnlens"
    global_seeding = [
        f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py") for i, line in enumerate(p.read_text().splitlines(), 1)
        if ("torch.manual_seed(" in line or "np.random.seed(" in line or "random.seed(" in line) and p.name != "seeds.py"
    ]
    assert global_seeding == []
