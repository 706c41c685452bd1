"""SpeciesNet's geofence rules applied to a classifier's classes at one place.

:class:`ClassGeofence` maps the classes to SpeciesNet taxonomy strings once (:mod:`.inat_mapping`), decides
which are blocked at the camera's country and region, and geofences one detection's ranked candidates through
:meth:`GeofenceRules.decide <.speciesnet_rules.GeofenceRules.decide>`, so the decisions are the ones its tests
compare with SpeciesNet's. The label policy (``species_filter.LabelPolicy``) calls it between the class masks and
the roll-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..species.taxonomy import RANKS, Taxonomy
from .inat_mapping import map_classes, rank_taxon
from .speciesnet_rules import GeofenceRules

__all__ = ["CANDIDATES", "ClassGeofence", "RowDecision"]

CANDIDATES = 5  # candidates per detection a geofence decision looks at: SpeciesNet's NUM_CLASSIFICATIONS_FOR_ENSEMBLE


@dataclass(frozen=True)
class RowDecision:
    """A blocked top class's fate: ``taxon`` (our name of the ancestor, e.g. ``"Felidae"``) at ``rank`` with the
    summed ``score``; ``taxon`` None when no ancestor is allowed (SpeciesNet's "rollup failed")."""

    taxon: str | None
    rank: str | None
    score: float


class ClassGeofence:
    """Which classes may be named at ``country`` / ``admin1``, and where a blocked one rolls up to.

    Args:
        taxonomy: the classifier's classes and lineages.
        rules: SpeciesNet's geofence map.
        country: ISO 3166-1 alpha-3 code of the camera's country.
        admin1: its first-level region as SpeciesNet writes it (a US state code), or None.

    Raises:
        ValueError: ``country`` or ``admin1`` is not a code SpeciesNet's rules can use.
    """

    def __init__(self, taxonomy: Taxonomy, rules: GeofenceRules, *, country: str, admin1: str | None = None):
        if not country:
            raise ValueError("a geofence needs the camera's country (ISO 3166-1 alpha-3)")
        rules.check_place(country, admin1)
        self.rules, self.country, self.admin1 = rules, country, admin1
        mapping = map_classes(taxonomy)
        self.taxa = mapping.taxa
        self.unmapped = mapping.unmapped
        self.blocked = np.array([t is not None and rules.blocks(t, country, admin1) for t in self.taxa], dtype=bool)
        self.ruled = sum(t is not None and t in rules for t in self.taxa)  # classes the file has a rule for
        # SpeciesNet string of each (rank, our taxon name), and back: the roll-up speaks in our names.
        self._string: dict[tuple[str, str], str] = {}
        self._name: dict[str, tuple[str, str]] = {}
        for lineage in taxonomy.lineages:
            if lineage is None:
                continue
            for rank in RANKS[:-1]:
                name, string = lineage[RANKS.index(rank)], rank_taxon(lineage, rank)
                if name and string is not None:
                    self._string[(rank, name)] = string
                    self._name[string] = (rank, name)

    def blocks_taxon(self, rank: str, name: str) -> bool:
        """Whether our taxon ``name`` at ``rank`` (e.g. ``("family", "Felidae")``) is blocked here."""
        string = self._string.get((rank, name))
        return string is not None and self.rules.blocks(string, self.country, self.admin1)

    def decide(self, classes: Sequence[int], scores: Sequence[float]) -> RowDecision | None:
        """Geofence one detection's candidates (class indices and probabilities, best first); None when its top
        class may be named here (or cannot be judged: it is unmapped)."""
        if not self.blocked[classes[0]]:
            return None
        mapped = [(self.taxa[c], s) for c, s in zip(classes, scores) if self.taxa[c] is not None]
        decision = self.rules.decide([t for t, _ in mapped], [s for _, s in mapped], self.country, self.admin1)
        if decision.failed or decision.taxon is None:
            return RowDecision(None, None, decision.score)
        rank, name = self._name[decision.taxon]
        return RowDecision(name, rank, decision.score)

    def describe(self) -> str:
        """One line for the log: the place, and how many classes the rules judge, block, or cannot map."""
        place = self.country + (f"-{self.admin1}" if self.admin1 else "")
        text = (
            f"geofence at {place} ({self.rules.source}): {self.ruled} of {len(self.taxa)} classes have a rule, "
            f"{int(self.blocked.sum())} are blocked here"
        )
        if self.unmapped:
            text += (
                f"; {len(self.unmapped)} classes have no taxonomy and cannot be judged, they stay allowed "
                f"(e.g. {', '.join(self.unmapped[:3])}; --taxonomy FILE gives them one)"
            )
        return text
