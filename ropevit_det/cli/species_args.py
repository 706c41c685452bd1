"""``infer --classify`` options for species that fit the place: class filters, geofence, roll-up, smoothing.

They apply in this order: ``--taxa``, ``--species-list``, ``--geofence`` (at ``--country`` / ``--admin1``),
``--rollup``, then ``--smooth-sequences`` on the written file.

The flags only; what they do lives in ``camera_trap.species.place_filter`` and the batch job. ``cli/infer.py``
calls :func:`add_species_args`, :func:`check_species_args` and :func:`species_filter_message`.
"""

from __future__ import annotations

import argparse
import logging

from ropevit_det.camera_trap.geofence.deployment_region import deployments_region
from ropevit_det.camera_trap.species.classifier import SpeciesClassifier
from ropevit_det.camera_trap.species.place_filter import (
    SpeciesFilterError,
    apply_species_filter,
    check_place_arguments,
    species_filter_options,
)
from ropevit_det.cli.common import user_error_message
from ropevit_det.errors import UserInputError

logger = logging.getLogger("ropevit_det.infer")

# The library's argument names (UserInputError.argument) as these flags; "allowed" is what the taxa and list leave.
SPECIES_FLAGS = {
    "taxonomy": "--taxonomy",
    "taxa": "--taxa",
    "species_list": "--species-list",
    "rollup": "--rollup",
    "geofence": "--geofence",
    "country": "--country / --admin1",
    "allowed": "--taxa / --species-list",
}
_FILTER_FLAGS = ("taxonomy", "taxa", "species_list", "geofence", "country", "admin1", "deployments", "rollup")


def add_species_args(group: argparse._ActionsContainer) -> None:
    """Add the options to ``group`` (a parser or an argument group)."""
    group.add_argument(
        "--taxonomy",
        metavar="CSV",
        default=None,
        help="taxonomy of the classifier's classes: rows 'class name,kingdom,phylum,class,order,"
        "family,genus,species' (default: parsed from iNat21-style class names)",
    )
    group.add_argument(
        "--taxa",
        metavar="LIST",
        default=None,
        help="name only classes under these taxa, any rank, e.g. Mammalia,Aves (probabilities renormalised over them)",
    )
    group.add_argument(
        "--species-list",
        metavar="FILE",
        default=None,
        help="name only these species: latin names one per line, or a CSV with a 'latin' column "
        "(MegaDetector's taxa-list format)",
    )
    group.add_argument(
        "--geofence",
        metavar="JSON",
        default=None,
        help="SpeciesNet's geofence file (allow/block rules by country and region): a species not "
        "allowed at --country/--admin1 rolls up to its nearest allowed ancestor",
    )
    group.add_argument(
        "--country",
        metavar="ISO3",
        default=None,
        help="ISO 3166-1 alpha-3 code of the cameras' country, e.g. DEU, KEN, USA (for --geofence)",
    )
    group.add_argument(
        "--admin1",
        metavar="CODE",
        default=None,
        help="first-level region as SpeciesNet's geofence writes it: a US state code, e.g. WY",
    )
    group.add_argument(
        "--deployments",
        metavar="CSV",
        default=None,
        help="the deployments file (as for camtrapdp export): the cameras' country, and US state, from their "
        "coordinates, offline (for --geofence; --country wins; near a border the answer may be wrong, as logged)",
    )
    group.add_argument(
        "--rollup",
        type=float,
        metavar="T",
        default=None,
        help="when the best species is below T, label with the genus, family, ... whose summed "
        "probability first reaches T, written as 'Taxon (rank)'",
    )
    group.add_argument(
        "--smooth-sequences",
        action="store_true",
        help="after the run, smooth labels within each sequence (MegaDetector's sequence-level "
        "smoothing); sequences from capture times per folder, or from --sequences-cct",
    )
    group.add_argument(
        "--sequences-cct",
        metavar="FILE",
        default=None,
        help="CCT file whose seq_id defines the sequences for --smooth-sequences",
    )
    group.add_argument(
        "--sequence-interval",
        type=float,
        default=60.0,
        metavar="S",
        help="frames of one folder at most S seconds apart form a sequence (default: %(default)s)",
    )
    group.add_argument(
        "--smooth-threshold",
        type=float,
        default=0.5,
        help="labels below this probability are neither counted nor changed by smoothing (default: %(default)s)",
    )


def check_species_args(args: argparse.Namespace) -> None:
    """Flags that act on species labels need ``--classify``; ``--sequences-cct`` needs ``--smooth-sequences``."""
    used = [f"--{name.replace('_', '-')}" for name in _FILTER_FLAGS if getattr(args, name) not in (None, "")]
    if args.smooth_sequences:
        used.append("--smooth-sequences")
    if used and not args.classify:
        raise SystemExit(f"ERROR: {', '.join(used)} act on species labels: add --classify")
    if args.classify and args.sequences_cct and not args.smooth_sequences:
        raise SystemExit("ERROR: --sequences-cct only applies with --smooth-sequences")
    if args.deployments:
        country_from_deployments(args)
    try:
        check_place_arguments(geofence=args.geofence, country=args.country, admin1=args.admin1)
    except SpeciesFilterError as exc:
        raise SystemExit(species_filter_message(exc)) from None


def country_from_deployments(args: argparse.Namespace) -> None:
    """``--deployments``: set ``--country`` (and ``--admin1``) from the cameras' coordinates, unless given."""
    if not args.geofence:
        raise SystemExit(
            "ERROR: --deployments: the cameras' places only say where the geofence applies: add --geofence"
        )
    if args.country:
        logger.info("--country %s given: it wins over the deployments' coordinates", args.country)
        return
    try:
        region = deployments_region(args.deployments)
    except UserInputError as exc:  # a bad deployments file names its row and field
        raise SystemExit(f"ERROR: --deployments: {exc}") from None
    except OSError as exc:
        raise SystemExit(user_error_message(exc, {})) from None
    args.country, args.admin1 = region.iso3, args.admin1 or region.admin1
    logger.info("--deployments: the cameras stand in %s%s", region.iso3, f" ({region.admin1})" if region.admin1 else "")
    if region.caveat:
        logger.warning("--deployments: the country may be wrong (%s): pass --country to decide", region.caveat)


def species_filter_message(exc: SpeciesFilterError) -> str:
    """The one-line message of a species filter error, naming the flag behind its argument."""
    return user_error_message(exc, SPECIES_FLAGS)


def build_species_filter(args: argparse.Namespace, classifier: SpeciesClassifier | None) -> SpeciesClassifier | None:
    """Apply ``--taxonomy/--taxa/--species-list/--geofence/--rollup`` to ``classifier``; errors end the run with the
    fix."""
    check_species_args(args)
    if classifier is None:
        return None
    try:
        return apply_species_filter(classifier, **species_filter_options(args))
    except SpeciesFilterError as exc:
        raise SystemExit(species_filter_message(exc)) from None
