"""The package structure: layers, no import cycles, imports at the top, light command modules.

The import graph is read from the source (``ast``) over the installed layout
(``cococxr/``, ``converters/`` -> ``cococxr.converters``, ``pipelines/`` ->
``cococxr.pipelines``, ``configs/`` -> ``cococxr.configs``). Every import counts, also
the deferred ones inside functions: deferring an import hides a dependency from the
import system, not from the design.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

ROOTS = {"cococxr": REPO / "cococxr", "cococxr.converters": REPO / "converters",
         "cococxr.pipelines": REPO / "pipelines", "cococxr.configs": REPO / "configs"}
TASKS = ("segmentation", "maskrcnn", "classification", "app")
# What a function-level import may defer (and our modules that import one of them at their top).
HEAVY = ("tensorflow", "tf_keras", "torch", "torchvision", "detectron2", "streamlit", "segmentation_models",
         "segmentation_models_pytorch", "timm",
         "albumentations")


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in ROOTS.items():
        for path in folder.rglob("*.py"):
            relative = path.relative_to(folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            if package == "cococxr" and parts and parts[0] in ("converters", "pipelines", "configs", "sample"):
                continue
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[str, ast.stmt, bool]]:
    """``(imported module, node, at module level)`` for every import of ``module``."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body} | {id(n) for n in ast.walk(tree) if isinstance(n, ast.If)
                                         and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.append((target if target in MODULES else base, node, id(node) in top))
    return found


def _internal(name: str) -> str | None:
    """The cococxr module ``name`` is, or lives in (None for third-party modules)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


GRAPH = {m: sorted({t for t in (_internal(name) for name, _, _ in _imports(m)) if t and t != m}) for m in MODULES}


def _reaches(start: str, goal_prefix: str) -> list[str] | None:
    """A chain of imports from ``start`` to a module under ``goal_prefix``, or None."""
    seen, stack = {start}, [[start]]
    while stack:
        chain = stack.pop()
        for nxt in GRAPH[chain[-1]]:
            if nxt == goal_prefix or nxt.startswith(goal_prefix + "."):
                return chain + [nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append(chain + [nxt])
    return None


def test_the_graph_sees_every_package():
    assert {"cococxr.pipelines.segmentation.train", "cococxr.converters.commands", "cococxr.configs",
            "cococxr.models.registry"} <= set(MODULES)
    assert "cococxr.pipelines.engine.evaluation" in GRAPH["cococxr.pipelines.segmentation.evaluate"]


@pytest.mark.parametrize("task", TASKS)
def test_no_task_imports_another_task(task):
    for module in (m for m in MODULES if m.startswith(f"cococxr.pipelines.{task}")):
        for other in TASKS + ("demo",):
            if other == task:
                continue
            direct = [t for t in GRAPH[module] if t.startswith(f"cococxr.pipelines.{other}")]
            assert not direct, f"{module} imports {direct}"


def test_engine_imports_no_task_and_the_core_no_pipeline_or_converter():
    for module in MODULES:
        if module.startswith("cococxr.pipelines.engine"):
            for task in TASKS + ("demo",):
                assert _reaches(module, f"cococxr.pipelines.{task}") is None, module
        if module.startswith(("cococxr.pipelines", "cococxr.converters", "cococxr.cli", "cococxr.configs")):
            continue
        for target in GRAPH[module]:
            assert not target.startswith(("cococxr.pipelines", "cococxr.converters")), (module, target)


def test_no_import_cycles():
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in GRAPH:
        if module not in index:
            visit(module)
    assert not cycles, cycles


def _heavy_at_top(module: str, seen: set | None = None) -> bool:
    """Whether importing ``module`` loads a heavy package, directly or through cococxr's own top imports."""
    seen = set() if seen is None else seen
    seen.add(module)
    for name, _, top in _imports(module):
        if not top:
            continue
        internal = _internal(name)
        if name.split(".")[0] in HEAVY or (internal and internal not in seen and _heavy_at_top(internal, seen)):
            return True
    return False


PACKAGES_WITH_TOP_IMPORTS = ("cococxr.pipelines", "cococxr.models", "cococxr.explain", "cococxr.config",
                             "cococxr.reports")


def test_function_level_imports_only_defer_heavy_modules_and_say_why():
    lines_of = {}
    for module, path in MODULES.items():
        if not module.startswith(PACKAGES_WITH_TOP_IMPORTS):
            continue
        for name, node, top in _imports(module):
            if top or (module == "cococxr.pipelines.app.page" and name == "cococxr.pipelines.app.page"):
                continue  # the Streamlit script imports itself as the installed module (see its docstring)
            lines = lines_of.setdefault(path, path.read_text(encoding="utf-8").splitlines())
            where = f"{module}:{node.lineno}"
            assert "# deferred:" in lines[node.lineno - 1], f"{where}: function-level import without '# deferred:'"
            internal = _internal(name)
            heavy = name.split(".")[0] in HEAVY or (internal is not None and _heavy_at_top(internal))
            light_commands = module.endswith(".commands")  # a command's run keeps cococxr --help light
            assert heavy or light_commands, f"{where}: {name} is light; import it at the top"


def test_every_module_stays_under_500_lines():
    long = {module: n for module, path in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500}
    assert not long, long


def test_the_registry_and_the_parser_load_without_tensorflow():
    code = ("import sys\n"
            "from cococxr.models import registry\n"
            "assert registry.architecture_names() == ('unet', 'fpn', 'linknet', 'pspnet', 'plain_unet')\n"
            "from cococxr.cli import build_parser\n"
            "build_parser()\n"
            "heavy = [m for m in ('tensorflow', 'tf_keras', 'torch', 'segmentation_models', 'streamlit')\n"
            "         if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


TEST_FOLDERS = {"core", "converters", "pipelines", "reliability", "project"}


def _test_files() -> list[Path]:
    return sorted((REPO / "tests").rglob("test_*.py"))


def test_tests_sit_in_folders_mirroring_the_packages_with_unique_names():
    files = _test_files()
    assert len(files) > 60
    folders = {f.relative_to(REPO / "tests").parts[0] for f in files}
    assert folders == TEST_FOLDERS, "every test file sits in one of the folders of docs/internals.md"
    names = [f.name for f in files]
    assert len(names) == len(set(names)), "pytest imports test files by base name: keep them unique"
    tasks = {f.parent.name for f in files if f.parent.parent.name == "pipelines"}
    assert tasks <= {p.name for p in (REPO / "pipelines").iterdir() if p.is_dir()}


def test_tests_share_code_through_helpers_only():
    """No test imports conftest or another test module: shared code is in tests/helpers.py."""
    offenders = []
    for path in _test_files() + sorted((REPO / "tests" / "reliability" / "bad_inputs").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names if n == "conftest" or n.startswith("test_")]
    assert offenders == []
