"""Species that fit the place: iNat21 taxonomy, --taxa / --species-list / --rollup, sequence smoothing.

The classifier is birder's tiny rope_vit_reg4_b14 with random weights and iNat21-style class names written
here. Its head is set to weight 0 and bias log(P), so whatever the crop, the class probabilities are exactly P,
and every filtered or rolled-up probability below is computed by hand from P.
"""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest
import torch
from birder.common import fs_ops
from birder.conf import settings

from ropevit_det.camera_trap.postprocess.smoothing import (
    sequences_from_capture_times,
    sequences_from_cct,
    smooth_sequences,
)
from ropevit_det.camera_trap.species.classifier import load_species_classifier
from ropevit_det.camera_trap.species.label_policy import LabelPolicy, read_species_list
from ropevit_det.camera_trap.species.taxonomy import Taxonomy, parse_inat21_name
from ropevit_det.cli import species_args
from ropevit_det.cli.infer import main as infer_main
from ropevit_det.cli.infer_args import build_parser
from tests.camtrap_helpers import MINI_IMAGES, validate_md, write_json
from tests.checkpoint_helpers import RGB_STATS, TINY_SIZE, _signature, make_birder_net, tiny_cfg
from tests.conftest import CONFIGS

NAMES = [
    "00000_Animalia_Chordata_Mammalia_Carnivora_Felidae_Panthera_leo",
    "00001_Animalia_Chordata_Mammalia_Carnivora_Felidae_Panthera_pardus",
    "00002_Animalia_Chordata_Mammalia_Carnivora_Canidae_Vulpes_vulpes",
    "00003_Animalia_Chordata_Mammalia_Rodentia_Sciuridae_Sciurus_carolinensis",
    "00004_Animalia_Chordata_Aves_Passeriformes_Corvidae_Corvus_corax",
    "00005_Plantae_Tracheophyta_Magnoliopsida_Fagales_Fagaceae_Quercus_robur",
]
P = [0.30, 0.25, 0.15, 0.12, 0.10, 0.08]  # lion, leopard, fox, grey squirrel, raven, oak
QUICK = CONFIGS / "quick_schedules" / "ropevit_faster_rcnn_instant_test.yaml"


PLAIN = ["Panthera leo", "Panthera pardus", "Vulpes vulpes", "Sciurus carolinensis", "Corvus corax", "Quercus robur"]


def write_classifier(directory: Path, names: list[str]) -> Path:
    """A birder checkpoint (birder's own writer) of classes ``names`` whose head always gives the probabilities P."""
    net = make_birder_net(num_classes=len(names))
    with torch.no_grad():
        net.classifier.weight.zero_()
        net.classifier.bias.copy_(torch.tensor(P).log())
    directory.mkdir(parents=True, exist_ok=True)
    with mock.patch.object(settings, "MODELS_DIR", directory):
        fs_ops.checkpoint_model(
            "classifier",
            1,
            net,
            _signature(TINY_SIZE, len(names)),
            {name: i for i, name in enumerate(names)},
            RGB_STATS,
            None,
            None,
            None,
            None,
        )
    return directory / "classifier_1.pt"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """iNat21-style class names (NAMES), probabilities P."""
    return write_classifier(tmp_path_factory.mktemp("inat_style"), NAMES)


def write_taxonomy_csv(path: Path) -> Path:
    """``--taxonomy`` rows for the PLAIN names, with the ranks of their iNat21 twins in NAMES."""
    path.write_text(
        "name,kingdom,phylum,class,order,family,genus,species\n"
        + "".join(
            f"{name},{','.join(parse_inat21_name(inat)[:6])},{name.split()[1]}\n" for name, inat in zip(PLAIN, NAMES)
        )
    )
    return path


@pytest.fixture(scope="module")
def classifier(weights):
    return load_species_classifier(tiny_cfg(num_classes=len(NAMES)), str(weights), top_k=3)


