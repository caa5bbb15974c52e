"""The import graph (issue 15, docs/architecture.md): no circles among module-level imports,
and the layers depend one way: commands -> tools -> backends/output -> lang -> kernel.

Read with ast from the sources (nothing is imported). Imports inside functions are the
deliberate lazy ones (start-up time) and are checked for the layer rule only."""

import ast
import os

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src", "undertow")

#: a module of layer L may import modules of the layers listed for L (and its own)
MAY_IMPORT = {
    "kernel": set(),
    "lang": {"kernel"},
    "backends": {"lang", "kernel", "output"},
    "output": {"lang", "kernel"},
}


def _modules():
    for root, _dirs, files in os.walk(SRC):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, os.path.dirname(SRC))[:-3].replace(os.sep, ".")
                if rel.endswith(".__init__"):
                    rel = rel[: -len(".__init__")]
                yield rel, path


def _imports(name, path):
    """[(imported module, at module level?)]"""
    tree = ast.parse(open(path, encoding="utf-8").read())
    pkg = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out = []

    def visit(node, top):
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                continue  # never executed
            if isinstance(child, ast.Import):
                out.extend((a.name, top) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = pkg.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    mod = ".".join(base + ([child.module] if child.module else []))
                else:
                    mod = child.module or ""
                out.append((mod, top))
                for a in child.names:  # "from . import x" may name a module
                    out.append((f"{mod}.{a.name}", top))
            visit(child, inner)

    visit(tree, True)
    return out


def _graph(top_only):
    mods = dict(_modules())
    g = {}
    for name, path in mods.items():
        deps = set()
        for mod, top in _imports(name, path):
            if top_only and not top:
                continue
            if mod in mods and mod != name:
                deps.add(mod)
        g[name] = deps
    return g


def _layer(mod):
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else None


def test_no_import_circles_at_module_level():
    g = _graph(top_only=True)
    # a package's __init__ importing its own submodules is not a circle of interest
    state, stack, circles = {}, [], []

    def dfs(n):
        state[n] = 1
        stack.append(n)
        for d in sorted(g[n]):
            if n.startswith(d + ".") or d.startswith(n + "."):
                continue
            if state.get(d) == 1:
                circles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                dfs(d)
        stack.pop()
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            dfs(n)
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


def test_layers_depend_one_way():
    g = _graph(top_only=False)
    wrong = []
    for mod, deps in sorted(g.items()):
        lay = _layer(mod)
        if lay not in MAY_IMPORT:
            continue
        for d in sorted(deps):
            dl = _layer(d)
            if dl is None or dl == lay or dl not in MAY_IMPORT and dl not in ("tools", "commands"):
                continue
            if dl not in MAY_IMPORT[lay]:
                wrong.append(f"{mod} imports {d}")
    assert not wrong, "\n".join(wrong)


def test_the_two_backends_do_not_import_each_other():
    g = _graph(top_only=False)
    wrong = [f"{m} imports {d}" for m, deps in sorted(g.items()) for d in sorted(deps)
             if (m.startswith("undertow.backends.bpf") and d.startswith("undertow.backends.ftrace"))
             or (m.startswith("undertow.backends.ftrace") and d.startswith("undertow.backends.bpf"))]
    assert not wrong, "\n".join(wrong)
