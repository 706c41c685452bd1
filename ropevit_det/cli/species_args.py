"""``infer --classify`` options for species that fit the place: class filters, roll-up, sequence smoothing.

Kept apart from ``cli/infer.py``, which only calls :func:`add_species_args`, :func:`build_species_filter` and
:func:`smooth_species_labels`.
"""
from __future__ import annotations

import argparse
import logging

from ropevit_det.camera_trap.results.md_format import ResultsFileError, load_results
from ropevit_det.utils.atomic_json import write_json_atomic
from ropevit_det.camera_trap.species.classifier import SpeciesClassifier
from ropevit_det.camera_trap.species.label_policy import LabelPolicy, LabelPolicyError, read_species_list
from ropevit_det.camera_trap.species.taxonomy import Taxonomy

logger = logging.getLogger("ropevit_det.infer")

_FILTER_FLAGS = ("taxonomy", "taxa", "species_list", "rollup")


def add_species_args(group: argparse._ActionsContainer) -> None:
    """Add the options to ``group`` (a parser or an argument group)."""
    group.add_argument("--taxonomy", metavar="CSV", default=None,
                       help="taxonomy of the classifier's classes: rows 'class name,kingdom,phylum,class,order,"
                            "family,genus,species' (default: parsed from iNat21-style class names)")
    group.add_argument("--taxa", metavar="LIST", default=None,
                       help="name only classes under these taxa, any rank, e.g. Mammalia,Aves (probabilities "
                            "renormalised over them)")
    group.add_argument("--species-list", metavar="FILE", default=None,
                       help="name only these species: latin names one per line, or a CSV with a 'latin' column "
                            "(MegaDetector's taxa-list format)")
    group.add_argument("--rollup", type=float, metavar="T", default=None,
                       help="when the best species is below T, label with the genus, family, ... whose summed "
                            "probability first reaches T, written as 'Taxon (rank)'")
    group.add_argument("--smooth-sequences", action="store_true",
                       help="after the run, smooth labels within each sequence (MegaDetector's sequence-level "
                            "smoothing); sequences from capture times per folder, or from --sequences-cct")
    group.add_argument("--sequences-cct", metavar="FILE", default=None,
                       help="CCT file whose seq_id defines the sequences for --smooth-sequences")
    group.add_argument("--sequence-interval", type=float, default=60.0, metavar="S",
                       help="frames of one folder at most S seconds apart form a sequence (default: %(default)s)")
    group.add_argument("--smooth-threshold", type=float, default=0.5,
                       help="labels below this probability are neither counted nor changed by smoothing "
                            "(default: %(default)s)")


def build_species_filter(args: argparse.Namespace, classifier: SpeciesClassifier | None
                         ) -> SpeciesClassifier | None:
    """Apply ``--taxonomy/--taxa/--species-list/--rollup`` to ``classifier``; errors end the run with the fix."""
    used = [f"--{name.replace('_', '-')}" for name in _FILTER_FLAGS if getattr(args, name) not in (None, "")]
    if args.smooth_sequences:
        used.append("--smooth-sequences")
    if classifier is None:
        if used:
            raise SystemExit(f"ERROR: {', '.join(used)} act on species labels: add --classify")
        return None
    if args.sequences_cct and not args.smooth_sequences:
        raise SystemExit("ERROR: --sequences-cct only applies with --smooth-sequences")
    if not any(getattr(args, name) not in (None, "") for name in _FILTER_FLAGS):
        return classifier
    names = classifier.class_names
    try:
        taxonomy = Taxonomy.from_csv(args.taxonomy, names) if args.taxonomy else Taxonomy.from_class_names(names)
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"ERROR: --taxonomy: {exc}") from None
    logger.info("taxonomy known for %d of %d classes", taxonomy.known, len(names))
    allowed: set[int] | None = None
    if args.taxa:
        allowed, unknown = taxonomy.classes_under(args.taxa.split(","))
        if unknown:
            raise SystemExit(f"ERROR: --taxa: no class of the classifier is under {', '.join(unknown)} (taxonomy known "
                             f"for {taxonomy.known} of {len(names)} classes; --taxonomy FILE supplies it)")
    if args.species_list:
        try:
            listed = read_species_list(args.species_list)
        except (ValueError, FileNotFoundError) as exc:
            raise SystemExit(f"ERROR: --species-list: {exc}") from None
        on_list, missing = taxonomy.classes_under(listed)
        if not on_list:
            raise SystemExit(f"ERROR: --species-list: none of its {len(listed)} names is a class of the classifier")
        if missing:
            logger.warning("--species-list: %d of %d names are not among the classifier's classes (e.g. %s)",
                           len(missing), len(listed), ", ".join(missing[:5]))
        allowed = on_list if allowed is None else allowed & on_list
    try:
        policy = LabelPolicy(names, allowed=allowed, taxonomy=taxonomy, rollup=args.rollup, top_k=classifier.top_k)
    except LabelPolicyError as exc:
        flag = "--rollup" if exc.argument == "rollup" else "--taxa / --species-list"
        raise SystemExit(f"ERROR: {flag}: {exc}") from None
    classifier.set_label_policy(policy)
    logger.info("species labels: %d of %d classes may be named%s", int(policy.allowed.sum()), len(names),
                f", roll-up at {args.rollup}" if args.rollup is not None else "")
    return classifier


def smooth_species_labels(args: argparse.Namespace) -> None:
    """``--smooth-sequences``: rewrite ``args.output`` with labels smoothed per sequence."""
    if not args.smooth_sequences:
        return
    from ropevit_det.camera_trap.postprocess.smoothing import (
        sequences_from_capture_times,
        sequences_from_cct,
        smooth_sequences,
    )

    try:
        results = load_results(args.output)
        if args.sequences_cct:
            sequences = sequences_from_cct(args.sequences_cct, results)
        else:
            sequences = sequences_from_capture_times(results, interval_seconds=args.sequence_interval)
        if not sequences:
            logger.warning("--smooth-sequences: no image has a capture time (EXIF DateTimeOriginal); pass "
                           "--sequences-cct FILE to give the sequences. Labels left as they are.")
            return
        smoothed = smooth_sequences(results, sequences, classification_threshold=args.smooth_threshold)
    except (ValueError, FileNotFoundError, ResultsFileError, ImportError) as exc:
        raise SystemExit(f"ERROR: --smooth-sequences: {exc}") from None
    write_json_atomic(args.output, smoothed, indent=1)
    logger.info("species labels smoothed over %d sequences in %s", len({s["seq_id"] for s in sequences}),
                args.output)
