"""The import graph of dsig, pki and tokens, read statically (function-level imports
included, ``if TYPE_CHECKING:`` blocks excluded: they never run): no cycle, and the layers
point one way (tokens and pki know nothing of dsig; neither needs pydicom)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dsig", "pki", "tokens")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {
    _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def imported_names(module: str) -> set[str]:
    """Every module name ``module`` imports at run time, as written (absolute)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:  # `from package import module` needs that module only
                full = f"{base}.{alias.name}"
                names.add(full if full in MODULES else base)
    return names


def _edges(module: str) -> set[str]:
    """The project modules ``module`` depends on (a name that is a module, else its module)."""
    found = set()
    for name in imported_names(module):
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def find_cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph = {module: _edges(module) for module in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def _imports_of(package: str) -> dict[str, set[str]]:
    return {m: imported_names(m) for m in MODULES if m == package or m.startswith(package + ".")}


def _offending(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for module, names in _imports_of(package).items():
        bad = sorted(n for n in names if n.split(".")[0] in forbidden)
        if bad:
            found[module] = bad
    return found


def test_the_graph_is_read() -> None:
    assert "dsig.operations.verifier" in MODULES and "dsig.encoding.reader" in _edges(
        "dsig.operations.verifier"
    )
    # a function-level import counts
    assert any(MODULES[m].read_text().count("\n    import ") for m in MODULES)


def test_no_import_cycle() -> None:
    assert find_cycles() == []


def test_tokens_depends_on_neither_dsig_pki_nor_pydicom() -> None:
    assert _offending("tokens", ("dsig", "pki", "pydicom")) == {}


def test_pki_depends_on_neither_dsig_nor_pydicom() -> None:
    assert _offending("pki", ("dsig", "pydicom")) == {}


def test_the_rfc3161_part_of_timestamps_is_dicom_free() -> None:
    names = imported_names("dsig.timestamp.rfc3161")
    assert not {n for n in names if n.split(".")[0] == "pydicom"}
    assert {n for n in names if n.startswith("dsig.")} <= {"dsig.errors", "dsig.encoding.der"}
    assert "dsig.timestamp.rfc3161" in _edges("dsig.timestamp.dicom")


#: The layers of dsig, lowest first: a subpackage (or top-level module) imports only from its
#: own row and the rows before it (README "Layout").
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "safe_text"),
    ("encoding",),
    ("signature", "results"),
    ("files", "timestamp"),
    ("operations",),
    ("reports", "manifest", "evidence", "explain"),
    ("archive", "net"),
    ("orthanc",),
    ("cli", "__main__", "__init__"),
)
#: Upward calls the verifier makes on purpose, lazily, where a later feature adds evidence to a
#: verdict: an evidence record moves the validation moment; a study manifest gets an info note.
UPWARD_HOOKS = {
    ("dsig.operations.verifier", "dsig.evidence.hook"),
    ("dsig.operations.verifier", "dsig.manifest.model"),
}


def _layer_of(module: str) -> int:
    parts = module.split(".")
    part = parts[1] if len(parts) > 1 else "__init__"
    for rank, row in enumerate(LAYERS):
        if part in row:
            return rank
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


def test_dsig_layers_point_one_way() -> None:
    upward = set()
    for module in MODULES:
        if module.split(".")[0] != "dsig":
            continue
        for target in _edges(module):
            if target == "dsig" or target.split(".")[0] != "dsig":
                continue  # the public package itself re-exports lazily: a caller's choice
            if _layer_of(target) > _layer_of(module):
                upward.add((module, target))
    assert upward == UPWARD_HOOKS
