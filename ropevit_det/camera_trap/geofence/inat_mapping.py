"""iNat21 classes as SpeciesNet taxonomy strings, so that SpeciesNet's geofence rules apply to them.

An iNat21 class name carries its lineage (see :mod:`ropevit_det.camera_trap.species.taxonomy`, which parses it); a
SpeciesNet taxonomy string is ``"class;order;family;genus;species"`` in lower case, the species field holding
the specific epithet only. So ``00000_Animalia_Chordata_Mammalia_Carnivora_Felidae_Leopardus_pardalis`` becomes
``"mammalia;carnivora;felidae;leopardus;pardalis"``. A subspecies or a hybrid name keeps only its first epithet:
SpeciesNet's rules stop at the species.

Ancestors are the same strings cut at a rank (``"mammalia;carnivora;felidae;;"``); the kingdom Animalia is
SpeciesNet's ``";;;;"`` ("animal"). The other kingdoms (plants, fungi) have no SpeciesNet taxon at kingdom rank:
their lower ranks map as any other, and SpeciesNet's rules, which list only animals, leave them allowed.

A class without a lineage (a plain name with no ``--taxonomy`` row) cannot be mapped: :func:`map_classes` lists
it so that the caller reports it; the geofence cannot judge it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..species.taxonomy import RANKS, Lineage, Taxonomy
from .speciesnet_rules import ANIMAL

__all__ = ["ClassMapping", "lineage_taxon", "map_classes", "rank_taxon"]

_RANK_DEPTH = {"class": 1, "order": 2, "family": 3, "genus": 4, "species": 5}


def rank_taxon(lineage: Lineage, rank: str) -> str | None:
    """The SpeciesNet taxonomy string of a lineage cut at ``rank`` (``kingdom``..``species``), or None when the
    lineage lacks that rank or the rank has no SpeciesNet string (a kingdom other than Animalia)."""
    kingdom, _phylum, class_, order, family, genus, species = (v.strip() for v in lineage)
    if rank == "kingdom":
        return ANIMAL if kingdom.lower() == "animalia" else None
    if rank == "phylum":
        return None  # SpeciesNet's taxonomy strings have no phylum field
    epithet = species.split()[1] if species and len(species.split()) > 1 else ""
    fields = [class_, order, family, genus, epithet]
    depth = _RANK_DEPTH[rank]
    if not all(fields[:depth]):
        return None
    return ";".join([f.lower() for f in fields[:depth]] + [""] * (len(fields) - depth))


def lineage_taxon(lineage: Lineage) -> str | None:
    """A class's own SpeciesNet taxonomy string: at its species rank, else the lowest rank it has."""
    for rank in reversed(RANKS):
        taxon = rank_taxon(lineage, rank)
        if taxon is not None:
            return taxon
    return None


@dataclass(frozen=True)
class ClassMapping:
    """Per class index its SpeciesNet taxonomy string (None: unmapped), and the unmapped classes' names."""

    taxa: tuple[str | None, ...]
    unmapped: tuple[str, ...]


def map_classes(taxonomy: Taxonomy) -> ClassMapping:
    """Map every class of ``taxonomy`` to a SpeciesNet taxonomy string (see the module docstring)."""
    taxa = tuple(None if lineage is None else lineage_taxon(lineage) for lineage in taxonomy.lineages)
    unmapped = tuple(name for name, taxon in zip(taxonomy.class_names, taxa) if taxon is None)
    return ClassMapping(taxa=taxa, unmapped=unmapped)
