"""SpeciesNet's geofence rules: which taxa may be named in which country and region, and what a blocked label
rolls up to.

The file is SpeciesNet's ``geofence_release.<date>.json`` (it ships with each SpeciesNet model release; AddaxAI
and Animl reuse it). It maps a taxonomy string, ``"class;order;family;genus;species"`` in lower case with empty
fields above the species rank (``"mammalia;carnivora;felidae;;"`` is the family Felidae, ``";;;;"`` is
"animal"), to rules::

    {"mammalia;carnivora;felidae;leopardus;pardalis": {"allow": {"USA": ["TX", "AZ"], "MEX": [], ...}},
     "mammalia;carnivora;ursidae;ursus;arctos":       {"block": {"GBR": [], "USA": ["FL"]}}}

Decisions, as SpeciesNet makes them (``speciesnet/geofence_utils.py``; its tests compare with ours):

* no country, or a taxon the file does not list: allowed;
* ``allow``: a country not listed is blocked; a listed country with regions blocks the other regions (when the
  region is known; an unknown region is allowed);
* ``block``: a listed country without regions is blocked whole; with regions, those regions are blocked;
* a blocked top label rolls up to its family, then order, class, kingdom: per rank, the scores of the candidate
  labels are summed per ancestor, and the best ancestor that is not itself blocked is taken if its sum reaches
  the top label's score (it does when the top label's own ancestor is allowed); else the roll-up fails.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ANIMAL", "GEOFENCE_ROLLUP_RANKS", "GeofenceDecision", "GeofenceRules", "TAXON_RANKS", "ancestor"]

TAXON_RANKS: tuple[str, ...] = ("class", "order", "family", "genus", "species")  # the fields of a taxonomy string
GEOFENCE_ROLLUP_RANKS: tuple[str, ...] = ("family", "order", "class", "kingdom")  # SpeciesNet's, genus skipped
ANIMAL = ";;;;"  # SpeciesNet's kingdom-level taxon ("animal"): every taxon with a class rolls up to it
# SpeciesNet forces the geofence roll-up to pass the blocked label's score less this much (float sums).
_ROLLUP_TOLERANCE = 1e-10


def _fields(taxon: str) -> list[str]:
    fields = taxon.split(";")
    if len(fields) != len(TAXON_RANKS):
        raise ValueError(
            f"taxonomy string {taxon!r} has {len(fields)} fields; SpeciesNet's have 5: class;order;family;genus;species"
        )
    return fields


def ancestor(taxon: str, rank: str) -> str | None:
    """The taxonomy string of ``taxon``'s ancestor at ``rank`` (``"kingdom"``: :data:`ANIMAL`), or None when
    ``taxon`` has no such rank (a family-level taxon has no genus)."""
    fields = _fields(taxon)
    if rank == "kingdom":
        return ANIMAL if fields[0] or taxon == ANIMAL else None
    depth = TAXON_RANKS.index(rank) + 1
    if not fields[depth - 1]:
        return None
    return ";".join(fields[:depth] + [""] * (len(TAXON_RANKS) - depth))


@dataclass(frozen=True)
class GeofenceDecision:
    """What a geofence makes of one ranked list of labels.

    ``taxon`` and ``score`` are the label to write (the top label, or the ancestor it rolled up to, with the
    summed score); ``rank`` is the rank rolled up to (None: not geofenced); ``failed`` says that the top label
    was blocked and no ancestor was allowed (SpeciesNet then writes "no cv result").
    """

    taxon: str | None
    score: float
    rank: str | None = None
    failed: bool = False

    @property
    def geofenced(self) -> bool:
        return self.rank is not None or self.failed


class GeofenceRules:
    """SpeciesNet's geofence map (see the module docstring).

    Args:
        rules: taxonomy string -> ``{"allow": {ISO3: [regions]}, "block": {ISO3: [regions]}}``.
        source: where the rules came from (for messages).

    Raises:
        ValueError: a key is not a taxonomy string, or a rule is not of that shape.
    """

    def __init__(self, rules: Mapping[str, Mapping[str, Mapping[str, Sequence[str]]]], *, source: str = "rules"):
        if not isinstance(rules, Mapping):
            raise ValueError(
                f"{source}: a geofence file is a JSON object of taxonomy string -> rules, got {type(rules).__name__}"
            )
        self.source = source
        self.rules: dict[str, dict[str, dict[str, list[str]]]] = {}
        for taxon, rule in rules.items():
            try:
                _fields(taxon)
            except ValueError as exc:
                raise ValueError(f"{source}: {exc}") from None
            if not isinstance(rule, Mapping) or set(rule) - {"allow", "block"}:
                raise ValueError(
                    f"{source}: the rule of {taxon!r} must be an object with 'allow' and/or 'block', got {rule!r}"
                )
            parsed: dict[str, dict[str, list[str]]] = {}
            for kind, countries in rule.items():
                if not isinstance(countries, Mapping) or not all(
                    isinstance(r, list) and all(isinstance(x, str) for x in r) for r in countries.values()
                ):
                    raise ValueError(
                        f"{source}: {taxon!r} {kind!r} must map ISO 3166-1 alpha-3 countries to lists "
                        f"of region codes, got {countries!r}"
                    )
                parsed[kind] = {str(c): list(r) for c, r in countries.items()}
            self.rules[taxon] = parsed

    @classmethod
    def from_json(cls, path: str | Path) -> GeofenceRules:
        """Read a geofence JSON file (SpeciesNet's, or one written by hand in its format).

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: the file is not JSON, or not of SpeciesNet's shape.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"geofence file {path} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"geofence file {path} is not JSON: {exc}") from None
        return cls(data, source=str(path))

    def __contains__(self, taxon: object) -> bool:
        return taxon in self.rules

    def __len__(self) -> int:
        return len(self.rules)

    @staticmethod
    def check_place(country: str | None, admin1: str | None) -> None:
        """Raise ValueError unless ``country`` is a 3-letter code (or None) and ``admin1`` a 2-letter one."""
        if country and len(country) != 3:
            raise ValueError(f"country {country!r} is not an ISO 3166-1 alpha-3 code (e.g. DEU, KEN, USA)")
        if country and admin1 and len(admin1) != 2:
            raise ValueError(
                f"region {admin1!r} is not a two-letter region code (SpeciesNet's geofence uses US "
                "state codes, e.g. WY)"
            )

    def blocks(self, taxon: str, country: str | None, admin1: str | None = None) -> bool:
        """Whether ``taxon`` may not be named at ``country`` / ``admin1`` (None: unknown).

        Raises:
            ValueError: ``country`` or ``admin1`` has the wrong length (as SpeciesNet raises).
        """
        if not country:
            return False
        self.check_place(country, admin1)
        _fields(taxon)
        rule = self.rules.get(taxon)
        if rule is None:
            return False
        allow = rule.get("allow")
        if allow:
            if country not in allow:
                return True
            regions = allow[country]
            if admin1 and regions and admin1 not in regions:
                return True
        block = rule.get("block")
        if block and country in block:
            regions = block[country]
            if not regions or (admin1 and admin1 in regions):
                return True
        return False

    def decide(
        self,
        taxa: Sequence[str],
        scores: Sequence[float],
        country: str | None,
        admin1: str | None = None,
        *,
        known: set[str] | None = None,
    ) -> GeofenceDecision:
        """Geofence a ranked list of candidate labels (best first) with their scores.

        Args:
            taxa, scores: the classifier's candidates, best first (SpeciesNet passes its top 5).
            country, admin1: where the camera stands.
            known: the ancestors a label may roll up to (SpeciesNet: its taxonomy's labels); None: any.
        """
        if not taxa:
            raise ValueError("decide needs at least one candidate label")
        if not self.blocks(taxa[0], country, admin1):
            return GeofenceDecision(taxa[0], float(scores[0]))
        for rank in GEOFENCE_ROLLUP_RANKS:
            sums: dict[str, float] = {}  # insertion order decides ties, as in SpeciesNet
            for taxon, score in zip(taxa, scores):
                up = ancestor(taxon, rank)
                if up is not None and (known is None or up in known):
                    sums[up] = sums.get(up, 0.0) + float(score)
            best, best_score = None, 0.0
            for up, total in sums.items():
                if total > best_score and not self.blocks(up, country, admin1):
                    best, best_score = up, total
            if best is not None and best_score > float(scores[0]) - _ROLLUP_TOLERANCE:
                return GeofenceDecision(best, best_score, rank=rank)
        return GeofenceDecision(None, float(scores[0]), failed=True)
