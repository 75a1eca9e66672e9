"""Reading a saved detector's files (model/ of a run folder) without running code from them.

A run folder may come from anyone, so its files are data only: JSON, NumPy archives read with
allow_pickle=False, and torch weights read with weights_only=True. A file that is missing, cut short, not in
its format, from another model or another run is refused in one UserError naming the file and what is wrong;
the fix is always to train the run again.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from tsad.errors import UserError

RETRAIN = "train the run again"
MODEL_KEY = "model"  # the entry of a state archive that names the model that wrote it


def damaged(path: Path, problem: str) -> UserError:
    return UserError(f"{path} {problem}; {RETRAIN}")


def require_file(path: Path) -> None:
    if not path.is_file():
        raise damaged(path, "is missing")
    if path.stat().st_size == 0:
        raise damaged(path, "is empty")


def read_json_object(path: Path) -> dict:
    """The JSON object in `path`."""
    require_file(path)
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError):
        raise damaged(path, "is truncated or not JSON") from None
    if not isinstance(value, dict):
        raise damaged(path, f"holds a JSON {type(value).__name__}, not an object")
    return value


def required_entries(path: Path, record: dict, types: dict[str, type | tuple]) -> None:
    """Each key of `types` is in `record` with a value of its type(s) (bool never counts as a number)."""
    for key, kind in types.items():
        if key not in record:
            raise damaged(path, f"lacks the entry {key!r}")
        kinds = kind if isinstance(kind, tuple) else (kind,)
        value = record[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise damaged(path, f"has {key}={value!r}, not a value of type {' or '.join(k.__name__ for k in kinds)}")


def rethrown_for(path: Path, error: UserError) -> UserError:
    """A UserError about a value read from `path`, naming the file."""
    return damaged(path, f"holds a bad value: {error}")


class SavedArrays:
    """The arrays of a state archive (np.savez), read whole; a missing entry or one of the wrong shape is a
    one-line error naming the file."""

    def __init__(self, path: Path, arrays: dict[str, np.ndarray]):
        self.path, self.arrays = path, arrays

    def __contains__(self, key: str) -> bool:
        return key in self.arrays

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.arrays:
            raise damaged(self.path, f"lacks the array {key!r}: it is not the state of this model")
        return self.arrays[key]

    def array(self, key: str, shape: tuple[int | None, ...], kind: str = "fiu") -> np.ndarray:
        """The array `key` of `shape` (None: any length) whose dtype kind is one of `kind` (f float, i/u int)."""
        value = self[key]
        fits = value.ndim == len(shape) and all(want is None or want == got for want, got in zip(shape, value.shape))
        if not fits or value.dtype.kind not in kind:
            wanted = "(" + ", ".join("*" if want is None else str(want) for want in shape) + ")"
            raise damaged(self.path, f"has {key!r} of shape {value.shape} ({value.dtype}), not {wanted}: it belongs "
                                     f"to another run")
        return value

    def text(self, key: str) -> str:
        value = self[key]
        if value.shape != () or value.dtype.kind != "U":
            raise damaged(self.path, f"has {key!r} that is not a string")
        return str(value)


def save_arrays(path: Path, model: str, arrays: dict[str, np.ndarray]) -> None:
    np.savez(path, **{MODEL_KEY: np.array(model)}, **arrays)


def load_arrays(path: Path, model: str) -> SavedArrays:
    """The arrays save_arrays wrote for `model`. Archives of older versions without the model entry are read
    too; their arrays are checked like any others."""
    require_file(path)
    not_an_archive = damaged(path, "is truncated or not a tsad state file (a NumPy .npz archive of plain arrays)")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):   # a single .npy array
            raise not_an_archive
        with archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile):
        raise not_an_archive from None
    saved = SavedArrays(path, arrays)
    if MODEL_KEY in saved and saved.text(MODEL_KEY) != model:
        raise damaged(path, f"is the state of a {saved.text(MODEL_KEY)} model, not of {model}: the model's files "
                            f"come from different runs")
    return saved


def load_weights(path: Path, module) -> None:
    """Load torch weights saved by TorchModuleDetector into `module`, which must have their names and shapes."""
    import torch

    require_file(path)
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a truncated, corrupt or foreign file: torch raises many kinds
        raise damaged(path, "is truncated or not a tsad checkpoint") from None
    if not isinstance(weights, dict) or not all(isinstance(value, torch.Tensor) for value in weights.values()):
        raise damaged(path, "is not a tsad checkpoint (a mapping of weight names to tensors)")
    own = module.state_dict()
    for key in [*own, *weights]:
        if key not in weights or key not in own or weights[key].shape != own[key].shape:
            found = f"{tuple(weights[key].shape)}" if key in weights else "no such weight"
            wanted = f"{tuple(own[key].shape)}" if key in own else "no such weight"
            raise damaged(path, f"holds the weights of another model ({key}: {found} where this "
                                f"{type(module).__name__} has {wanted})")
    module.load_state_dict(weights)
