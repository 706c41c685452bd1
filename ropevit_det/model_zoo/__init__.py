"""Configs that travel with the package, found by name (detectron2's ``model_zoo`` convention).

    from ropevit_det import model_zoo
    model_zoo.get_config_file("ropevit_mrcnn.yaml")    # path of the installed YAML
    cfg = model_zoo.get_config("ropevit_mrcnn.yaml")    # a CfgNode with our keys added, file merged
    lazy = model_zoo.get_config("lazy/ropevit_mrcnn.py")  # a LazyConfig (omegaconf DictConfig)

Where the files come from: the top-level ``configs/`` folder of the repository is the one source of truth.
``setup.py`` links it into this package as ``ropevit_det/model_zoo/configs`` (a symlink, as detectron2's own
``setup.py`` does for ``detectron2/model_zoo/configs``; a copy where symlinks are unavailable), and ships it as
package data. An editable install sees every edit to ``configs/`` at once; a wheel carries a snapshot.
"""

from __future__ import annotations

from .resolve import ConfigNotFoundError, available_configs, configs_root, get_config, get_config_file, resolve_config

__all__ = [
    "ConfigNotFoundError",
    "available_configs",
    "configs_root",
    "get_config",
    "get_config_file",
    "resolve_config",
]
