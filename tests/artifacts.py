"""Files a test keeps for people to look at (screenshots), at a fixed place that outlives pytest's tmp_path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Under output/, which .gitignore keeps out of commits; CI can point $ROPEVIT_TEST_ARTIFACTS at its upload folder.
DEFAULT_ARTIFACTS = REPO / "output" / "test_artifacts"


def artifacts_dir() -> Path:
    """``$ROPEVIT_TEST_ARTIFACTS`` if set, else ``output/test_artifacts`` in the repository."""
    return Path(os.environ.get("ROPEVIT_TEST_ARTIFACTS") or DEFAULT_ARTIFACTS)


def keep_artifact(path: Path, name: str | None = None) -> Path:
    """Copy ``path`` into :func:`artifacts_dir` (as ``name``, default its own name); returns the copy."""
    target = artifacts_dir() / (name or path.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return target
