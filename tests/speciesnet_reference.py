"""SpeciesNet's own geofence functions, loaded without SpeciesNet's model stack.

``speciesnet/__init__.py`` imports TensorFlow and its detector, so the package is never imported: its
``constants.py``, ``taxonomy_utils.py``, ``geofence_utils.py`` and ``geolocation.py`` are loaded by file path
under a stub package of the same name (their imports are absolute: ``from speciesnet.constants import ...``).
A missing package FAILS the test with the install command (never skips).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

import pytest

VERSION = "5.0.6"
INSTALL_COMMAND = (
    f"pip install --no-deps speciesnet=={VERSION}  (tools/setup_env.sh installs it; --no-deps: the "
    "tests read only its geofence files, not its TensorFlow model stack)"
)
MODULES = ("constants", "taxonomy_utils", "geofence_utils", "geolocation")


def _package_dir() -> Path:
    spec = importlib.util.find_spec("speciesnet")  # finds the folder; runs nothing
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"SpeciesNet (the geofence reference) is not installed. Install it with: {INSTALL_COMMAND}")
    return Path(next(iter(spec.submodule_search_locations)))


def load() -> types.SimpleNamespace:
    """SpeciesNet's modules (``.constants``, ``.taxonomy_utils``, ``.geofence_utils``, ``.geolocation``)."""
    folder = _package_dir()
    missing = [m for m in MODULES if not (folder / f"{m}.py").is_file()]
    if missing:
        pytest.fail(f"{folder} lacks {', '.join(missing)}.py; install the reference with: {INSTALL_COMMAND}")
    saved = {name: sys.modules.get(name) for name in ["speciesnet", *(f"speciesnet.{m}" for m in MODULES)]}
    stub = types.ModuleType("speciesnet")
    stub.__path__ = [str(folder)]  # a package, but its __init__ (TensorFlow) never runs
    stub.__spec__ = importlib.machinery.ModuleSpec("speciesnet", None, is_package=True)
    sys.modules["speciesnet"] = stub
    loaded = {}
    try:
        for name in MODULES:
            spec = importlib.util.spec_from_file_location(f"speciesnet.{name}", folder / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[f"speciesnet.{name}"] = module
            spec.loader.exec_module(module)
            loaded[name] = module
    finally:
        for name, module in saved.items():  # leave sys.modules as it was
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return types.SimpleNamespace(**loaded)
