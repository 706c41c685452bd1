"""Read birder checkpoints (``.pt`` and ``.safetensors``) without ever executing code from the file.

birder stores a classification checkpoint in one of two ways (``birder.common.fs_ops``):

* ``.pt``: ``torch.save({"state": state_dict, "birder_version", "task", "signature", "class_to_idx",
  "rgb_stats", optional "config"})``. It is read with ``torch.load(weights_only=True)``: only tensors and
  plain containers are accepted, so a file carrying pickled code is refused before anything runs.
* ``.safetensors``: the tensors, plus ``signature``, ``class_to_idx``, ``rgb_stats`` (and ``config``)
  as JSON strings in the header metadata. safetensors holds no code at all.

Every failure (truncated download, wrong file, refused pickle) becomes a ``ValueError`` that names the file,
what is wrong, and what to do, chained to the original exception for debugging.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .safe_pickle import CONVERT_TRUSTED_COMMAND, WeightsFileError, load_pickle_weights

__all__ = [
    "BirderCheckpoint",
    "read_birder_checkpoint",
    "load_torch_file",
    "birder_checkpoint_from_dict",
    "is_birder_dict",
    "is_safetensors_file",
    "sha256_of",
]

# Keys of the dict ``fs_ops.checkpoint_model`` saves; "config" and "backbone_config" are optional.
_REQUIRED_PT_KEYS = ("state", "signature", "rgb_stats")
_REQUIRED_ST_METADATA = ("signature", "rgb_stats")
_ZIP_MAGIC = b"PK\x03\x04"
_REDOWNLOAD_HINT = "Download the checkpoint again (a partial download is the usual cause) and check its sha256."


@dataclass(frozen=True)
class BirderCheckpoint:
    """What this project needs from a birder checkpoint.

    Args:
        state: the network's state dict (birder parameter names, classifier included).
        rgb_stats: ``{"mean": (r, g, b), "std": (r, g, b)}`` on the [0, 1] scale, RGB order.
        class_to_idx: class name -> index of the classifier (empty when the file has none).
        signature: birder's input/output signature (``{"inputs": [{"data_shape": [0, C, H, W]}], ...}``).
        resolution: ``(height, width)`` the weights were trained at.
        source_name: the file name the checkpoint was read from.
        sha256: hex digest of that file.
        birder_version: the birder version that wrote the file, when recorded.
        config: the network config stored with the weights, when recorded.
    """

    state: dict[str, torch.Tensor]
    rgb_stats: dict[str, tuple[float, float, float]]
    class_to_idx: dict[str, int]
    signature: dict[str, Any]
    resolution: tuple[int, int]
    source_name: str
    sha256: str
    birder_version: str | None = None
    config: dict[str, Any] | None = field(default=None)

    @property
    def pixel_mean(self) -> list[float]:
        """detectron2 ``MODEL.PIXEL_MEAN`` implied by ``rgb_stats`` (0-255 scale, RGB order)."""
        return [255.0 * float(m) for m in self.rgb_stats["mean"]]

    @property
    def pixel_std(self) -> list[float]:
        """detectron2 ``MODEL.PIXEL_STD`` implied by ``rgb_stats`` (0-255 scale, RGB order)."""
        return [255.0 * float(s) for s in self.rgb_stats["std"]]


def sha256_of(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (checkpoints are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_birder_dict(obj: Any) -> bool:
    """Whether a ``torch.load`` result looks like a birder ``.pt`` checkpoint (not a detectron2 one)."""
    return isinstance(obj, dict) and "state" in obj and "signature" in obj and "model" not in obj


def read_birder_checkpoint(path: str | os.PathLike) -> BirderCheckpoint:
    """Read a birder ``.pt`` or ``.safetensors`` checkpoint.

    The format is decided by the file's first bytes, not its name, so a cached download or a renamed
    file still reads correctly.

    Args:
        path: local path of the checkpoint.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is truncated, corrupt, not a birder checkpoint, or holds pickled objects
            that ``weights_only=True`` refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"birder checkpoint {path} does not exist (or is not a file)")
    if is_safetensors_file(path):
        return _read_safetensors(path)
    obj = load_torch_file(path)
    return birder_checkpoint_from_dict(obj, path)


