"""The taxonomy of a classifier's classes: kingdom to species for each class index.

iNat21 class names carry it. The iNaturalist 2021 dataset names each class folder
``NNNNN_Kingdom_Phylum_Class_Order_Family_Genus_epithet`` (e.g.
``00000_Animalia_Annelida_Clitellata_Haplotaxida_Lumbricidae_Lumbricus_terrestris``), and birder's
``class_to_idx`` keeps those folder names, so :meth:`Taxonomy.from_class_names` reads the seven ranks from
them. Checkpoints whose names are plain (``"Vulpes vulpes"``, a common name) get theirs from a CSV file
(:meth:`Taxonomy.from_csv`: class name, kingdom, phylum, class, order, family, genus, species).

The species rank holds the binomial (``"Lumbricus terrestris"``), as species lists and MegaDetector's
taxa lists write it. Names are matched without regard to case.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RANKS", "Lineage", "Taxonomy", "parse_inat21_name"]

RANKS: tuple[str, ...] = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
Lineage = tuple[str, str, str, str, str, str, str]  # one value per rank, species as the binomial

# Optional numeric id, then six capitalised taxa, then the specific epithet (which may itself hold
# underscores or hyphens, e.g. "novae-angliae"; a subspecies would follow it).
_INAT21 = re.compile(r"^(?:\d+_)?((?:[A-Z][A-Za-z-]*_){6})([a-z][A-Za-z_.-]*)$")


def parse_inat21_name(name: str) -> Lineage | None:
    """The seven ranks of an iNat21-style class name, or None when the name is not of that form."""
    match = _INAT21.match(name.strip())
    if match is None:
        return None
    kingdom, phylum, class_, order, family, genus = match.group(1).rstrip("_").split("_")
    epithet = match.group(2).replace("_", " ")
    return kingdom, phylum, class_, order, family, genus, f"{genus} {epithet}"


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).lower()


@dataclass(frozen=True)
class Taxonomy:
    """Per class index, its :data:`Lineage` (None for a class whose taxonomy is unknown).

    Args:
        class_names: the classifier's class names, index order.
        lineages: one entry per class.
    """

    class_names: tuple[str, ...]
    lineages: tuple[Lineage | None, ...]

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.lineages):
            raise ValueError(f"{len(self.class_names)} class names but {len(self.lineages)} lineages")

    @classmethod
    def from_class_names(cls, class_names: Sequence[str]) -> Taxonomy:
        """Parse iNat21-style names; classes with other names get no lineage."""
        return cls(tuple(class_names), tuple(parse_inat21_name(n) for n in class_names))

    @classmethod
    def from_csv(cls, path: str | Path, class_names: Sequence[str]) -> Taxonomy:
        """Read ``class name, kingdom, phylum, class, order, family, genus, species`` rows (a header row is
        optional). The species column holds the binomial or only the epithet.

        Raises:
            ValueError: a row has the wrong number of fields, or names a class the classifier does not have.
            FileNotFoundError: ``path`` does not exist.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"taxonomy file {path} does not exist")
        index = {name: i for i, name in enumerate(class_names)}
        lineages: list[Lineage | None] = [None] * len(class_names)
        with open(path, newline="", encoding="utf-8-sig") as f:
            for line_no, row in enumerate(csv.reader(f), start=1):
                row = [cell.strip() for cell in row]
                if not row or not any(row) or row[0].startswith("#"):
                    continue
                if line_no == 1 and [c.lower() for c in row[1:]] == list(RANKS):
                    continue  # header
                if len(row) != 1 + len(RANKS):
                    raise ValueError(
                        f"{path}:{line_no}: expected {1 + len(RANKS)} fields (class name, "
                        f"{', '.join(RANKS)}), got {len(row)}"
                    )
                name, *ranks = row
                if name not in index:
                    raise ValueError(f"{path}:{line_no}: class {name!r} is not one of the classifier's classes")
                genus, species = ranks[5], ranks[6]
                if species and " " not in species and genus:
                    ranks[6] = f"{genus} {species}"
                lineages[index[name]] = tuple(ranks)  # type: ignore[assignment]
        return cls(tuple(class_names), tuple(lineages))

    @property
    def known(self) -> int:
        """How many classes have a lineage."""
        return sum(lineage is not None for lineage in self.lineages)

    def classes_under(self, taxa: Iterable[str]) -> tuple[set[int], list[str]]:
        """Class indices under any of ``taxa`` (names of any rank, or class names); plus the names no class has.

        A name that equals a class name selects that class even when the class has no lineage.
        """
        wanted = {_norm(t): t for t in taxa if t.strip()}
        found: set[int] = set()
        used: set[str] = set()
        for i, (name, lineage) in enumerate(zip(self.class_names, self.lineages)):
            values = {_norm(name)} | ({_norm(v) for v in lineage if v} if lineage else set())
            hits = values & wanted.keys()
            if hits:
                found.add(i)
                used |= hits
        return found, [wanted[k] for k in wanted if k not in used]

    def taxon(self, index: int, rank: str) -> str | None:
        """The class's taxon at ``rank`` (e.g. its family), or None when unknown."""
        lineage = self.lineages[index]
        return None if lineage is None else (lineage[RANKS.index(rank)] or None)
