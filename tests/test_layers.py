"""The package's layers, read from its source: every import statement of every module (at the top
or inside a function: both run), resolved to the package's own modules. No import circle; the
engines import neither the model nor the objective; the solvers see only the engines; nothing
below the command line imports it."""

import ast
from pathlib import Path

import softmaxreg

ROOT = Path(softmaxreg.__file__).parent


def module_name(path: Path) -> str:
    parts = ("softmaxreg", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports. `from .x import y` counts as importing x.y when
    that is a module (a submodule import), else x."""
    paths = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {name: set() for name in paths}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                found = {f"{target}.{a.name}" if f"{target}.{a.name}" in paths else target for a in node.names}
            elif isinstance(node, ast.Import):
                found = {a.name for a in node.names}
            else:
                continue
            graph[name] |= {t for t in found if t in paths and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
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


def imports_of(graph, prefix: str) -> set[str]:
    """What the modules under `prefix` import from outside it."""
    return {t for m, ts in graph.items() if m == prefix or m.startswith(prefix + ".")
            for t in ts if not (t == prefix or t.startswith(prefix + "."))}


def test_the_cycle_finder_finds_a_circle_and_only_it():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back_through_others():
    graph = import_graph()
    assert len(graph) > 50 and "softmaxreg.engines.sparse" in graph["softmaxreg.engines"]
    assert cycles(graph) == []


def test_each_layer_imports_only_the_layers_below_it():
    graph = import_graph()
    assert imports_of(graph, "softmaxreg.engines") <= {"softmaxreg.errors", "softmaxreg.cachedir"}
    assert all(t == "softmaxreg.errors" or t.startswith("softmaxreg.engines")
               for t in imports_of(graph, "softmaxreg.solvers"))
    assert {m for m, ts in graph.items() for t in ts
            if t.startswith("softmaxreg.cli") and not m.startswith("softmaxreg.cli")} == {"softmaxreg.__main__"}
