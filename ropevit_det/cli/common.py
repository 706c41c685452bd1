"""What every command shares: config lookup by path or zoo name, and the checks of overrides, as one-line errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..model_zoo import ConfigNotFoundError, resolve_config


def config_arg(path_or_name: str) -> str:
    """``--config`` as given (a file, or a model-zoo name) -> a file path; an unknown one ends the run."""
    try:
        return resolve_config(path_or_name)
    except ConfigNotFoundError as error:
        raise SystemExit(f"ERROR: --config: {error}") from None


def reject_flags_among_overrides(opts: Sequence[str]) -> None:
    """A ``--flag`` written after the ``KEY VALUE`` overrides ends the run, naming it.

    argparse hands everything after the first override to them (``nargs=REMAINDER``), so such a flag would
    otherwise be read as a config key, and its error would name the wrong thing.
    """
    flags = [item for item in opts if item.startswith("--")]
    if flags:
        raise SystemExit(
            f"ERROR: {flags[0]} comes after the KEY VALUE config overrides, where it would be read as a config key: "
            "write every flag before the overrides"
        )


def os_error_sentence(error: OSError) -> str:
    """An ``OSError`` as one line naming the path and the problem (``[Errno 21] ...`` is not for users)."""
    if error.filename is None:
        return str(error)
    problem = {
        FileNotFoundError: "does not exist",
        IsADirectoryError: "is a folder where a file is expected",
        NotADirectoryError: "is a file where a folder is expected",
        PermissionError: "cannot be accessed (permission denied)",
    }.get(type(error), error.strerror or str(error))
    return f"{error.filename} {problem}"


def user_error_message(error: Exception, flags: Mapping[str, str]) -> str:
    """The one line a command prints for an error of the user's input.

    ``flags`` maps the library's argument names (``UserInputError.argument``) to this command's flags, so that the
    library speaks in its own terms and every command names the flag at fault the same way. An ``OSError`` is
    phrased by :func:`os_error_sentence`.
    """
    if isinstance(error, OSError):
        return f"ERROR: {os_error_sentence(error)}"
    flag = flags.get(getattr(error, "argument", None) or "")
    return f"ERROR: {flag}: {error}" if flag else f"ERROR: {error}"
