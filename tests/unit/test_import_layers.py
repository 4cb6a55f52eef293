"""The import graph, read from the sources: no module imports another that (directly or not)
imports it back, type-only imports included, and the lower layers know nothing of the upper ones.

A cycle hidden behind `if TYPE_CHECKING:` still means two modules know each other; the layers are
what lets the exit policy, the SPP engine and the devices be tested without a Machine.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("vmm", "kvm_abi")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every project module `path` imports anywhere in its text, TYPE_CHECKING blocks included."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    found.add(f"{base}.{alias.name}")
                elif base in known:
                    found.add(base)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
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
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_is_read_from_the_sources() -> None:
    graph = import_graph()
    assert "vmm.kvm.exits" in graph["vmm.kvm.vcpu"]
    assert "vmm.errors" in graph["vmm.runner.runner"]


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def imported_from(graph: dict[str, set[str]], prefix: str) -> set[str]:
    return {dep for name, deps in graph.items() if name.startswith(prefix) for dep in deps}


def test_the_kvm_layer_knows_only_the_abi_and_the_error_types() -> None:
    # vmm.record (the records' base classes) imports nothing of pyvmm's, as vmm.errors and vmm.layout
    reached = imported_from(import_graph(), "vmm.kvm")
    outside = {m for m in reached if not m.startswith(("kvm_abi", "vmm.kvm"))}
    assert outside <= {"vmm.errors", "vmm.layout", "vmm.record"}


def test_the_record_base_imports_nothing_of_pyvmm() -> None:
    assert not {m for m in import_graph()["vmm.record"] if m.startswith(("vmm", "kvm_abi"))}


def test_devices_know_nothing_of_the_board_the_runner_the_machine_or_spp() -> None:
    reached = imported_from(import_graph(), "vmm.devices")
    assert not {m for m in reached if m.startswith(("vmm.board", "vmm.runner", "vmm.machine", "vmm.spp", "vmm.cli"))}


def test_cpu_setup_does_not_know_the_board() -> None:
    assert not {m for m in imported_from(import_graph(), "vmm.cpu") if m.startswith("vmm.board")}


def test_only_the_front_ends_import_the_machine_facade() -> None:
    graph = import_graph()
    users = {name for name, deps in graph.items() if "vmm.machine" in deps}
    assert {u.split(".")[1] if "." in u else u for u in users} <= {"vmm", "cli", "bench"}
