"""The shape of the package, checked: size limits, one-way imports, private APIs and task checks in one place."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lstm_models"
# Floors, lowest first: a module imports only from its own floor or below (lazy imports too).
FLOORS = [
    ("lstm_models.errors", "lstm_models.interrupt", "lstm_models.processes"),
    ("lstm_models.spec.rules", "lstm_models.spec"),
    ("lstm_models.data",),
    ("lstm_models.spec.sweep",),
    ("lstm_models.models",),
    ("lstm_models.tasks",),
    ("lstm_models.tracking",),
    ("lstm_models.export",),
    ("lstm_models.inspect",),
    ("lstm_models.search",),
    ("lstm_models.cli", "lstm_models.__main__", "lstm_models"),
]
PRIVATE = ("_retry_queue", "_save_trial", "_seed_state", "keras_tuner.src", "_try_build", "_get_checkpoint_fname", "_gradient_registry",
           "_build_hypermodel", "_get_oracle_fname", "_build_and_fit_model", "_get_trial_dir")


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, ast.parse(path.read_text(encoding="utf-8"))


def _floor(module: str) -> int:
    best = None
    for n, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (n, len(prefix))
    assert best is not None, f"{module} is on no floor"
    return best[0]


def _imports(tree, top_level_only=False):
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lstm_models"):
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("lstm_models"))


def test_no_file_function_or_class_over_its_limit():
    over = []
    for name, path, tree in _modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > 300:
            over.append(f"{name}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                body = node.body
                doc = (body[0].end_lineno - body[0].lineno + 1 if body and isinstance(body[0], ast.Expr)
                       and isinstance(getattr(body[0], "value", None), ast.Constant) else 0)
                size = node.end_lineno - node.lineno + 1 - doc
                limit = 150 if isinstance(node, ast.ClassDef) else 60
                if size > limit:
                    over.append(f"{name}.{node.name}: {size} lines")
    assert over == []


def test_nothing_imports_a_module_above_it():
    upward = [f"{name} -> {target}" for name, _, tree in _modules() for target in _imports(tree)
              if _floor(target) > _floor(name)]
    assert upward == []


def test_no_import_cycle():
    graph = {name: set(_imports(tree, top_level_only=True)) - {name} for name, _, tree in _modules()}
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                pytest.fail(f"import cycle: {' -> '.join(path + [nxt])}")
            if nxt in graph and not state.get(nxt):
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in graph:
        if not state.get(name):
            visit(name, [name])


def test_private_keras_tuner_and_tensorflow_members_in_the_adapter_only():
    users = {name for name, path, _ in _modules()
             if any(re.search(rf"\b{p}\b", path.read_text(encoding="utf-8")) for p in PRIVATE)}
    assert users == {"lstm_models.search.tuner", "lstm_models.search.oracle", "lstm_models.search.service"}


def test_text_or_series_is_decided_in_the_task_registry_only():
    checks = re.compile(r"isinstance\([^)]*(Splits|Inputs)\b|[!=]= *\"(classification|forecasting)\"|"
                        r"\"(classification|forecasting)\" *[!=]=")
    users = {name for name, path, _ in _modules() if checks.search(path.read_text(encoding="utf-8"))}
    assert {u.rsplit(".", 1)[0] if u != "lstm_models.tasks" else u for u in users} == {"lstm_models.tasks"}


def test_only_the_tracking_mlflow_modules_import_mlflow():
    users = {name for name, _, tree in _modules() for node in ast.walk(tree)
             if (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mlflow")
             or (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "mlflow" for a in node.names))}
    assert users == {"lstm_models.tracking.mlflow_store", "lstm_models.tracking.mlflow_registry",
                     "lstm_models.tracking.mlflow_pyfunc", "lstm_models.tracking.mlflow_client"}


def test_the_cli_and_the_sweep_modules_load_without_tensorflow():
    """TensorFlow loads once a spec and its flags passed their checks (`run_sweep`, a worker's start):
    bad input fails in a fraction of a second, not after TensorFlow's import (about 3-10 s on 2 cores,
    which a module-level import of the search space once added to every command)."""
    modules = ["lstm_models.cli.commands", "lstm_models.cli.roles", "lstm_models.search.run",
               "lstm_models.search.worker", "lstm_models.search.chief"]
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint(sorted({{'tensorflow', 'keras', 'keras_tuner'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"

