"""Which weights files are read how, without running anything a file holds (the trust model of docs/WEIGHTS.md).

* ``.pkl`` (detectron2's and Detectron's model zoo): read by :func:`load_pickle_weights`, an unpickler that
  accepts only what those files hold: dicts (``OrderedDict`` too), lists, tuples, numbers, strings, bytes and
  numpy arrays, dtypes and scalars. Any other global a pickle names (``os.system``, a class, ...) stops the
  read before it is called.
* ``.pth`` / ``.pt`` / anything else written by ``torch.save``: ``torch.load(weights_only=True)``
  (:func:`ropevit_det.checkpoint.birder_format.load_torch_file`).
* ``.safetensors``: holds no code at all.

A trusted legacy file that holds more (an old snapshot with pickled objects) is converted once, on purpose, by
:func:`convert_trusted_pickle` (``ropevit-det convert --trusted-pickle SRC DST``), into a ``.pth`` that the
rules above read.
"""

from __future__ import annotations

import os
import pickle
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserInputError

__all__ = [
    "CONVERT_TRUSTED_COMMAND",
    "WeightsFileError",
    "convert_trusted_pickle",
    "detectron2_pkl_layout",
    "load_pickle_weights",
    "missing_weights_error",
]

CONVERT_TRUSTED_COMMAND = "ropevit-det convert --trusted-pickle SRC DST.pth"

# What model-zoo .pkl files reference (Python 2 pickles, and numpy 1 / 2 pickles of arrays and scalars).
# Each rebuilds data: an array from its bytes, a dtype from its name, a mapping; none can run other code.
_ALLOWED_GLOBALS = frozenset(
    {
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),  # protocol-2 pickles store bytes as latin-1 text plus this call
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.numeric", "_frombuffer"),
    }
)


class WeightsFileError(UserInputError):
    """A weights file that is missing, unreadable, or refused because loading it would run code.

    The message is one line naming the file and the fix.
    """


class _WeightsUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name}")


def load_pickle_weights(path: str | os.PathLike) -> Any:
    """Read a ``.pkl`` weights file, accepting only plain data and numpy arrays (see the module docstring).

    Raises:
        WeightsFileError: the file is missing, unreadable, or names a global outside plain data (refused before
            anything runs); the message names the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise missing_weights_error(path)
    try:
        with open(path, "rb") as f:
            # latin1: Python 2 pickles (Detectron's model zoo) store numpy bytes as str, as detectron2 reads them.
            return _WeightsUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise WeightsFileError(
            f"{path}: refused to load: the pickle calls {e}, which is not plain data (dicts, lists, numbers, "
            "strings, numpy arrays), and nothing from the file was run. If you trust the file (an old checkpoint "
            f"from your own runs), convert it once: {CONVERT_TRUSTED_COMMAND}"
        ) from e
    except Exception as e:  # noqa: BLE001 (chained below): truncated or foreign bytes fail in many ways
        raise WeightsFileError(
            f"{path}: not a readable .pkl weights file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            "); it is truncated, corrupt, or not a pickle. Download it again."
        ) from e


def missing_weights_error(path: str | os.PathLike) -> WeightsFileError:
    return WeightsFileError(
        f"weights file {path} does not exist (or is not a file); give the path of a checkpoint (.pth, .pkl, "
        "birder .pt / .safetensors) or a published name such as birder://rope_vit_reg4_b14_capi-inat21"
    )


def detectron2_pkl_layout(data: Mapping[str, Any]) -> dict[str, Any]:
    """What detectron2's ``DetectionCheckpointer._load_file`` makes of a loaded ``.pkl`` (same rules, same keys):
    a detectron2 model-zoo file as is, a Caffe2 / Detectron one wrapped for detectron2's name matching."""
    if not isinstance(data, Mapping):
        raise WeightsFileError(f"a .pkl weights file holds a dict, not a {type(data).__name__}")
    if "model" in data and "__author__" in data:
        return dict(data)
    blobs = data.get("blobs", data)  # detection models have "blobs", ImageNet ones do not
    model = {k: v for k, v in blobs.items() if not k.endswith("_momentum")}
    return {"model": model, "__author__": "Caffe2", "matching_heuristics": True}


def convert_trusted_pickle(src: str | os.PathLike, dst: str | os.PathLike) -> tuple[dict[str, Any], list[str]]:
    """Convert a *trusted* legacy weights file into a ``.pth`` that loads with ``weights_only=True``.

    ``src`` is unpickled without restriction: this runs whatever the file holds, which is why only a file you
    trust may be given. Numpy arrays become tensors and numpy scalars numbers. A ``.pkl`` is laid out as
    detectron2 reads it (:func:`detectron2_pkl_layout`). The model's tensors must be plain data; any other
    top-level entry that is not (a pickled config object, say) is left out and named in the return value.

    Returns:
        ``(the checkpoint written to dst, the top-level keys left out)``.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise missing_weights_error(src)
    if src.suffix == ".pkl":
        with open(src, "rb") as f:
            loaded = detectron2_pkl_layout(pickle.load(f, encoding="latin1"))  # noqa: S301 (trusted by the caller)
    else:
        loaded = torch.load(src, map_location="cpu", weights_only=False)  # noqa: S614 (trusted by the caller)
        if not (isinstance(loaded, Mapping) and "model" in loaded):
            loaded = {"model": loaded}
    checkpoint: dict[str, Any] = {"model": _plain(loaded["model"], "model")}
    left_out = []
    for key, value in loaded.items():
        if key == "model":
            continue
        try:
            checkpoint[key] = _plain(value, str(key))
        except WeightsFileError:
            left_out.append(str(key))
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f"{dst.name}.{uuid.uuid4().hex}.partial")
    try:
        torch.save(checkpoint, tmp)
        torch.load(tmp, map_location="cpu", weights_only=True)  # what every later read does: it must pass
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return checkpoint, left_out


def _plain(value: Any, where: str) -> Any:
    """``value`` as tensors, numbers, strings and containers only (what ``weights_only=True`` reads back)."""
    if isinstance(value, torch.Tensor | str | bytes | bool | int | float | type(None)):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise WeightsFileError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which a weights file does not need; "
        "convert only the model's state dict"
    )
