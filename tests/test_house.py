"""The house rules a reader cannot see from one module (issue #27): the `gibbous` package
has no import cycles, no module over 800 lines unless it is a data table, and no function
or method over 150 lines.

The import graph is read from the source with `ast`, not from what Python happens to import
at run time: an import inside a function or under `TYPE_CHECKING` still ties the two
modules' designs together, so it counts. `from pkg import name` imports the submodule
`pkg.name` when there is one, else `pkg`. A cycle is a strongly connected component of
two or more modules.

A module's size is its number of lines, everything counted. A data table is a module whose
top level is nothing but a docstring, imports and assignments of literal values (what
`ast.literal_eval` reads: numbers, strings, tuples, lists, dicts, sets): a table written as
Python, with no code of its own to read. A function's size is from its `def` line to its
last line (`end_lineno - lineno + 1`), decorators excluded; methods and nested functions
are functions too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

GIBBOUS = Path(__file__).resolve().parent.parent / "gibbous"
MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 150


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


def is_data_table(tree: ast.Module) -> bool:
    """Whether the module's top level is only a docstring, imports and literal assignments."""
    for statement in tree.body:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            continue
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # the docstring (a bare constant does nothing either)
        if not isinstance(statement, ast.Assign | ast.AnnAssign) or statement.value is None:
            return False
        try:
            ast.literal_eval(statement.value)
        except (ValueError, TypeError, SyntaxError):
            return False
    return True


def oversized_modules(package_dir: Path) -> list[str]:
    """Each module over MAX_MODULE_LINES lines that is not a data table, with its size."""
    found = []
    for name, path in package_modules(package_dir).items():
        text = path.read_text()
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES and not is_data_table(ast.parse(text, str(path))):
            found.append(f"{name}: {lines} lines")
    return found


def long_functions(package_dir: Path) -> list[str]:
    """Each function or method over MAX_FUNCTION_LINES lines, by module and qualified name,
    with its size."""
    found = []

    def visit(module: str, node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (child.end_lineno or child.lineno) - child.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    found.append(f"{module}.{prefix}{child.name}: {size} lines")
                visit(module, child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(module, child, f"{prefix}{child.name}.")
            else:
                visit(module, child, prefix)

    for name, path in package_modules(package_dir).items():
        visit(name, ast.parse(path.read_text(), str(path)), "")
    return found


def lines_of_code(count: int, indent: str = "") -> str:
    """`count` lines that are code, not literals (`x = len("")`)."""
    return f'{indent}x = len("")\n' * count


def function_of(lines: int, name: str = "f", indent: str = "") -> str:
    """A function `lines` long, its `def` line included."""
    return f"{indent}def {name}():\n" + lines_of_code(lines - 1, indent + "    ")


def test_the_module_check_counts_lines_and_spares_data_tables(tmp_path: Path) -> None:
    literal_rows = "".join(
        f"ROW_{i} = ({i}, 'a', [1.5, None], {{'k': -{i}}})\n" for i in range(900)
    )
    package = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/at_limit.py": lines_of_code(800),
            "pkg/over.py": lines_of_code(801),
            "pkg/sub/__init__.py": lines_of_code(850),
            # a table: docstring, imports, annotated and plain literal assignments
            "pkg/table.py": '"""Rows."""\nfrom __future__ import annotations\nimport math\n'
            "HEADER: tuple[str, ...] = ('a', 'b')\n" + literal_rows,
            # the same rows with one line of code among them are no table
            "pkg/almost_table.py": literal_rows + "TOTAL = len(HEADER)\n",
            # nor with a function
            "pkg/table_with_function.py": literal_rows + "def total():\n    return 1\n",
        },
    )
    assert oversized_modules(package) == [
        "pkg.almost_table: 901 lines",
        "pkg.over: 801 lines",
        "pkg.sub: 850 lines",
        "pkg.table_with_function: 902 lines",
    ]


def test_the_function_check_measures_def_to_last_line(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "pkg/__init__.py": function_of(150, "at_limit") + function_of(151, "over"),
            "pkg/a.py": (
                # decorators are not counted: 150 lines from `def` on
                "import functools\n@functools.cache\n@functools.wraps(len)\n"
                + function_of(150, "decorated")
                + "class Outer:\n"
                + "    class Inner:\n"
                + function_of(151, "method", "        ")
                + function_of(150, "fits", "    ")
                + "async def waits():\n"
                + lines_of_code(100, "    ")
                + function_of(52, "nested", "    ")
            ),
        },
    )
    assert long_functions(package) == [
        "pkg.over: 151 lines",
        "pkg.a.Outer.Inner.method: 151 lines",
        "pkg.a.waits: 153 lines",
    ]


def test_gibbous_has_no_module_over_800_lines_but_data_tables() -> None:
    assert oversized_modules(GIBBOUS) == []


def test_gibbous_has_no_function_over_150_lines() -> None:
    assert long_functions(GIBBOUS) == []
