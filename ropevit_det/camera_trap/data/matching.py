"""Match file paths written on one machine to files (or names) on another.

CCT metadata files carry the paths of the machine that made them (for example
``models/research/object_detection/test_images/snapshot_serengeti/S1_E03_R3_PICT0038.jpeg``), and MD results
files carry paths relative to whatever folder inference ran on. Both have to be matched to a local layout.

Hand-written because no dependency does this: a path matches the candidate with the same file name that shares
the longest run of trailing path components. With one candidate this is plain basename matching; with several
(camera-trap names such as ``IMG_0001.JPG`` repeat in every camera folder) the parent folders decide, and a
tie is reported as ambiguous instead of guessed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field


def path_parts(path: str) -> tuple[str, ...]:
    """Split a path written with either slash into its components (``./`` and empty parts dropped)."""
    return tuple(part for part in path.replace("\\", "/").split("/") if part not in ("", "."))


def to_posix(path: str) -> str:
    """A path with forward slashes and no ``./`` or doubled slashes: the one normal form of a path in results
    files (MD files use forward slashes whatever the OS, so Windows-made results open on Linux and back)."""
    return "/".join(path_parts(path))


def leaves_root(path: str) -> bool:
    """Whether a results path would leave the folder it is relative to: absolute (``/x``, ``C:/x``, ``//host``)
    or with a ``..`` component (refused even where it would climb back in: a results path never needs one)."""
    posix = path.replace("\\", "/")
    return (
        posix.startswith("/")
        or (len(posix) >= 2 and posix[1] == ":" and posix[0].isalpha())
        or ".." in posix.split("/")
    )


def check_relative_paths(files: Iterable[str], *, source: str, root: str, max_listed: int = 3) -> None:
    """Refuse results paths that leave ``root`` (see :func:`leaves_root`), naming them.

    Raises:
        ValueError: naming ``source``, the first entries at fault and how many there are.
    """
    bad = [f for f in files if leaves_root(f)]
    if bad:
        listed = ", ".join(repr(f) for f in bad[:max_listed]) + (
            f" and {len(bad) - max_listed} more" if len(bad) > max_listed else ""
        )
        raise ValueError(
            f"{source}: 'file' outside {root} (absolute, or with '..') in {len(bad)} entries: "
            f"{listed}; results paths must be relative to {root}: remove or rewrite these entries"
        )


def strip_path_prefix(path: str, prefix: str | None) -> str:
    """Remove ``prefix`` from the front of ``path`` (both compared with forward slashes); no-op if absent."""
    path = to_posix(path)
    if not prefix:
        return path
    prefix = to_posix(prefix)
    if path == prefix:
        return path
    if path.startswith(prefix + "/"):
        return path[len(prefix) + 1 :]
    # A prefix may also end inside a component ("snapshot_serengeti/S1_" style); honour it literally.
    if path.startswith(prefix):
        return path[len(prefix) :].lstrip("/")
    return path


@dataclass
class MatchReport:
    """Outcome of matching many paths; ``unmatched`` and ``ambiguous`` hold the original paths."""

    total: int = 0
    exact: int = 0
    by_suffix: int = 0
    unmatched: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    hint: str = ""

    @property
    def matched(self) -> int:
        return self.exact + self.by_suffix

    def describe(self, what: str = "images", show: int = 5) -> str:
        """One readable paragraph: counts, then the first few unmatched / ambiguous paths."""
        lines = [
            (
                f"{self.matched} of {self.total} {what} matched ({self.exact} by exact path, "
                f"{self.by_suffix} by file name)"
            )
        ]
        if self.unmatched:
            lines.append(
                f"{len(self.unmatched)} not found, first {min(show, len(self.unmatched))}: "
                + ", ".join(self.unmatched[:show])
            )
        if self.ambiguous:
            lines.append(
                f"{len(self.ambiguous)} ambiguous (same file name in several folders, none sharing "
                f"more parent folders), first {min(show, len(self.ambiguous))}: " + ", ".join(self.ambiguous[:show])
            )
        if self.hint:
            lines.append("hint: " + self.hint)
        return "; ".join(lines)


class TrailingPathMatcher:
    """Find, for a query path, the candidate with the same file name and the longest shared path tail.

    Args:
        candidates: the paths that exist (local files relative to a root, or names in a ground-truth file).
    """

    def __init__(self, candidates: Iterable[str]):
        self._by_name: dict[str, list[tuple[str, ...]]] = defaultdict(list)
        self._originals: dict[tuple[str, ...], str] = {}
        for candidate in candidates:
            parts = path_parts(candidate)
            if not parts:
                continue
            self._by_name[parts[-1]].append(parts)
            self._originals[parts] = candidate

    def exact(self, query: str) -> str | None:
        """The candidate spelled exactly like ``query`` (slashes normalised), or None."""
        return self._originals.get(path_parts(query))

    def match(self, query: str) -> tuple[str | None, bool]:
        """Match one path.

        Returns:
            ``(candidate, ambiguous)``: the candidate (original spelling) or None; ``ambiguous`` is True when
            several candidates tie for the longest shared tail.
        """
        parts = path_parts(query)
        if not parts:
            return None, False
        same_name = self._by_name.get(parts[-1], [])
        if not same_name:
            return None, False
        if len(same_name) == 1:
            return self._originals[same_name[0]], False
        scores = [_shared_tail(parts, cand) for cand in same_name]
        best = max(scores)
        winners = [cand for cand, score in zip(same_name, scores) if score == best]
        if len(winners) > 1:
            return None, True
        return self._originals[winners[0]], False

    def match_all(self, queries: Iterable[str], use_suffix: bool = True) -> tuple[dict[str, str], MatchReport]:
        """Match many paths: exact spelling first, then (if ``use_suffix``) the longest shared tail.

        Returns:
            ``({query: candidate}, report)``.
        """
        found: dict[str, str] = {}
        report = MatchReport()
        for query in queries:
            report.total += 1
            hit = self.exact(query)
            if hit is not None:
                found[query] = hit
                report.exact += 1
                continue
            if not use_suffix:
                report.unmatched.append(query)
                continue
            hit, ambiguous = self.match(query)
            if hit is not None:
                found[query] = hit
                report.by_suffix += 1
            elif ambiguous:
                report.ambiguous.append(query)
            else:
                report.unmatched.append(query)
        return found, report


def _shared_tail(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    count = 0
    for x, y in zip(reversed(a), reversed(b)):
        if x != y:
            break
        count += 1
    return count
