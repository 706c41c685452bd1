"""What every command shares: config lookup by path or zoo name, turned into a one-line error for the user."""
from __future__ import annotations

from ..model_zoo import ConfigNotFoundError, resolve_config


def config_arg(path_or_name: str) -> str:
    """``--config`` as given (a file, or a model-zoo name) -> a file path; an unknown one ends the run."""
    try:
        return resolve_config(path_or_name)
    except ConfigNotFoundError as error:
        raise SystemExit(f"ERROR: --config: {error}") from None


def os_error_sentence(error: OSError) -> str:
    """An ``OSError`` as one line naming the path and the problem (``[Errno 21] ...`` is not for users)."""
    if error.filename is None:
        return str(error)
    problem = {FileNotFoundError: "does not exist", IsADirectoryError: "is a folder where a file is expected",
               NotADirectoryError: "is a file where a folder is expected", PermissionError: "cannot be accessed "
               "(permission denied)"}.get(type(error), error.strerror or str(error))
    return f"{error.filename} {problem}"
