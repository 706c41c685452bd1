"""What every command shares: config lookup by path or zoo name, turned into a one-line error for the user."""
from __future__ import annotations

from ..model_zoo import ConfigNotFoundError, resolve_config


def config_arg(path_or_name: str) -> str:
    """``--config`` as given (a file, or a model-zoo name) -> a file path; an unknown one ends the run."""
    try:
        return resolve_config(path_or_name)
    except ConfigNotFoundError as error:
        raise SystemExit(f"ERROR: --config: {error}") from None
