"""The layout: the import graph of the product packages has no circle, `components/` never imports the
model code, the generic ExampleGen knows no dataset, and a module over the size limit says why."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("components", "heads", "pipeline", "schemas", "sources", "trainer")
MAX_LINES = 400
REASON = "Over 400 lines:"  # the docstring sentence that says why a module is longer


def _modules():
    """{dotted module name: path} of every product module."""
    found = {}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    found[dotted.removesuffix(".__init__")] = path
    return found


def import_graph(modules):
    """{module: the product modules it imports}, imports inside functions included (a lazy import
    still ties the two modules together)."""
    graph = {}
    for name, path in modules.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # `from package import module` names a module; `from module import name` the module itself.
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            else:
                continue
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def circles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_circles_are_found_where_there_is_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_product_import_graph_has_no_circle():
    graph = import_graph(_modules())
    assert "components.example_gen" in graph["sources.census"]  # the graph sees lazy imports too
    assert circles(graph) == []


@pytest.mark.parametrize("package,forbidden", [
    ("components", "trainer"),  # components never import the model code
    ("components", "pipeline"),
    ("trainer", "pipeline"),
    ("components", "sources"),  # the generic components know no dataset
    ("heads", "trainer"),  # heads are shared by the components and the trainer
    ("heads", "pipeline"),
])
def test_a_lower_layer_does_not_import_a_higher_one(package, forbidden):
    graph = import_graph(_modules())
    wrong = {m: sorted(t for t in edges if t.split(".")[0] == forbidden)
             for m, edges in graph.items() if m.split(".")[0] == package}
    assert {m: t for m, t in wrong.items() if t} == {}


def test_a_long_module_says_why_in_its_docstring():
    too_long = {}
    for name, path in _modules().items():
        with open(path) as f:
            text = f.read()
        lines = text.count("\n")
        if lines > MAX_LINES and REASON not in (ast.get_docstring(ast.parse(text)) or ""):
            too_long[name] = lines
    assert too_long == {}


def _top_level_names(path):
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.If, ast.Try)):
            names.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return names


def test_every_name_imported_from_the_product_exists():
    """`from pipeline.x import NAME` in the product, the tests and the benchmarks names a module or a
    top-level name of it (a moved function fails here, not in the one run that imports it lazily)."""
    modules = _modules()
    names = {m: _top_level_names(p) for m, p in modules.items()}
    missing = []
    for folder in (*PACKAGES, "tests", "bench"):
        for root, _, files in os.walk(os.path.join(ROOT, folder)):
            for file in files:
                if not file.endswith(".py"):
                    continue
                path = os.path.join(root, file)
                with open(path) as f:
                    tree = ast.parse(f.read(), path)
                for node in ast.walk(tree):
                    if isinstance(node, ast.ImportFrom) and node.module in modules and not node.level:
                        missing += [f"{os.path.relpath(path, ROOT)}:{node.lineno}: {node.module}.{a.name}"
                                    for a in node.names if a.name != "*" and a.name not in names[node.module]
                                    and f"{node.module}.{a.name}" not in modules]
    assert missing == []