def read_checkpoint_file(path: str | os.PathLike) -> BirderCheckpoint | Any:
    """The one reader of checkpoint files: a birder checkpoint (``.pt`` or ``.safetensors``, decided by the
    file's first bytes) comes back as a validated :class:`BirderCheckpoint`; a ``.pkl`` is read by the
    restricted unpickler (:func:`~ropevit_det.checkpoint.safe_pickle.load_pickle_weights`); any other file that
    ``torch.load(weights_only=True)`` reads (a detectron2 checkpoint dict, say) comes back as loaded.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is truncated, corrupt, or holds pickled objects that would run code
            (:class:`~ropevit_det.checkpoint.safe_pickle.WeightsFileError`).
    """
    if str(path).endswith(".pkl"):
        return load_pickle_weights(path)
    if is_safetensors_file(path):
        return _read_safetensors(Path(path))
    loaded = load_torch_file(path)
    return birder_checkpoint_from_dict(loaded, path) if is_birder_dict(loaded) else loaded


def load_torch_file(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with every failure turned into a clear ``ValueError``.

    Args:
        path: local path of a file written by ``torch.save``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (or is not a file)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" not in str(e):
            raise WeightsFileError(f"{path}: unreadable pickle data ({e}). {_REDOWNLOAD_HINT}") from e
        if _starts_with(path, _ZIP_MAGIC):
            # A well-formed torch zip whose pickle references arbitrary globals: refused, never executed.
            raise WeightsFileError(
                f"{path}: refused to load. The file holds pickled Python objects other than tensors and plain "
                f"containers ({_unsupported_detail(e)}); torch.load(weights_only=True) rejected them and nothing "
                "from the file was executed. Birder and detectron2 checkpoints never hold such objects: get the "
                "file from its original source, or, if you trust it (an old checkpoint of your own), convert it "
                f"once: {CONVERT_TRUSTED_COMMAND}"
            ) from e
        raise WeightsFileError(
            f"{path}: not a PyTorch checkpoint (no zip archive, and its content is not plain tensors: "
            f"{_unsupported_detail(e)}). Nothing from the file was executed. Pass a birder .pt or .safetensors "
            f"file or a detectron2 checkpoint. {_REDOWNLOAD_HINT} A legacy file you trust converts once with: "
            f"{CONVERT_TRUSTED_COMMAND}"
        ) from e
    except Exception as e:  # noqa: BLE001 (re-raised below, chained)
        # On truncated or foreign bytes torch.load fails with whatever its readers meet: RuntimeError ("failed
        # finding central directory"), OSError, EOFError (empty file), KeyError or IndexError (text), ...
        # Each means "not a readable checkpoint"; the original exception stays chained for debugging.
        size = path.stat().st_size
        raise WeightsFileError(
            f"{path}: not a readable checkpoint ({size} bytes; torch.load failed with "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no message'}). The file is truncated, "
            f"corrupt, or not a checkpoint. {_REDOWNLOAD_HINT}"
        ) from e


def birder_checkpoint_from_dict(obj: Any, path: str | os.PathLike, sha256: str | None = None) -> BirderCheckpoint:
    """Validate a loaded birder ``.pt`` dict and wrap it.

    Args:
        obj: the result of ``torch.load`` on a birder ``.pt`` file.
        path: the file it came from (for messages and provenance).
        sha256: the file's digest when already known; computed otherwise.
    """
    path = Path(path)
    if not isinstance(obj, dict):
        raise ValueError(
            f"{path}: not a birder checkpoint: it holds a {type(obj).__name__}, not a dict with "
            f"{list(_REQUIRED_PT_KEYS)}. Pass a checkpoint saved by birder (.pt or .safetensors)."
        )
    missing = [k for k in _REQUIRED_PT_KEYS if k not in obj]
    if missing:
        hint = (
            " It looks like a detectron2 checkpoint: load it directly (MODEL.WEIGHTS), it needs no conversion."
            if "model" in obj
            else " Pass a checkpoint saved by birder (.pt or .safetensors)."
        )
        raise ValueError(
            f"{path}: not a birder checkpoint: missing {missing} (top-level keys: {sorted(map(str, obj))}).{hint}"
        )
    state = obj["state"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: 'state' is not a dict of tensors; the birder checkpoint is malformed.")
    return _make_checkpoint(
        path,
        state=dict(state),
        signature=obj["signature"],
        rgb_stats=obj["rgb_stats"],
        class_to_idx=obj.get("class_to_idx") or {},
        birder_version=obj.get("birder_version"),
        config=obj.get("config"),
        sha256=sha256,
    )


def _read_safetensors(path: Path) -> BirderCheckpoint:
    # Imported here so that reading .pt files works without safetensors installed.
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            state = {key: f.get_tensor(key) for key in f.keys()}
    except SafetensorError as e:
        raise ValueError(
            f"{path}: not a readable safetensors checkpoint ({e}). The file is truncated or corrupt. {_REDOWNLOAD_HINT}"
        ) from e
    missing = [k for k in _REQUIRED_ST_METADATA if k not in metadata]
    if missing:
        raise ValueError(
            f"{path}: a safetensors file, but not a birder checkpoint: its metadata lacks {missing} "
            f"(has {sorted(metadata)}). birder's fs_ops.save_st writes them; re-export the model with birder."
        )
    decoded: dict[str, Any] = {}
    for key in ("signature", "rgb_stats", "class_to_idx", "config"):
        text = metadata.get(key)
        if not text:
            continue
        try:
            decoded[key] = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: metadata field '{key}' is not valid JSON ({e}); the file is malformed.") from e
    return _make_checkpoint(
        path,
        state=state,
        signature=decoded["signature"],
        rgb_stats=decoded["rgb_stats"],
        class_to_idx=decoded.get("class_to_idx") or {},
        birder_version=metadata.get("birder_version"),
        config=decoded.get("config"),
        sha256=None,
    )


def _make_checkpoint(
    path: Path,
    *,
    state: dict[str, torch.Tensor],
    signature: Any,
    rgb_stats: Any,
    class_to_idx: dict[str, int],
    birder_version: str | None,
    config: dict[str, Any] | None,
    sha256: str | None,
) -> BirderCheckpoint:
    return BirderCheckpoint(
        state=state,
        rgb_stats=_validate_rgb_stats(rgb_stats, path),
        class_to_idx=dict(class_to_idx),
        signature=signature,
        resolution=_infer_resolution(signature, state, path),
        source_name=path.name,
        sha256=sha256 or sha256_of(path),
        birder_version=birder_version,
        config=config,
    )


def _validate_rgb_stats(rgb_stats: Any, path: Path) -> dict[str, tuple[float, float, float]]:
    try:
        stats = {key: tuple(float(v) for v in rgb_stats[key]) for key in ("mean", "std")}
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(
            f"{path}: 'rgb_stats' must be {{'mean': [r, g, b], 'std': [r, g, b]}}, got {rgb_stats!r}"
        ) from e
    if any(len(v) != 3 for v in stats.values()):
        raise ValueError(f"{path}: 'rgb_stats' must hold 3 values (RGB) for mean and std, got {rgb_stats!r}")
    return stats  # type: ignore[return-value]


def _infer_resolution(signature: Any, state: dict[str, torch.Tensor], path: Path) -> tuple[int, int]:
    """``(H, W)`` from the signature's input shape, or else from the position embedding's grid."""
    try:
        height, width = signature["inputs"][0]["data_shape"][2:4]
        return int(height), int(width)
    except (KeyError, IndexError, TypeError, ValueError):
        pass
    # No usable signature: a square grid of patches after the special tokens (class + registers).
    pos, conv = state.get("pos_embedding"), state.get("conv_proj.weight")
    if pos is not None and conv is not None and pos.ndim == 3:
        num_special = 1 + (state["reg_tokens"].shape[1] if "reg_tokens" in state else 0)
        side = math.isqrt(pos.shape[1] - num_special)
        if side * side == pos.shape[1] - num_special:
            return side * conv.shape[-2], side * conv.shape[-1]
    raise ValueError(
        f"{path}: cannot tell the training resolution: the signature has no input shape and the position "
        "embedding is not a square grid. The birder checkpoint is malformed."
    )


def is_safetensors_file(path: str | os.PathLike) -> bool:
    """safetensors files start with a little-endian u64 header length followed by a JSON object."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] > 0


def _starts_with(path: Path, magic: bytes) -> bool:
    with open(path, "rb") as f:
        return f.read(len(magic)) == magic


def _unsupported_detail(error: Exception) -> str:
    """The one informative line of torch's long weights_only message (e.g. 'unsupported GLOBAL posix.system')."""
    lines = [line.strip() for line in str(error).splitlines()]
    detail = next((line for line in lines if "nsupported" in line), "")
    return detail or "weights_only refused the content"
