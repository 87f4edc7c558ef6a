"""The package's layers: no module imports a layer above its own, and no modules import each other in a loop.

Every module under src/mslesion is parsed with `ast` (nothing is imported): imports at
module level and inside functions both count, since a lazy import still ties the two
modules together. Layers, lowest first:

    base (package root, errors, components, space) -> io -> preprocess -> models -> infer
    -> postprocess -> evaluate -> report -> synth -> train -> top (pipeline, new_lesions,
    predict, cohort, cli, demo, benchmark, the atlas build script)

A module may import its own layer and the layers below it. `synth` (phantoms) and `train`
sit above the main chain so that nothing in it can import them; they may use every stage.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "mslesion"

TOP = (
    "mslesion.pipeline",
    "mslesion.new_lesions",
    "mslesion.predict",
    "mslesion.cohort",
    "mslesion.cli",
    "mslesion.demo",
    "mslesion.benchmark",
    "mslesion.data",
)
LAYERS: list[tuple[str, ...]] = [
    ("mslesion", "mslesion.errors", "mslesion.components", "mslesion.space"),
    ("mslesion.io",),
    ("mslesion.preprocess",),
    ("mslesion.models", "mslesion.losses"),
    ("mslesion.infer",),
    ("mslesion.postprocess",),
    ("mslesion.evaluate",),
    ("mslesion.report",),
    ("mslesion.synth",),
    ("mslesion.train",),
    TOP,
]

# Upward imports not yet removed: (importer, imported module) -> why. Entries may only go; the
# test fails when one is no longer needed, so remove it then.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {
    # draw_erase.degrade blurs and thickens slices with the training augmentation's `blur` and
    # `axial_mean`; train/augment.py is being edited elsewhere, so the two functions have not moved
    # down (to preprocess or synth) yet.
    ("mslesion.synth.draw_erase", "mslesion.train.augment"): "blur/axial_mean still live in train.augment",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported mslesion module, line) for every import in the file, module level or not."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod.
            submodules = [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in known]
            found += [(m, node.lineno) for m in submodules] or [(source, node.lineno)]
    return [(m, line) for m, line in found if m == "mslesion" or m.startswith("mslesion.")]


def layer_of(name: str) -> int:
    """Index in LAYERS of the longest prefix that names the module or one of its packages."""
    best, depth = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and prefix.count(".") > depth:
                best, depth = index, prefix.count(".")
    assert best >= 0, f"{name} is in no layer: add it to LAYERS in {Path(__file__).name}"
    return best


def import_graph() -> dict[str, list[tuple[str, int]]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def test_every_module_has_a_layer() -> None:
    for name in modules():
        layer_of(name)


def test_no_module_imports_a_layer_above_its_own() -> None:
    found = modules()
    upward, used = [], set()
    for name, targets in import_graph().items():
        for target, line in targets:
            if layer_of(target) <= layer_of(name):
                continue
            if (name, target) in ALLOWED_UPWARD:
                used.add((name, target))
                continue
            rel = found[name].relative_to(SRC.parent)
            upward.append(f"{rel}:{line} imports {target} (layer {LAYERS[layer_of(target)][0]} is above {LAYERS[layer_of(name)][0]})")
    assert not upward, "upward imports:\n" + "\n".join(upward)
    stale = sorted(set(ALLOWED_UPWARD) - used)
    assert not stale, f"allow-list entries no longer needed (remove them): {stale}"


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_cycles() -> None:
    found = modules()
    graph = {name: {t for t, _ in targets if t in found and t != name} for name, targets in import_graph().items()}
    lines = {(name, t): line for name, targets in import_graph().items() for t, line in targets}
    cycles = []
    for component in strongly_connected(graph):
        members = set(component)
        edges = [f"{found[a].relative_to(SRC.parent)}:{lines[a, b]} imports {b}" for a in component for b in sorted(graph[a] & members)]
        cycles.append(" <-> ".join(component) + "\n    " + "\n    ".join(edges))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("from . import sibling\n\ndef f():\n    from mslesion.pipeline import segment\n")
    targets = imports_of("mslesion.io.mod", source, {"mslesion.io.sibling"})
    assert targets == [("mslesion.io.sibling", 1), ("mslesion.pipeline", 4)]
    assert layer_of("mslesion.space.grid") < layer_of("mslesion.io.volume") < layer_of("mslesion.synth.anatomy")
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
