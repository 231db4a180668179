"""The package's shape: no import circles between modules, and a light `import hf_distill`."""

import ast
import os
import subprocess
import sys

PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hf_distill")


def module_name(path: str) -> str:
    relative = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[: -len(".py")].replace(os.sep, ".")
    return relative[: -len(".__init__")] if relative.endswith(".__init__") else relative


def all_modules() -> dict[str, str]:
    modules = {}
    for root, _, names in os.walk(PACKAGE_DIR):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                modules[module_name(path)] = path
    return modules


def _is_type_checking_block(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def module_level_imports(path: str, name: str, modules: dict[str, str]) -> set[str]:
    """The hf_distill modules a module imports when it is imported (not inside functions or TYPE_CHECKING)."""
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    tree = ast.parse(open(path, encoding="utf-8").read())
    targets = set()
    statements = list(tree.body)
    while statements:
        node = statements.pop(0)
        if _is_type_checking_block(node):
            continue
        if isinstance(node, (ast.If, ast.Try)):
            statements.extend(getattr(node, "body", []) + getattr(node, "orelse", []))
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                targets.add(candidate if candidate in modules else base)
        elif isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
    return {target for target in targets if target in modules and target != name}


def test_no_import_circles():
    modules = all_modules()
    graph = {name: module_level_imports(path, name, modules) for name, path in modules.items()}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert cycles == [], "import circles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def test_the_cycle_finder_sees_a_circle(tmp_path):
    """The check above can fail: a relative import back into a package is an edge it follows."""
    modules = {"hf_distill.a": str(tmp_path / "a.py"), "hf_distill.b": str(tmp_path / "b.py")}
    (tmp_path / "a.py").write_text("from .b import thing\n")
    (tmp_path / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x\n"
                                   "def f():\n    from .a import y\n")
    assert module_level_imports(modules["hf_distill.a"], "hf_distill.a", modules) == {"hf_distill.b"}
    assert module_level_imports(modules["hf_distill.b"], "hf_distill.b", modules) == set()


def test_import_hf_distill_loads_no_training_stack():
    code = ("import sys, hf_distill, hf_distill.cli, hf_distill.recipes, hf_distill.hub, hf_distill.tasks, "
            "hf_distill.general, hf_distill.online, hf_distill.terms, hf_distill.runs\n"
            "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
