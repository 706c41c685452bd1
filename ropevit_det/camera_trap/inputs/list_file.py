"""List files of input paths (``infer --input todo.txt``, ``merge --unprocessed-list``): read and written exactly.

File names are data, not syntax. Camera folders are called ``Camera #3``, names carry leading or inner spaces,
and a few hold a newline; a list that treated ``#`` as a comment or stripped spaces would drop such images
without a word. The two formats:

- ``.txt``: UTF-8, one path per line, **verbatim**: no comments, nothing stripped (a ``\\r`` before the line
  break is taken as a Windows line end and dropped). Empty lines are skipped. A line that starts with ``"``
  is a JSON string (``"Camera 3/line\\nbreak.jpg"``): that is the escape for names holding a newline or a
  carriage return, names starting with ``"`` or a byte-order mark, and names that are not valid UTF-8 (Linux
  file names can be any bytes; Python gives them as lone surrogates, JSON escapes them as ``\\udcXX``).
  :func:`write_list_file` quotes exactly those names and writes every other one as it is.
- ``.json``: a JSON list of path strings.

What :func:`write_list_file` writes, :func:`read_list_file` reads back as the same strings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["LIST_FILE_SUFFIXES", "read_list_file", "write_list_file"]

LIST_FILE_SUFFIXES = (".txt", ".json")
_BOM = "\ufeff"


def read_list_file(path: str | os.PathLike) -> list[str]:
    """The paths in a ``.txt`` or ``.json`` list file, in file order (see the module docstring for the format).

    Raises:
        ValueError: a quoted line is not a JSON string, or a ``.json`` file is not a list of strings; the
            message names the file and the line.
        OSError: the file cannot be read.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"input list {path} is not UTF-8 text ({exc}); write it as UTF-8, or as a .json list"
        ) from None
    if path.suffix.lower() == ".json":
        return _json_list(path, text)
    names = []
    for number, line in enumerate(text.removeprefix(_BOM).split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line:
            continue
        if line.startswith('"'):
            try:
                line = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"input list {path}, line {number}: a line starting with a double quote must be "
                    f"one JSON string (the escape for names with line breaks) ({exc.msg}); write "
                    'the name as a JSON string, e.g. "\\"a.jpg"'
                ) from None
            if not isinstance(line, str):
                raise ValueError(
                    f"input list {path}, line {number}: a line starting with a double quote must be one JSON string"
                )
        names.append(line)
    return names


def write_list_file(path: str | os.PathLike, names: Iterable[str]) -> None:
    """Write ``names`` so that :func:`read_list_file` gives them back exactly (``.json``: a JSON list).

    Raises:
        ValueError: a name is empty (it could not be read back).
    """
    path = Path(path)
    names = list(names)
    if any(not name for name in names):
        raise ValueError("an empty path cannot be written to a list file")
    if path.suffix.lower() == ".json":
        text = json.dumps(names, indent=0) + "\n"  # ASCII with \u escapes: any name, lone surrogates included
    else:
        text = "".join(f"{_quoted(name) if _needs_quoting(name) else name}\n" for name in names)
    path.write_text(text, encoding="utf-8", newline="")


def _needs_quoting(name: str) -> bool:
    if "\n" in name or "\r" in name or name.startswith(('"', _BOM)):
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: file-name bytes that are not UTF-8
        return True
    return False


def _quoted(name: str) -> str:
    return json.dumps(name, ensure_ascii=True)


def _json_list(path: Path, text: str) -> list[str]:
    try:
        names = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"input list {path} is not valid JSON ({exc}); give a JSON list of paths") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"input list {path} must be a JSON list of path strings")
    return [n for n in names if n]
