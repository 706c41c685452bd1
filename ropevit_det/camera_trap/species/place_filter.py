"""Which species labels a classifier may give at a place: its taxonomy, the taxa and species list allowed, the
geofence, roll-up.

They apply in this order: the taxa filter, the species list, the geofence (at a country and region), roll-up;
sequence smoothing comes after, on the written file. The allowed classes are those under the given taxa,
intersected with those on the species list; the :class:`~.label_policy.LabelPolicy` built from them and the
geofence is set on the classifier.
"""

from __future__ import annotations

import logging

from ...errors import UserInputError
from ..geofence.class_geofence import ClassGeofence
from ..geofence.speciesnet_rules import GeofenceRules
from .classifier import SpeciesClassifier
from .label_policy import LabelPolicy, LabelPolicyError, read_species_list
from .taxonomy import Taxonomy

__all__ = [
    "SPECIES_FILTER_OPTIONS",
    "SpeciesFilterError",
    "apply_species_filter",
    "check_place_arguments",
    "species_filter_options",
]

logger = logging.getLogger("ropevit_det.infer")


class SpeciesFilterError(UserInputError):
    """A species filter argument cannot be used; ``argument`` names it (``taxonomy``, ``taxa``, ``species_list``,
    ``geofence``, ``country``, ``rollup``, or ``allowed`` for the classes the taxa and the list leave together)."""

    def __init__(self, message: str, argument: str) -> None:
        super().__init__(message, argument=argument)


# The keyword arguments of apply_species_filter, by the name both the CLI flags and BatchJobSettings use.
SPECIES_FILTER_OPTIONS = ("taxonomy", "taxa", "species_list", "geofence", "country", "admin1", "rollup")


def species_filter_options(source: object) -> dict:
    """The species filter options held by ``source`` (parsed flags or the job's settings), for apply_species_filter."""
    return {name: getattr(source, name) for name in SPECIES_FILTER_OPTIONS}


def check_place_arguments(*, geofence: str | None, country: str | None, admin1: str | None) -> None:
    """A geofence needs the cameras' country, and a country or region means nothing without a geofence.

    Raises :class:`SpeciesFilterError` naming the missing argument.
    """
    if (country or admin1) and not geofence:
        raise SpeciesFilterError(
            "a country or region only says where the geofence applies: add the geofence file", "geofence"
        )
    if geofence and not country:
        raise SpeciesFilterError("the geofence needs the cameras' country (ISO 3166-1 alpha-3, e.g. DEU)", "country")
    if admin1 and country and country.upper() != "USA":
        logger.warning(
            "region %s: SpeciesNet's geofence rules name regions only in the USA; it will match no rule in %s",
            admin1,
            country,
        )


def apply_species_filter(
    classifier: SpeciesClassifier,
    *,
    taxonomy: str | None = None,
    taxa: str | None = None,
    species_list: str | None = None,
    geofence: str | None = None,
    country: str | None = None,
    admin1: str | None = None,
    rollup: float | None = None,
) -> SpeciesClassifier:
    """Set on ``classifier`` the label policy of ``taxa`` (comma-separated, any rank), ``species_list`` (a file),
    ``geofence`` (SpeciesNet's JSON, applied at ``country`` / ``admin1``) and ``rollup``; ``taxonomy`` is a CSV
    file (default: parsed from iNat21-style class names).

    Returns ``classifier`` (unchanged when no argument is given). Raises :class:`SpeciesFilterError`.
    """
    check_place_arguments(geofence=geofence, country=country, admin1=admin1)
    if all(value in (None, "") for value in (taxonomy, taxa, species_list, geofence, rollup)):
        return classifier
    names = classifier.class_names
    try:
        tree = Taxonomy.from_csv(taxonomy, names) if taxonomy else Taxonomy.from_class_names(names)
    except (ValueError, FileNotFoundError) as exc:
        raise SpeciesFilterError(str(exc), "taxonomy") from exc
    logger.info("taxonomy known for %d of %d classes", tree.known, len(names))
    allowed: set[int] | None = None
    if taxa:
        allowed, unknown = tree.classes_under(taxa.split(","))
        if unknown:
            raise SpeciesFilterError(
                f"no class of the classifier is under {', '.join(unknown)} (taxonomy known "
                f"for {tree.known} of {len(names)} classes; --taxonomy FILE supplies it)",
                "taxa",
            )
    if species_list:
        try:
            listed = read_species_list(species_list)
        except (ValueError, FileNotFoundError) as exc:
            raise SpeciesFilterError(str(exc), "species_list") from exc
        on_list, missing = tree.classes_under(listed)
        if not on_list:
            raise SpeciesFilterError(f"none of its {len(listed)} names is a class of the classifier", "species_list")
        if missing:
            logger.warning(
                "--species-list: %d of %d names are not among the classifier's classes (e.g. %s)",
                len(missing),
                len(listed),
                ", ".join(missing[:5]),
            )
        allowed = on_list if allowed is None else allowed & on_list
    fence = None
    if geofence:
        try:
            fence = ClassGeofence(
                tree,
                GeofenceRules.from_json(geofence),
                country=country.upper(),
                admin1=admin1.upper() if admin1 else None,
            )
        except (ValueError, FileNotFoundError) as exc:
            raise SpeciesFilterError(str(exc), "geofence") from exc
        (logger.warning if fence.unmapped else logger.info)("%s", fence.describe())
    try:
        policy = LabelPolicy(
            names, allowed=allowed, taxonomy=tree, rollup=rollup, geofence=fence, top_k=classifier.top_k
        )
    except LabelPolicyError as exc:
        raise SpeciesFilterError(str(exc), exc.argument) from exc
    classifier.set_label_policy(policy)
    logger.info(
        "species labels: %d of %d classes may be named%s",
        int(policy.allowed.sum()),
        len(names),
        f", roll-up at {rollup}" if rollup is not None else "",
    )
    return classifier
