"""The house rules a reader cannot see from one module: the `gibbous` package has no import
cycles (issue #27).

The import graph is read from the source with `ast`, not from what Python happens to import
at run time: an import inside a function or under `TYPE_CHECKING` still ties the two
modules' designs together, so it counts. `from pkg import name` imports the submodule
`pkg.name` when there is one, else `pkg`. A cycle is a strongly connected component of
two or more modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

GIBBOUS = Path(__file__).resolve().parent.parent / "gibbous"


def package_modules(package_dir: Path) -> dict[str, Path]:
    """Every module of the package under `package_dir`, by dotted name."""
    root = package_dir.parent
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The package's modules that module `name` imports, wherever the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:  # `from pkg import submodule`
                    found.add(f"{source}.{alias.name}")
                elif source in modules:
                    found.add(source)
    found.discard(name)
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    modules = package_modules(package_dir)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of two or more modules (Tarjan's algorithm), each
    sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def write_package(root: Path, files: Mapping[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_checker_finds_cycles_through_every_kind_of_import(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "VERSION = 1\n",
            # a -> b by naming the submodule in `from pkg import b`
            "pkg/a.py": "import os\nfrom pkg import b\n",
            # b -> c relatively, inside a function
            "pkg/b.py": "def later():\n    from . import c\n    return c\n",
            # c -> a only for the type checker: still a cycle of the design
            "pkg/c.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import os\n"
            ),
            # d imports into the cycle and is not part of it
            "pkg/d.py": "import pkg.a\nimport json\n",
            # g takes a name from the package itself
            "pkg/g.py": "from pkg import VERSION\n",
            "pkg/sub/__init__.py": "",
            # e -> f two levels up and down again, f -> e from its own package
            "pkg/sub/e.py": "from ..sub import f\n",
            "pkg/sub/f.py": "from .e import f as again\n",
        },
    )
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.c"}
    assert graph["pkg.c"] == {"pkg.a"}
    assert graph["pkg.d"] == {"pkg.a"}
    assert graph["pkg.g"] == {"pkg"}
    assert graph["pkg.sub.e"] == {"pkg.sub.f"}
    assert graph["pkg.sub.f"] == {"pkg.sub.e"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"], ["pkg.sub.e", "pkg.sub.f"]]


def test_the_checker_passes_a_package_without_cycles(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\nfrom pkg.c import name\n",
            "pkg/b.py": "from . import c\n",
            "pkg/c.py": "name = 'c'\n",
        },
    )
    graph = import_graph(package)
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b", "pkg.c"}, "pkg.b": {"pkg.c"}, "pkg.c": set()}
    assert cycles(graph) == []


def test_gibbous_has_no_import_cycles() -> None:
    assert cycles(import_graph(GIBBOUS)) == []
