"""The layout: no import cycle between cnnlens modules (lazy imports inside functions count too), no private
name imported across modules, and every submodule reachable after ``import cnnlens``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import cnnlens

PACKAGE = Path(cnnlens.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names) for every import statement outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    out: list[tuple[str, list[str]]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                out.extend((a.name, []) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                out.append((target, [a.name for a in child.names]))
            visit(child)

    visit(tree)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        if name == "cnnlens":
            continue  # the lazy top-level namespace re-exports everything by design
        for target, names in _imports(name, path):
            if not target.startswith("cnnlens"):
                continue
            for n in names:
                if f"{target}.{n}" in modules:
                    graph[name].add(f"{target}.{n}")
            if target in modules and target != "cnnlens" and not (target != name and name.startswith(target + ".") and all(f"{target}.{n}" in modules for n in names)):
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return found


def test_no_import_cycle_between_cnnlens_modules() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_detector_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_name_is_imported_across_modules() -> None:
    offenders = []
    for name, path in _modules().items():
        for target, names in _imports(name, path):
            if target.startswith("cnnlens"):
                offenders += [f"{name} imports {target}.{n}" for n in names if n.startswith("_") and n != "__version__" and f"{target}.{n}" not in _modules()]
    assert offenders == []


def python_prints(code: str) -> str:
    """What ``code`` prints in a fresh interpreter (stripped); its stderr if it prints nothing."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return result.stdout.strip() or result.stderr


def test_every_submodule_is_reachable_after_import_cnnlens() -> None:
    code = (
        "import cnnlens, pkgutil, importlib\n"
        "for info in pkgutil.iter_modules(cnnlens.__path__):\n"
        "    if info.name.startswith('_') or info.name == 'cli':\n"
        "        continue\n"
        "    assert getattr(cnnlens, info.name).__name__ == 'cnnlens.' + info.name, info.name\n"
        "print('ok')\n"
    )
    assert python_prints(code) == "ok"


def test_import_cnnlens_does_not_import_torch() -> None:
    assert python_prints("import sys, cnnlens; print('torch' in sys.modules)") == "False"


# -- the house: a core every capability stands on, capabilities that do not import each other ----------

CORE = {
    "address", "checks", "distributed", "errors", "folders", "geometry", "hooks", "images", "layers", "outputs",
    "gradients", "pixelnet", "pixels", "progress", "receptive_field", "registry", "relevance", "reports", "results", "seeds", "speed", "stimuli",
    "testing", "zoo",
}
CAPABILITIES = {"attacks", "attribution", "circuits", "concepts", "featvis", "representations", "style", "tuning", "units"}
COMPOSITIONS = {"microscope", "cli"}  # built from capabilities, by design
ALLOWED = {
    ("attribution", "units.deconv"),  # guided Grad-CAM reuses guided backprop
    # a concept is shown as a unit is: the patch machinery and the feature visualization of a direction
    ("concepts", "units.patches"),
    ("concepts", "units.patch_results"),
    ("concepts", "featvis.objectives"),
    ("concepts", "featvis.render"),
}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cross_imports() -> list[str]:
    out = []
    for name, path in _modules().items():
        here = _top(name)
        for target, names in _imports(name, path):
            if not target.startswith("cnnlens.") and target != "cnnlens":
                continue
            targets = [f"{target}.{n}" for n in names if f"{target}.{n}" in _modules()] or [target]
            for t in targets:
                there = _top(t)
                if not there or there == here:
                    continue
                sub = ".".join(t.split(".")[1:3])
                if here in CORE and there not in CORE:
                    out.append(f"core module {name} imports {t}")
                elif here in CAPABILITIES and there not in CORE and (here, sub) not in ALLOWED:
                    out.append(f"capability module {name} imports {t}")
    return sorted(set(out))


def test_every_module_is_placed_in_the_house() -> None:
    tops = {_top(m) for m in _modules()} - {""}
    assert tops <= CORE | CAPABILITIES | COMPOSITIONS | {"__main__"}, tops - (CORE | CAPABILITIES | COMPOSITIONS)


def test_capabilities_import_the_core_never_each_other() -> None:
    assert _cross_imports() == []


def test_the_house_rule_catches_a_sibling_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = {"cnnlens.tuning.x": tmp_path / "x.py", "cnnlens.units.patches": tmp_path / "p.py"}
    fake["cnnlens.tuning.x"].write_text("from ..units.patches import select_images\n")
    fake["cnnlens.units.patches"].write_text("")
    monkeypatch.setattr(sys.modules[__name__], "_modules", lambda: fake)
    assert _cross_imports() == ["capability module cnnlens.tuning.x imports cnnlens.units.patches"]


def test_distributed_names_no_capability() -> None:
    text = "\n".join(p.read_text() for p in (PACKAGE / "distributed").glob("*.py"))
    assert not any(f"cnnlens.{c}" in text or f".{c}." in text for c in CAPABILITIES | COMPOSITIONS - {"cli"})


def test_import_cnnlens_reads_no_package_metadata() -> None:
    """``__version__`` is read on first use: importlib.metadata is most of the cost of ``import cnnlens``."""
    code = "import sys, cnnlens; a = 'importlib.metadata' in sys.modules; v = cnnlens.__version__; print(a, v.count('.') >= 1)"
    assert python_prints(code) == "False True"


def test_a_lazy_name_is_resolved_once() -> None:
    """``cnnlens.report`` and the other lazy names are looked up on first use and kept in the module:
    a later use neither lists the package folder again nor goes through ``__getattr__``."""
    code = (
        "import cnnlens, pkgutil; r = cnnlens.report; calls = []; real = pkgutil.iter_modules\n"
        "pkgutil.iter_modules = lambda *a, **k: calls.append(1) or real(*a, **k)\n"
        "assert cnnlens.report is r and 'report' in vars(cnnlens) and cnnlens.units is cnnlens.units\n"
        "print(len(calls), callable(r))"
    )
    assert python_prints(code) == "0 True"
