"""SavedModel export that serves raw inputs, checked by reloading it before it is put in place.

The export folder is a SavedModel (``serve`` and ``serving_default`` signatures) with two
extra files beside ``saved_model.pb``: ``model.keras`` (the trained Keras model, for the gate
inspector and further training) and ``meta.json`` (task, class names or lookback and horizon).
It is written to a temporary folder next to the target, reloaded and compared with the Keras
model, and only then renamed into place, so a crash never leaves a half-written export (a sweep
renames it once it has finished: `stage_export`, then `publish`; a staging folder left by a
process killed in between is removed by the next export of that name on the machine). The old
export is moved aside for the instant of the swap and moved back if the swap fails; if the process
dies in that instant, the next export puts it back first. ``model.keras`` is read back with
`load_keras`, which never runs code from the file (``safe_mode=True``).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from lstm_models.errors import ConfigError
from lstm_models.processes import process_gone, process_identity

META_FILE = "meta.json"
KERAS_FILE = "model.keras"
OWNER_FILE = "owner"  # in a staging folder's hidden parent: the `process_identity` that staged it


def export_model(model, target: Path, meta: Mapping[str, Any], sample) -> Path:
    """Export ``model`` to ``target`` as a SavedModel, atomically.

    Args:
        model: a trained Keras model.
        target: the export folder (replaced only once the new export is complete).
        meta: what a caller needs to use it: task, class names or lookback and horizon.
        sample: a small batch of raw inputs; the reloaded SavedModel must answer it like the
            Keras model does.

    Returns:
        ``target``.
    """
    staging = stage_export(model, target, meta, sample)
    try:
        return publish(staging, target)  # which removes the staging folder once done
    except BaseException:
        discard_staged(staging)
        raise


def stage_export(model, target: Path, meta: Mapping[str, Any], sample) -> Path:
    """Write and check the export of ``model`` as ``target``'s namesake inside a hidden folder beside
    it (`export_model`'s arguments), for `publish` to put in place: a sweep publishes its export once
    it has finished, and logs the staged folder to MLflow meanwhile under the export's own name."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    _discard_orphans(target)
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}" / target.name
    staging.parent.mkdir()
    try:
        (staging.parent / OWNER_FILE).write_text(process_identity(os.getpid()), encoding="ascii")
        model.export(str(staging), format="tf_saved_model", verbose=False)
        model.save(staging / KERAS_FILE)
        (staging / META_FILE).write_text(json.dumps(dict(meta), indent=2) + "\n", encoding="utf-8")
        check_export(staging, model, sample, name=target)
    except BaseException:
        discard_staged(staging)
        raise
    return staging


def publish(staging: Path, target: Path) -> Path:
    """Rename a staged export (`stage_export`) to ``target``, the export there moved aside for the swap."""
    target = Path(target)
    _recover(target)
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        if old is not None and not target.exists():
            old.rename(target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    discard_staged(staging)
    return target


def discard_staged(staging: Path) -> None:
    """Remove the hidden folder of a staged export (`stage_export`), published or not."""
    if ".tmp-" in staging.parent.name and staging.parent.exists():
        shutil.rmtree(staging.parent, ignore_errors=True)


def _discard_orphans(target: Path) -> None:
    """Remove the staged exports of ``target`` whose process ended before publishing or discarding
    them (killed): those of a live process, or of another machine, stay."""
    for folder in target.parent.glob(f".{target.name}.tmp-*"):
        try:
            owner = (folder / OWNER_FILE).read_text(encoding="ascii")
        except OSError:  # being created, or removed, by its process right now
            continue
        if process_gone(owner):
            shutil.rmtree(folder, ignore_errors=True)


def _recover(target: Path) -> None:
    """Put back an export a dead process had moved aside for its swap."""
    if target.exists():
        return
    aside = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if aside:
        aside[-1].rename(target)


def read_export(export_dir: str | Path) -> dict:
    """An export folder's ``meta.json``, once the folder is checked (no TensorFlow needed)."""
    path = Path(export_dir)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such export folder (a sweep writes one to exports/<sweep name>)")
    for name in (KERAS_FILE, META_FILE):
        if not (path / name).is_file():
            raise ConfigError(f"{path}: no {name} in this folder; is it a folder written by lstm-models sweep?")
    return read_meta(path)


def load_export(export_dir: str | Path):
    """The Keras model (`load_keras`) and ``meta.json`` of an export folder, or `ConfigError`."""
    meta = read_export(export_dir)
    return load_keras(export_dir), meta


def load_keras(path: str | Path):
    """The ``model.keras`` of an export (or any .keras file), loaded with ``safe_mode=True``."""
    import keras

    import lstm_models.models.layers  # noqa: F401  (registers the package's layers, which exports hold)

    path = Path(path)
    return keras.saving.load_model(path / KERAS_FILE if path.is_dir() else path, safe_mode=True)


def check_export(path: Path, model, sample, atol: float = 1e-5, name: Path | None = None) -> np.ndarray:
    """Reload a SavedModel and check that ``serve`` returns what the Keras model returns.

    ``name``: the folder the message names (the export's target, not its staging folder).
    """
    served = serve(path, sample)
    expected = np.asarray(model(to_tensor(sample), training=False))
    if served.shape != expected.shape or not np.allclose(served, expected, atol=atol, rtol=1e-4):
        worst = float(np.max(np.abs(served - expected))) if served.shape == expected.shape else float("nan")
        raise RuntimeError(f"{name or path}: the reloaded SavedModel differs from the Keras model (max diff {worst}); "
                           "nothing was exported")
    return served


def to_tensor(batch):
    import tensorflow as tf

    array = np.asarray(batch)
    if array.dtype.kind in "OUS":
        return tf.constant([str(s) for s in array.tolist()], dtype=tf.string)
    return tf.constant(array.astype("float32"))


def serve(path: str | Path, batch) -> np.ndarray:
    """Call an exported model on raw inputs: strings (text) or windows of values (series)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return np.asarray(loaded.serve(to_tensor(batch)))


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``meta.json`` written beside an export."""
    return json.loads((Path(path) / META_FILE).read_text(encoding="utf-8"))