def crops(classifier, n: int = 2) -> list[torch.Tensor]:
    return [torch.rand(3, classifier.input_size, classifier.input_size) for _ in range(n)]


def labels(classifier, policy: LabelPolicy | None) -> list[tuple[str, float]]:
    classifier.set_label_policy(policy)
    try:
        first, second = classifier.classify(crops(classifier))
    finally:
        classifier.set_label_policy(None)
    # The crop does not matter: the head ignores it.
    assert [c for c, _ in first] == [c for c, _ in second]
    assert [p for _, p in first] == pytest.approx([p for _, p in second], abs=1e-6)
    return [(classifier.categories.get(cid) if policy is None else policy.categories[cid], p) for cid, p in first]


def same(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> bool:
    """Same labels in the same order, probabilities equal to 1e-5 (float32 softmax)."""
    assert [name for name, _ in got] == [name for name, _ in expected]
    assert [p for _, p in got] == pytest.approx([p for _, p in expected], abs=1e-5)
    return True


def test_inat21_names_parse_into_ranks():
    assert parse_inat21_name("00000_Animalia_Annelida_Clitellata_Haplotaxida_Lumbricidae_Lumbricus_terrestris") == (
        "Animalia",
        "Annelida",
        "Clitellata",
        "Haplotaxida",
        "Lumbricidae",
        "Lumbricus",
        "Lumbricus terrestris",
    )
    assert parse_inat21_name("Vulpes vulpes") is None
    assert parse_inat21_name("animal") is None
    taxonomy = Taxonomy.from_class_names(NAMES)
    assert taxonomy.known == 6 and taxonomy.taxon(2, "family") == "Canidae"
    assert taxonomy.classes_under(["mammalia", "Corvus corax", "Unicornia"]) == ({0, 1, 2, 3, 4}, ["Unicornia"])


def test_the_classifier_gives_p_unfiltered(classifier):
    assert same(labels(classifier, None), [(NAMES[0], 0.30), (NAMES[1], 0.25), (NAMES[2], 0.15)])


def test_taxa_filter_renormalises_by_hand(classifier):
    taxonomy = Taxonomy.from_class_names(NAMES)
    mammals, _ = taxonomy.classes_under(["Mammalia"])
    policy = LabelPolicy(NAMES, allowed=mammals, taxonomy=taxonomy, top_k=5)
    # 0.30 + 0.25 + 0.15 + 0.12 = 0.82; the raven and the oak never appear, not even among the categories.
    assert same(
        labels(classifier, policy),
        [(NAMES[0], 0.30 / 0.82), (NAMES[1], 0.25 / 0.82), (NAMES[2], 0.15 / 0.82), (NAMES[3], 0.12 / 0.82)],
    )
    assert set(policy.categories) == {"0", "1", "2", "3"}
    cats_and_birds, _ = taxonomy.classes_under(["Felidae", "Aves"])
    policy = LabelPolicy(NAMES, allowed=cats_and_birds, taxonomy=taxonomy, top_k=5)
    assert same(
        labels(classifier, policy),  # 0.30 + 0.25 + 0.10 = 0.65
        [(NAMES[0], 0.30 / 0.65), (NAMES[1], 0.25 / 0.65), (NAMES[4], 0.10 / 0.65)],
    )


@pytest.mark.parametrize(
    "threshold, label, probability",
    [
        (0.25, NAMES[0], 0.30),  # the best species already reaches it: no roll-up
        (0.50, "Panthera (genus)", 0.30 + 0.25),
        (0.65, "Carnivora (order)", 0.30 + 0.25 + 0.15),  # Felidae's 0.55 falls short
        (0.90, "Chordata (phylum)", 0.92),  # Mammalia's 0.82 falls short
    ],
)
def test_rollup_walks_up_until_the_sum_reaches_t(classifier, threshold, label, probability):
    policy = LabelPolicy(NAMES, taxonomy=Taxonomy.from_class_names(NAMES), rollup=threshold, top_k=2)
    species = [(NAMES[0], 0.30), (NAMES[1], 0.25)]
    # The roll-up label comes first, then the top-k species.
    assert same(labels(classifier, policy), species if label == NAMES[0] else [(label, probability), *species])


def test_rollup_after_a_filter_uses_the_renormalised_probabilities(classifier):
    taxonomy = Taxonomy.from_class_names(NAMES)
    mammals, _ = taxonomy.classes_under(["Mammalia"])
    policy = LabelPolicy(NAMES, allowed=mammals, taxonomy=taxonomy, rollup=0.6, top_k=1)
    assert same(labels(classifier, policy), [("Panthera (genus)", 0.55 / 0.82), (NAMES[0], 0.30 / 0.82)])


def test_species_list_and_taxonomy_file(tmp_path, classifier):
    csv_file = write_taxonomy_csv(tmp_path / "taxonomy.csv")
    taxonomy = Taxonomy.from_csv(csv_file, PLAIN)
    assert taxonomy.lineages == Taxonomy.from_class_names(NAMES).lineages
    with pytest.raises(ValueError, match="is not one of the classifier's classes"):
        Taxonomy.from_csv(csv_file, PLAIN[:3])
    # MegaDetector's taxa-list CSV (latin, common) and a plain list give the same classes.
    md_list = tmp_path / "taxa.csv"
    md_list.write_text("latin,common\nvulpes vulpes,red fox\ncorvus corax,common raven\nloxodonta africana,elephant\n")
    txt_list = tmp_path / "species.txt"
    txt_list.write_text("# Kenya, site 3\nVulpes vulpes\nCorvus corax\nLoxodonta africana\n")
    assert read_species_list(md_list) == ["vulpes vulpes", "corvus corax", "loxodonta africana"]
    on_list, missing = Taxonomy.from_class_names(NAMES).classes_under(read_species_list(txt_list))
    assert (on_list, missing) == ({2, 4}, ["Loxodonta africana"])
    policy = LabelPolicy(NAMES, allowed=on_list, top_k=5)
    assert same(labels(classifier, policy), [(NAMES[2], 0.15 / 0.25), (NAMES[4], 0.10 / 0.25)])


def test_cli_flags_build_the_policy_and_say_the_fix(classifier, tmp_path):
    parse = build_parser().parse_args
    base = ["--config", "c", "--weights", "w", "--input", "i", "--output", "o"]
    species_args.build_species_filter(parse([*base, "--classify", "--taxa", "Felidae", "--rollup", "0.5"]), classifier)
    try:
        assert classifier.label_policy is not None and set(classifier.categories) >= {"0", "1"}
        assert not set(classifier.categories) & {"2", "3", "4", "5"}
    finally:
        classifier.set_label_policy(None)
    with pytest.raises(SystemExit, match="--taxa: no class of the classifier is under Mamalia"):
        species_args.build_species_filter(parse([*base, "--classify", "--taxa", "Mamalia"]), classifier)
    with pytest.raises(SystemExit, match="--taxonomy: taxonomy file .* does not exist"):
        species_args.build_species_filter(
            parse([*base, "--classify", "--taxonomy", str(tmp_path / "no.csv"), "--taxa", "Felidae"]), classifier
        )
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{NAMES[0]},Animalia,Chordata\n")
    with pytest.raises(SystemExit, match="--taxonomy: .*bad.csv:1: expected 8 fields"):
        species_args.build_species_filter(
            parse([*base, "--classify", "--taxonomy", str(bad), "--rollup", "0.5"]), classifier
        )
    with pytest.raises(SystemExit, match="add --classify"):
        species_args.build_species_filter(parse([*base, "--rollup", "0.5"]), None)
    # The policy's error names its argument; the command names the flag behind it.
    with pytest.raises(SystemExit, match=r"ERROR: --rollup: roll-up threshold must be in \(0, 1\], got 1.5"):
        species_args.build_species_filter(parse([*base, "--classify", "--rollup", "1.5"]), classifier)
    assert species_args.build_species_filter(parse(base), None) is None


def smoothing_results(labels_per_frame: list[str]) -> dict:
    """One camera folder, frames 2 s apart, one animal per frame labelled with confidence 0.9."""
    ids = {"lion": "0", "fox": "2"}
    return {
        "info": {"format_version": "1.6", "detector": "synthetic"},
        "detection_categories": {"1": "animal"},
        "classification_categories": {"0": NAMES[0], "2": NAMES[2]},
        "images": [
            {
                "file": f"camA/IMG_{k:04d}.JPG",
                "datetime": f"2024:06:01 10:00:{2 * k:02d}",
                "detections": [
                    {"category": "1", "conf": 0.8, "bbox": [0.1, 0.1, 0.2, 0.2], "classifications": [[ids[name], 0.9]]}
                ],
            }
            for k, name in enumerate(labels_per_frame)
        ],
    }


def top_labels(results: dict) -> list[str]:
    return [e["detections"][0]["classifications"][0][0] for e in results["images"]]


def test_smoothing_turns_the_outlier_into_the_majority(tmp_path):
    results = smoothing_results(["lion", "lion", "fox", "lion", "lion"])
    sequences = sequences_from_capture_times(results)
    assert len({s["seq_id"] for s in sequences}) == 1 and len(sequences) == 5
    smoothed = smooth_sequences(results, sequences)
    assert top_labels(smoothed) == ["0"] * 5
    assert top_labels(results) == ["0", "0", "2", "0", "0"]  # the input is left alone
    assert validate_md(smoothed)["errors"] == []
    # Two sequences (a 10-minute gap): the fox alone in its own sequence stays a fox.
    split = smoothing_results(["lion", "lion", "lion", "lion", "fox"])
    split["images"][4]["datetime"] = "2024:06:01 10:10:00"
    assert top_labels(smooth_sequences(split, sequences_from_capture_times(split))) == ["0"] * 4 + ["2"]
    # Sequences from a CCT file's seq_id instead (paths matched as our metrics match them).
    cct = write_json(
        tmp_path / "cct.json",
        {
            "images": [{"id": k, "file_name": f"survey/camA/IMG_{k:04d}.JPG", "seq_id": "s1"} for k in range(5)],
            "categories": [{"id": 1, "name": "animal"}],
        },
    )
    assert top_labels(smooth_sequences(results, sequences_from_cct(cct, results))) == ["0"] * 5


def test_infer_with_taxa_rollup_and_smoothing(weights, tmp_path):
    card = tmp_path / "card" / "camA"
    card.mkdir(parents=True)
    for name in ("serengeti_S1_E03_R3_PICT0038.jpeg", "serengeti_S1_E03_R3_PICT0039.jpeg"):
        (card / name).symlink_to(MINI_IMAGES / name)
    output = tmp_path / "results.json"
    assert (
        infer_main(
            [
                "--config",
                str(QUICK),
                "--weights",
                str(weights),
                "--input",
                str(tmp_path / "card"),
                "--output",
                str(output),
                "--threshold",
                "0",
                "--class-names",
                "animal",
                "--classify",
                "--classifier-weights",
                str(weights),
                "--taxa",
                "Mammalia",
                "--rollup",
                "0.6",
                "--top-k",
                "1",
                "--smooth-sequences",
                "--smooth-threshold",
                "0.1",
                "--num-workers",
                "0",
                "--no-progress",
                "MODEL.ROI_HEADS.NUM_CLASSES",
                "1",
                "TEST.DETECTIONS_PER_IMAGE",
                "2",
                "MODEL.SFP.SQUARE_PAD",
                "0",
                "MODEL.ROPE_VIT.PRETRAIN_IMG_SIZE",
                str(TINY_SIZE),
            ]
        )
        == 0
    )
    results = json.loads(output.read_text())
    assert validate_md(results)["errors"] == []
    categories = results["classification_categories"]
    assert not {"4", "5"} & set(categories) and categories["0"] == NAMES[0]
    detections = [d for e in results["images"] for d in e["detections"]]
    assert detections and all("classifications" in d for d in detections)
    for det in detections:
        # The roll-up wrote [genus, best species]; smoothing (MegaDetector's) keeps only the top label, so a single
        # entry shows it ran: the genus, at 0.55 / 0.82 rounded as we round.
        [[cid, prob]] = det["classifications"]
        assert categories[cid] == "Panthera (genus)" and prob == round(0.55 / 0.82, 3)


def run_infer_classify(weights: Path, tmp_path: Path, *species_flags: str) -> dict:
    """``infer --classify`` over one sample frame with the classifier ``weights``; the results file, validated."""
    card = tmp_path / "card"
    card.mkdir(exist_ok=True)
    (card / "frame.jpeg").symlink_to(MINI_IMAGES / "serengeti_S1_E03_R3_PICT0038.jpeg")
    output = tmp_path / "results.json"
    assert (
        infer_main(
            [
                "--config",
                str(QUICK),
                "--weights",
                str(weights),
                "--input",
                str(card),
                "--output",
                str(output),
                "--threshold",
                "0",
                "--class-names",
                "animal",
                "--classify",
                "--classifier-weights",
                str(weights),
                "--classify-threshold",
                "0",
                "--top-k",
                "5",
                *species_flags,
                "--num-workers",
                "0",
                "--no-progress",
                "MODEL.ROI_HEADS.NUM_CLASSES",
                "1",
                "TEST.DETECTIONS_PER_IMAGE",
                "2",
                "MODEL.SFP.SQUARE_PAD",
                "0",
                "MODEL.ROPE_VIT.PRETRAIN_IMG_SIZE",
                str(TINY_SIZE),
            ]
        )
        == 0
    )
    results = json.loads(output.read_text())
    assert validate_md(results)["errors"] == []
    return results


def written_labels(results: dict) -> list[list[tuple[str, float]]]:
    """Each detection's classifications as (class name, probability), in the written order."""
    names = results["classification_categories"]
    detections = [d for e in results["images"] for d in e["detections"]]
    assert detections and all("classifications" in d for d in detections)
    return [[(names[cid], p) for cid, p in d["classifications"]] for d in detections]


def test_infer_with_species_list_names_only_the_listed_species(weights, tmp_path):
    species = tmp_path / "kenya_site3.txt"
    species.write_text("# site 3\nVulpes vulpes\nCorvus corax\nLoxodonta africana\n")
    results = run_infer_classify(weights, tmp_path, "--species-list", str(species))
    assert set(results["classification_categories"].values()) == {NAMES[2], NAMES[4]}
    for labels_of_detection in written_labels(results):  # fox 0.15 and raven 0.10, renormalised over 0.25
        assert labels_of_detection == [(NAMES[2], round(0.15 / 0.25, 3)), (NAMES[4], round(0.10 / 0.25, 3))]


def test_infer_with_taxonomy_file_filters_plain_class_names(tmp_path):
    # Latin names alone carry no ranks: --taxa Felidae works only through the --taxonomy file.
    plain_weights = write_classifier(tmp_path / "plain", PLAIN)
    taxonomy = write_taxonomy_csv(tmp_path / "taxonomy.csv")
    results = run_infer_classify(plain_weights, tmp_path, "--taxonomy", str(taxonomy), "--taxa", "Felidae")
    assert set(results["classification_categories"].values()) == {"Panthera leo", "Panthera pardus"}
    for labels_of_detection in written_labels(results):  # lion 0.30 and leopard 0.25, renormalised over 0.55
        assert labels_of_detection == [
            ("Panthera leo", round(0.30 / 0.55, 3)),
            ("Panthera pardus", round(0.25 / 0.55, 3)),
        ]
