"""Name -> installed config file, and path-or-name resolution for the tools' ``--config``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CONFIG_SUFFIXES = (".yaml", ".py")
# A config of the installed zoo, by name, from anywhere: `--config ropevit://ropevit_mrcnn.yaml`, or in a user's
# YAML `_BASE_: ropevit://Base-RoPEViT-SFP.yaml` (ropevit_det.config.RoPEViTCfgNode resolves it).
ZOO_SCHEME = "ropevit://"


class ConfigNotFoundError(FileNotFoundError):
    """A config given by name or path that exists neither as a file nor in the installed zoo."""


def configs_root() -> Path:
    """The installed package's config folder (``ropevit_det/model_zoo/configs``)."""
    root = Path(__file__).resolve().parent / "configs"
    if not root.is_dir():
        raise ConfigNotFoundError(
            f"the package's config folder {root} is missing: this install was made without its package data. "
            "Reinstall with `pip install .` (or `pip install -e .`) from a clone, which links configs/ into it"
        )
    return root


def available_configs() -> list[str]:
    """Every config name in the zoo, relative to its root, e.g. ``camera_trap/ropevit_faster_rcnn_cct.yaml``."""
    root = configs_root()
    names = [
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.suffix in CONFIG_SUFFIXES and p.is_file() and "__pycache__" not in p.parts
    ]
    return sorted(names)


def get_config_file(name: str) -> str:
    """The installed path of config ``name`` (relative to the zoo root, with its ``.yaml`` or ``.py`` suffix).

    Raises:
        ConfigNotFoundError: ``name`` is not in the zoo; the message lists the names that are.
    """
    clean = name.removeprefix(ZOO_SCHEME).replace("\\", "/").lstrip("/")
    if clean.startswith("configs/"):  # the path as written in a clone: configs/ropevit_mrcnn.yaml
        clean = clean[len("configs/") :]
    path = configs_root() / clean
    if clean and ".." not in Path(clean).parts and path.is_file():
        return str(path)
    raise ConfigNotFoundError(
        f"no config named {name!r} in ropevit_det's model zoo. Available: " + ", ".join(available_configs())
    )


def resolve_config(path_or_name: str | os.PathLike) -> str:
    """A config for the tools' ``--config``: an existing file wins, else a zoo name.

    Raises:
        ConfigNotFoundError: neither lookup found it; the message names both lookups and the zoo names.
    """
    text = os.fspath(path_or_name)
    if Path(text).is_file():
        return text
    try:
        return get_config_file(text)
    except ConfigNotFoundError:
        raise ConfigNotFoundError(
            f"config {text!r} is neither a file (looked in {Path(text).resolve()}) nor a name in ropevit_det's "
            f"model zoo ({configs_root()}). Available names: {', '.join(available_configs())}"
        ) from None


def get_config(name: str, opts: list[str] | tuple[str, ...] = ()) -> Any:
    """The config ``name`` from the zoo, ready to use.

    A ``.yaml`` name gives a ``CfgNode`` with this project's keys added (``ropevit_det.config.load_config``),
    the file merged and ``opts`` (``KEY VALUE`` pairs) applied. A ``.py`` name gives a LazyConfig, with
    ``opts`` applied as ``key=value`` overrides.
    """
    path = get_config_file(name)
    if path.endswith(".py"):
        from detectron2.config import LazyConfig

        cfg = LazyConfig.load(path)
        return LazyConfig.apply_overrides(cfg, list(opts)) if opts else cfg
    from ..config import load_config

    return load_config(path, list(opts))
