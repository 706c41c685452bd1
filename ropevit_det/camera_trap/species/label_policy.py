"""Species labels that fit the place: keep only some classes, and roll uncertain labels up the taxonomy.

A classifier trained on all of iNat21 will offer North American squirrels on a Kenyan camera. Two remedies,
applied to the classifier's probabilities before the top-k is taken:

* a class mask (``--taxa Mammalia,Aves``, ``--species-list``): classes outside it get probability 0 and the
  rest are renormalised to sum to 1 (the softmax over the allowed classes' logits); a masked class never
  appears in the output, nor among the ``classification_categories``;
* a geofence (``--geofence FILE --country ISO3 [--admin1 CODE]``): SpeciesNet's rules
  (:mod:`~ropevit_det.camera_trap.geofence`); when the best class may not be named where the camera stands, the
  label rolls up, among the top 5, to the nearest ancestor (family, order, class, kingdom) that is allowed, as
  SpeciesNet decides it, written as ``"<taxon> (<rank>, geofence)"`` so the record says that it did, and
  followed by the top-k species that are allowed there (none when no ancestor is allowed); a blocked species
  is not listed below an allowed best class either;
* roll-up (``--rollup T``), as SpeciesNet rolls its predictions up: if the best species has probability
  ``>= T`` it is the label; otherwise the probabilities are summed per genus, then per family, order, class,
  phylum and kingdom, and the first rank whose best taxon (not blocked by the geofence) reaches ``T`` gives
  the label, written as ``"<taxon> (<rank>)"`` and followed by the top-k species. A detection the geofence
  rolled up is not rolled up again.

The order is fixed: taxa filter, species list, geofence, roll-up; sequence smoothing (``--smooth-sequences``)
runs on the written file afterwards.

Taxon labels get classification category ids after the class indices (``"C"``, ``"C+1"``, ...), so every id
in the file stays in ``classification_categories``. Done here, on probabilities, rather than with
MegaDetector's ``restrict_to_taxa_list``: that one post-processes top-k lists, so it cannot renormalise over
the full distribution, and it needs SpeciesNet's taxonomy file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ...errors import UserInputError
from ..geofence.class_geofence import CANDIDATES, ClassGeofence
from .taxonomy import RANKS, Taxonomy

__all__ = ["LabelPolicy", "LabelPolicyError", "ROLLUP_RANKS", "read_species_list"]

ROLLUP_RANKS: tuple[str, ...] = tuple(reversed(RANKS[:-1]))  # genus, family, order, class, phylum, kingdom
GEOFENCE_SUFFIX = "geofence"  # category names of geofence roll-ups: "Felidae (family, geofence)"


class LabelPolicyError(UserInputError):
    """A ``LabelPolicy`` argument cannot be used; ``argument`` names it (``allowed``, ``rollup``, ``geofence``), so
    that a command line can name the option that set it."""

    def __init__(self, message: str, argument: str) -> None:
        super().__init__(message, argument=argument)


class LabelPolicy:
    """Turn a batch of class probabilities into MD ``classifications`` under a class mask and a roll-up.

    Args:
        class_names: the classifier's classes (index order).
        allowed: class indices that may be named (None: all).
        taxonomy: needed for roll-up.
        rollup: roll-up threshold in (0, 1] (None: no roll-up).
        geofence: SpeciesNet's rules at the camera's place (None: none).
        top_k: species written per detection.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        *,
        allowed: set[int] | None = None,
        taxonomy: Taxonomy | None = None,
        rollup: float | None = None,
        geofence: ClassGeofence | None = None,
        top_k: int = 5,
    ):
        num_classes = len(class_names)
        self.class_names = list(class_names)
        self.allowed = np.zeros(num_classes, dtype=bool)
        self.allowed[sorted(allowed) if allowed is not None else slice(None)] = True
        if not self.allowed.any():
            raise LabelPolicyError("no class is left to name: the allowed set is empty", "allowed")
        if rollup is not None:
            if not 0.0 < rollup <= 1.0:
                raise LabelPolicyError(f"roll-up threshold must be in (0, 1], got {rollup}", "rollup")
            if taxonomy is None or taxonomy.known == 0:
                raise LabelPolicyError(
                    "roll-up needs the classes' taxonomy: iNat21-style class names or a taxonomy file", "rollup"
                )
        if geofence is not None and (taxonomy is None or taxonomy.known == 0):
            raise LabelPolicyError(
                "a geofence needs the classes' taxonomy: iNat21-style class names or a taxonomy file", "geofence"
            )
        self.rollup = rollup
        self.top_k = max(1, min(top_k, int(self.allowed.sum())))
        self.categories = {str(i): name for i, name in enumerate(self.class_names) if self.allowed[i]}
        # Roll-up: per rank, each allowed class's taxon column (classes without that rank left out) and the taxa's
        # ids. Index lists, not a classes x taxa matrix: for iNat21 that matrix would hold 10,000 x ~5,000 floats.
        self._ranks: list[tuple[torch.Tensor, torch.Tensor, list[str], torch.Tensor]] = []
        next_id = num_classes
        if rollup is not None:
            for rank in ROLLUP_RANKS:
                of_class = {int(i): t for i in np.flatnonzero(self.allowed) if (t := taxonomy.taxon(int(i), rank))}
                taxa = sorted(set(of_class.values()))
                column = {t: j for j, t in enumerate(taxa)}
                classes = torch.tensor(sorted(of_class), dtype=torch.long)
                columns = torch.tensor([column[of_class[i]] for i in sorted(of_class)], dtype=torch.long)
                ids = [str(next_id + j) for j in range(len(taxa))]
                next_id += len(taxa)
                self.categories.update({cid: f"{t} ({rank})" for cid, t in zip(ids, taxa)})
                # A taxon the geofence blocks is never a roll-up label.
                blocked = torch.tensor(
                    [geofence is not None and geofence.blocks_taxon(rank, t) for t in taxa], dtype=torch.bool
                )
                self._ranks.append((classes, columns, ids, blocked))
        # Geofence roll-up labels: one category per (rank, taxon) an allowed class has, after the roll-up's.
        self.geofence = geofence
        self._geofence_ids: dict[tuple[str, str], str] = {}
        if geofence is not None:
            if geofence.taxa and len(geofence.taxa) != num_classes:
                raise LabelPolicyError(
                    f"the geofence was built for {len(geofence.taxa)} classes, not {num_classes}", "geofence"
                )
            for rank in ("family", "order", "class", "kingdom"):
                for taxon in sorted(
                    {
                        t
                        for i in np.flatnonzero(self.allowed)
                        if taxonomy is not None and (t := taxonomy.taxon(int(i), rank))
                    }
                ):
                    self._geofence_ids[(rank, taxon)] = cid = str(next_id)
                    self.categories[cid] = f"{taxon} ({rank}, {GEOFENCE_SUFFIX})"
                    next_id += 1
        self._mask = torch.from_numpy(self.allowed)

    def renormalise(self, probs: torch.Tensor) -> torch.Tensor:
        """Zero the masked classes and rescale each row to sum to 1."""
        kept = probs.float() * self._mask
        return kept / kept.sum(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)

    def __call__(self, probs: torch.Tensor) -> list[list[tuple[str, float]]]:
        """``(N, C)`` softmax probabilities -> per row, ``[(category id, probability), ...]`` best first."""
        probs = self.renormalise(probs)
        depth = self.top_k if self.geofence is None else max(self.top_k, min(CANDIDATES, int(self.allowed.sum())))
        conf, idx = probs.topk(depth, dim=1)
        out = [
            [(str(i), float(c)) for i, c in zip(row_i.tolist()[: self.top_k], row_c.tolist()[: self.top_k])]
            for row_i, row_c in zip(idx, conf)
        ]
        geofenced: set[int] = set()
        if self.geofence is not None:
            for row, (row_i, row_c) in enumerate(zip(idx.tolist(), conf.tolist())):
                # A masked class can only come up here with probability 0 (ties); it is no candidate.
                kept = [(i, c) for i, c in zip(row_i, row_c) if self.allowed[i]][:CANDIDATES]
                decision = self.geofence.decide([i for i, _ in kept], [c for _, c in kept])
                # A blocked species is not named, not even below an allowed best class.
                allowed_here = [(c, p) for c, p in out[row] if not self.geofence.blocked[int(c)]]
                if decision is None:
                    out[row] = allowed_here
                    continue
                geofenced.add(row)
                head = (
                    []
                    if decision.taxon is None
                    else [(self._geofence_ids[(decision.rank, decision.taxon)], decision.score)]
                )
                out[row] = head + allowed_here if head else []
        if self.rollup is None:
            return out
        sums = [
            (
                ids,
                torch.zeros(len(probs), len(ids)).index_add_(1, columns, probs[:, classes]).masked_fill_(blocked, -1.0),
            )
            for classes, columns, ids, blocked in self._ranks
        ]
        for row, species in enumerate(out):
            if row in geofenced or species[0][1] >= self.rollup:
                continue
            for ids, rank_sums in sums:
                if not ids:
                    continue
                best, column = rank_sums[row].max(dim=0)
                if float(best) >= self.rollup:
                    species.insert(0, (ids[int(column)], float(best)))
                    break
        return out


def read_species_list(path: str | Path) -> list[str]:
    """Latin names from a text file (one per line, ``#`` comments) or a CSV with a ``latin`` column
    (MegaDetector's ``restrict_to_taxa_list`` format; its rows may name genera or families too).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file names nothing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"species list {path} does not exist")
    text = path.read_text(encoding="utf-8-sig")
    first = text.splitlines()[0] if text.strip() else ""
    header = [c.strip().lower() for c in next(csv.reader([first]))] if first else []
    if "latin" in header:
        column = header.index("latin")
        rows = list(csv.reader(io.StringIO(text)))[1:]
        names = [r[column].strip() for r in rows if len(r) > column and r[column].strip()]
    else:
        names = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        names = [n for n in names if n]
    if not names:
        raise ValueError(f"species list {path} names no species")
    return names
