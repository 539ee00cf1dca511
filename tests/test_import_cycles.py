"""No import cycles in deepfake_lightning (issue 20 part 5): the import graph, as grimp reads it, is acyclic.

grimp sees every import, those inside functions included (an import deferred into a function still closes a
loop a reader has to follow). Imports under `if TYPE_CHECKING:` are left out: they never run. Python also runs
a package's `__init__.py` before any module inside it, so an import of `pkg.sub.mod` from outside `pkg.sub` is
counted as an import of `pkg.sub` (and of `pkg`) as well: a loop through a package's re-exports is a cycle too.
"""

from __future__ import annotations

import grimp
import pytest

PACKAGE = "deepfake_lightning"


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def import_graph(package: str = PACKAGE) -> grimp.ImportGraph:
    """grimp's graph of `package`, plus the implicit imports of the packages `__init__` that an import runs."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=True)
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            for parent in _parents(imported):
                outside = not (importer == parent or importer.startswith(parent + "."))
                if outside and parent in graph.modules and parent != PACKAGE:
                    graph.add_import(importer=importer, imported=parent)
    return graph


def import_cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """One shortest loop per import that closes one (importer -> imported -> ... -> importer), deduplicated."""
    found: set[tuple[str, ...]] = set()
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            chain = graph.find_shortest_chain(importer=imported, imported=importer)
            if chain is not None:
                loop = (importer, *chain)
                start = loop.index(min(loop[:-1]))  # the same loop found from each member: rotate to one form
                found.add((*loop[start:-1], *loop[:start], loop[start]))
    return sorted(found)


def test_no_import_cycles() -> None:
    cycles = import_cycles(import_graph())
    assert not cycles, f"{len(cycles)} import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("imports", "expected"),
    [
        ({"p.a": ["p.b"], "p.b": ["p.a"]}, [("p.a", "p.b", "p.a")]),
        ({"p.a": ["p.b"], "p.b": []}, []),
    ],
)
def test_import_cycles_finds_a_loop(imports: dict[str, list[str]], expected: list[tuple[str, ...]]) -> None:
    """The check itself can fail: a two-module loop is found, a one-way import is not."""
    graph = grimp.ImportGraph()
    for importer, targets in imports.items():
        graph.add_module(importer)
        for target in targets:
            graph.add_import(importer=importer, imported=target)
    assert import_cycles(graph) == expected


def test_package_init_counts(tmp_path, monkeypatch) -> None:
    """A module that imports `pkg.sub.mod` runs `pkg/sub/__init__.py`: a loop through it is found."""
    root = tmp_path / "loopy"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("from loopy.sub.mod import X\n")
    (root / "sub" / "mod.py").write_text("from loopy.low import Y\nX = 1\n")
    (root / "low.py").write_text("from loopy.sub.leaf import Z\nY = 2\n")
    (root / "sub" / "leaf.py").write_text("Z = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cycles = import_cycles(import_graph("loopy"))
    assert ("loopy.low", "loopy.sub", "loopy.sub.mod", "loopy.low") in cycles
