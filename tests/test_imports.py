"""The package's import graph, function-level imports included: no cycles, and the papers' networks (`models/msl.py`,
`models/twostage.py`) reach nothing of the face stages or the pipeline."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hf_faceinpaint"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its file; importing a module imports its parent
    packages too (but a package's own modules do not import their package again)."""
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                submodules = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in files]
                targets = submodules if len(submodules) == len(node.names) else [target, *submodules]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    parent = ".".join(parts[:i])
                    if parent in files and parent != name and not name.startswith(parent + "."):
                        graph[name].add(parent)
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_there_are_no_import_cycles() -> None:
    graph = import_graph()
    cycles = sorted(name for name in graph if name in reachable(graph, name))
    assert not cycles, f"modules on an import cycle: {cycles}"


def test_the_papers_networks_import_no_face_stage() -> None:
    graph = import_graph()
    for network in ("hf_faceinpaint.models.msl", "hf_faceinpaint.models.twostage"):
        stack = {m for m in reachable(graph, network) if m.startswith(("hf_faceinpaint.face", "hf_faceinpaint.pipeline"))}
        assert not stack, (network, stack)
