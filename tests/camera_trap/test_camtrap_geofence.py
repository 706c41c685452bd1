"""Geofencing: our decisions equal SpeciesNet's own ``geofence_utils`` on every case of a map written here;
coordinates resolve offline to the right countries; iNat21 classes map to SpeciesNet taxonomy strings; the
label policy and ``infer --geofence`` apply it.

The reference is SpeciesNet's code itself (tests/speciesnet_reference.py loads it without its model stack).
"""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from ropevit_det.camera_trap.geofence.class_geofence import ClassGeofence
from ropevit_det.camera_trap.geofence.inat_mapping import map_classes, rank_taxon
from ropevit_det.camera_trap.geofence.location import camera_region, locate, region_for, us_state_code
from ropevit_det.camera_trap.geofence.speciesnet_rules import ANIMAL, GeofenceRules, ancestor
from ropevit_det.camera_trap.species.label_policy import LabelPolicy
from ropevit_det.camera_trap.species.taxonomy import Taxonomy
from ropevit_det.cli import species_args
from ropevit_det.cli.infer import build_parser
from tests import speciesnet_reference
from tests.camera_trap.test_camtrap_species_filter import (  # noqa: F401 (fixtures)
    NAMES,
    P,
    classifier,
    run_infer_classify,
    weights,
    written_labels,
)

LEOPARDUS = "mammalia;carnivora;felidae;leopardus;pardalis"
URSUS = "mammalia;carnivora;ursidae;ursus;arctos"
CORVUS = "aves;passeriformes;corvidae;corvus;corax"
SCIURUS = "mammalia;rodentia;sciuridae;sciurus;carolinensis"
VULPES = "mammalia;carnivora;canidae;vulpes;vulpes"  # not in the map
PANTHERA = "mammalia;carnivora;felidae;panthera;leo"
LABELS = (LEOPARDUS, URSUS, CORVUS, SCIURUS, VULPES, PANTHERA)
MAP = {
    LEOPARDUS: {"allow": {"USA": ["TX", "AZ"], "MEX": [], "BRA": []}},  # allow, with regions in one country
    URSUS: {"block": {"GBR": [], "USA": ["FL", "TX"]}},  # block a whole country, block some regions
    CORVUS: {"allow": {"USA": [], "DEU": []}, "block": {"USA": ["HI"]}},  # both kinds on one taxon
    SCIURUS: {"allow": {}},  # an empty rule: SpeciesNet treats it as no rule
    PANTHERA: {"allow": {"KEN": [], "TZA": []}},
    "mammalia;carnivora;ursidae;;": {"block": {"ISL": [], "GBR": []}},  # a family blocked: on to the order
    "mammalia;carnivora;felidae;;": {"allow": {"KEN": [], "USA": [], "MEX": [], "BRA": [], "TZA": []}},
    "mammalia;carnivora;;;": {"block": {"ATA": [], "NZL": [], "GBR": []}},  # a bear in Britain: "mammal"
    "mammalia;;;;": {"block": {"ATA": [], "NZL": []}},  # in New Zealand a mammal rolls up to "animal"
    "aves;;;;": {"block": {"ATA": []}},
    ANIMAL: {"block": {"ATA": []}},  # nothing allowed in Antarctica: the roll-up fails
}
COUNTRIES = (None, "USA", "MEX", "BRA", "GBR", "DEU", "KEN", "TZA", "ISL", "NZL", "ATA")
REGIONS = (None, "TX", "AZ", "FL", "HI", "CA")


@pytest.fixture(scope="module")
def reference():
    return speciesnet_reference.load()


def speciesnet_labels(taxa):
    """SpeciesNet labels (``uuid;class;order;family;genus;species;common name``) and its taxonomy map, holding
    every ancestor of ``taxa`` as SpeciesNet's taxonomy holds its labels' ancestors."""
    taxonomy_map, labels = {}, {}
    for k, taxon in enumerate(taxa):
        labels[taxon] = f"uuid-{k};{taxon};name {k}"
        taxonomy_map[taxon] = labels[taxon]
        for rank in ("genus", "family", "order", "class"):
            up = ancestor(taxon, rank)
            if up is not None:
                taxonomy_map.setdefault(up, f"uuid-{rank}-{len(taxonomy_map)};{up};{rank}")
    return labels, taxonomy_map


def test_every_label_country_region_decision_equals_speciesnet(reference):
    rules = GeofenceRules(MAP)
    labels, _ = speciesnet_labels(list(MAP) + [VULPES])
    cases = 0
    for (taxon, label), country, region in itertools.product(labels.items(), COUNTRIES, REGIONS):
        theirs = reference.geofence_utils.should_geofence_animal_classification(label, country, region, MAP, True)
        assert rules.blocks(taxon, country, region) == theirs, (taxon, country, region)
        cases += 1
    assert cases == len(labels) * len(COUNTRIES) * len(REGIONS)
    # The named cases, spelled out.
    assert rules.blocks(LEOPARDUS, "USA", "TX") is False and rules.blocks(LEOPARDUS, "USA", "CA") is True
    assert rules.blocks(LEOPARDUS, "USA", None) is False  # allowed with regions, region unknown: allowed
    assert rules.blocks(LEOPARDUS, "DEU", None) is True  # not on the allow list
    assert rules.blocks(URSUS, "GBR", None) is True and rules.blocks(URSUS, "USA", "FL") is True
    assert rules.blocks(URSUS, "USA", "CA") is False
    assert rules.blocks(VULPES, "ATA", None) is False  # not in the map
    # Bad codes: both raise.
    for country, region in (("US", None), ("USA", "TEX")):
        with pytest.raises(ValueError):
            reference.geofence_utils.should_geofence_animal_classification(labels[URSUS], country, region, MAP, True)
        with pytest.raises(ValueError, match="alpha-3|two-letter"):
            rules.blocks(URSUS, country, region)


def test_every_ranked_list_rolls_up_as_speciesnet_does(reference):
    rules = GeofenceRules(MAP)
    taxa = list(LABELS)
    labels, taxonomy_map = speciesnet_labels(taxa)
    taxonomy_map[ANIMAL] = reference.constants.Classification.ANIMAL.value
    outcomes = set()
    scores = [0.4, 0.25, 0.2, 0.1, 0.05]
    for ranked in itertools.permutations(taxa, 5):
        for country, region in itertools.product(COUNTRIES, REGIONS):
            label, score, source = reference.geofence_utils.geofence_animal_classification(
                labels=[labels[t] for t in ranked],
                scores=scores,
                country=country,
                admin1_region=region,
                taxonomy_map=taxonomy_map,
                geofence_map=MAP,
                enable_geofence=True,
            )
            ours = rules.decide(list(ranked), scores, country, region)
            if source == "classifier":
                assert (ours.taxon, ours.rank, ours.failed) == (ranked[0], None, False)
            elif source.endswith("rollup_failed"):
                assert ours.failed and ours.taxon is None
            else:
                rank = source.rsplit("rollup_to_", 1)[1]
                assert (ours.taxon, ours.rank) == (reference.taxonomy_utils.get_full_class_string(label), rank)
            assert ours.score == score
            outcomes.add(source)
    # Every kind of outcome occurred.
    assert outcomes == {
        "classifier",
        "classifier+geofence+rollup_to_family",
        "classifier+geofence+rollup_to_order",
        "classifier+geofence+rollup_to_class",
        "classifier+geofence+rollup_to_kingdom",
        "classifier+geofence+rollup_failed",
    }


def test_rules_file_is_checked(tmp_path):
    path = tmp_path / "geofence.json"
    path.write_text(json.dumps(MAP))
    assert len(GeofenceRules.from_json(path)) == len(MAP)
    path.write_text(json.dumps({"mammalia;carnivora": {"allow": {"USA": []}}}))
    with pytest.raises(ValueError, match="has 2 fields; SpeciesNet's have 5"):
        GeofenceRules.from_json(path)
    path.write_text(json.dumps({URSUS: {"deny": {"USA": []}}}))
    with pytest.raises(ValueError, match="'allow' and/or 'block'"):
        GeofenceRules.from_json(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        GeofenceRules.from_json(tmp_path / "none.json")


def test_inat21_classes_map_to_speciesnet_strings():
    mapping = map_classes(
        Taxonomy.from_class_names(
            [
                "00000_Animalia_Chordata_Mammalia_Carnivora_Felidae_Leopardus_pardalis",
                "00001_Plantae_Tracheophyta_Magnoliopsida_Asterales_Asteraceae_Symphyotrichum_novae-angliae",
                "00002_Animalia_Chordata_Mammalia_Carnivora_Canidae_Canis_lupus_familiaris",  # a subspecies
                "Vulpes vulpes",
            ]
        )
    )  # no lineage
    assert mapping.taxa == (
        LEOPARDUS,
        "magnoliopsida;asterales;asteraceae;symphyotrichum;novae-angliae",
        "mammalia;carnivora;canidae;canis;lupus",
        None,
    )
    assert mapping.unmapped == ("Vulpes vulpes",)
    lineage = Taxonomy.from_class_names(NAMES).lineages[0]
    assert [rank_taxon(lineage, r) for r in ("kingdom", "class", "family", "species")] == [
        ANIMAL,
        "mammalia;;;;",
        "mammalia;carnivora;felidae;;",
        PANTHERA,
    ]
    plant = Taxonomy.from_class_names(NAMES).lineages[5]
    assert rank_taxon(plant, "kingdom") is None  # SpeciesNet has no plant kingdom: never blocked


def test_label_policy_geofence_equals_speciesnet_on_the_top_five(reference):
    """NAMES (lion, leopard, fox, squirrel, raven, oak) with probabilities P: the policy's label equals what
    SpeciesNet's function makes of the same top five, at every place."""
    taxonomy = Taxonomy.from_class_names(NAMES)
    taxa = map_classes(taxonomy).taxa
    rules_map = {
        PANTHERA: {"allow": {"KEN": [], "TZA": []}},
        taxa[1]: {"allow": {"KEN": []}},
        "mammalia;carnivora;felidae;;": {"block": {"ISL": [], "ATA": []}},
        "mammalia;carnivora;;;": {"block": {"ATA": []}},
    }
    labels, taxonomy_map = speciesnet_labels(taxa)
    taxonomy_map[ANIMAL] = reference.constants.Classification.ANIMAL.value
    probs = torch.tensor([P])
    checked = set()
    for country in ("KEN", "TZA", "DEU", "ISL", "ATA"):
        policy = LabelPolicy(
            NAMES,
            taxonomy=taxonomy,
            top_k=3,
            geofence=ClassGeofence(taxonomy, GeofenceRules(rules_map), country=country),
        )
        [row] = policy(probs)
        label, score, source = reference.geofence_utils.geofence_animal_classification(
            labels=[labels[t] for t in taxa[:5]],
            scores=P[:5],
            country=country,
            admin1_region=None,
            taxonomy_map=taxonomy_map,
            geofence_map=rules_map,
            enable_geofence=True,
        )
        names = [(policy.categories[c], p) for c, p in row]
        if source == "classifier":
            assert names[0][0] == NAMES[0]
        elif source.endswith("rollup_failed"):
            assert names == []  # nothing is named where nothing is allowed
        else:
            rank = source.rsplit("rollup_to_", 1)[1]
            taxon_name = {ANIMAL: "Animalia"}.get(reference.taxonomy_utils.get_full_class_string(label))
            taxon_name = (
                taxon_name
                or reference.taxonomy_utils.get_full_class_string(label)
                .split(";")[("class", "order", "family").index(rank)]
                .capitalize()
            )
            assert names[0] == (f"{taxon_name} ({rank}, geofence)", pytest.approx(score, abs=1e-6))
            # The blocked species are not named below the roll-up label.
            assert all(policy.geofence.blocked[int(c)] == 0 for c, _ in row[1:])
        checked.add(source)
    assert checked == {
        "classifier",
        "classifier+geofence+rollup_to_family",
        "classifier+geofence+rollup_to_order",
        "classifier+geofence+rollup_to_class",
    }


def test_a_blocked_species_is_not_listed_below_an_allowed_best_class():
    taxonomy = Taxonomy.from_class_names(NAMES)
    rules = GeofenceRules({map_classes(taxonomy).taxa[1]: {"allow": {"KEN": []}}})  # the leopard: Kenya only
    policy = LabelPolicy(NAMES, taxonomy=taxonomy, top_k=3, geofence=ClassGeofence(taxonomy, rules, country="DEU"))
    [row] = policy(torch.tensor([P]))
    assert [policy.categories[c] for c, _ in row] == [NAMES[0], NAMES[2]]  # lion, fox; no leopard


def test_rollup_never_lands_on_a_blocked_taxon():
    taxonomy = Taxonomy.from_class_names(NAMES)
    rules = GeofenceRules({"mammalia;carnivora;felidae;panthera;": {"allow": {"KEN": []}}})
    # At 0.5 the plain roll-up would say Panthera (0.55); in DEU the genus is blocked: Felidae is next (0.55).
    policy = LabelPolicy(
        NAMES, taxonomy=taxonomy, rollup=0.5, top_k=1, geofence=ClassGeofence(taxonomy, rules, country="DEU")
    )
    [row] = policy(torch.tensor([P]))
    assert policy.categories[row[0][0]] == "Felidae (family)" and row[0][1] == pytest.approx(0.55, abs=1e-6)


def test_cli_flags_say_the_fix(classifier, tmp_path):  # noqa: F811
    parse = build_parser().parse_args
    base = ["--config", "c", "--weights", "w", "--input", "i", "--output", "o", "--classify"]
    rules = tmp_path / "geofence.json"
    rules.write_text(json.dumps(MAP))
    with pytest.raises(SystemExit, match="--country / --admin1: the geofence needs the cameras' country"):
        species_args.build_species_filter(parse([*base, "--geofence", str(rules)]), object())
    with pytest.raises(
        SystemExit, match="--geofence: a country or region only says where the geofence applies: add the geofence file"
    ):
        species_args.build_species_filter(parse([*base, "--country", "DEU"]), object())
    with pytest.raises(SystemExit, match="--geofence: country 'DE' is not an ISO 3166-1 alpha-3 code"):
        species_args.build_species_filter(parse([*base, "--geofence", str(rules), "--country", "DE"]), classifier)
    with pytest.raises(SystemExit, match="--geofence: geofence file .* does not exist"):
        species_args.build_species_filter(
            parse([*base, "--geofence", str(tmp_path / "no.json"), "--country", "DEU"]), classifier
        )
    species_args.build_species_filter(
        parse([*base, "--geofence", str(rules), "--country", "usa", "--admin1", "tx"]), classifier
    )
    try:
        geofence = classifier.label_policy.geofence
        assert (geofence.country, geofence.admin1) == ("USA", "TX")
    finally:
        classifier.set_label_policy(None)


def test_infer_with_geofence_rolls_the_lion_up_in_germany(weights, tmp_path):  # noqa: F811
    rules = tmp_path / "geofence.json"
    rules.write_text(json.dumps({PANTHERA: {"allow": {"KEN": [], "TZA": []}}}))
    results = run_infer_classify(weights, tmp_path, "--geofence", str(rules), "--country", "deu")
    for labels_of_detection in written_labels(results):
        # Lion blocked: Felidae = lion + leopard = 0.55; then the allowed species of the top five.
        assert labels_of_detection[0] == ("Felidae (family, geofence)", 0.55)
        assert [name for name, _ in labels_of_detection[1:]] == [NAMES[1], NAMES[2], NAMES[3], NAMES[4]]


@pytest.mark.parametrize(
    "latitude, longitude, iso3, admin1",
    [
        (52.52, 13.405, "DEU", None),  # Berlin
        (-1.2864, 36.8172, "KEN", None),  # Nairobi
        (-2.33, 34.83, "TZA", None),  # Serengeti National Park (the Snapshot Serengeti sample frames)
        (-41.29, 174.78, "NZL", None),  # Wellington (the Wellington Camera Traps sample frame)
        (43.48, -110.76, "USA", "WY"),  # Jackson, Wyoming, at the foot of the Tetons
        (38.9, -77.03, "USA", "DC"),
    ],
)
def test_known_places_resolve_offline(latitude, longitude, iso3, admin1):
    found = region_for(latitude, longitude)
    assert (found.iso3, found.admin1) == (iso3, admin1)
    iso3_, admin1_, _ = found  # unpacks as (iso3, admin1, caveat)
    assert iso3_ == iso3 and admin1_ == admin1


def test_region_codes_equal_speciesnets(reference):
    # SpeciesNet's admin1 is the US state code (its own table), and nothing outside the USA.
    for name, code in reference.geolocation.US_ADMIN1_REGION_TO_ABBREVIATION.items():
        assert us_state_code(name) == code, name
    for latitude, longitude in (
        (43.48, -110.76),
        (38.9, -77.03),
        (34.05, -118.24),
        (25.76, -80.19),
        (61.2, -149.9),
        (18.4, -66.1),
    ):  # ... and San Juan, Puerto Rico, a US territory
        assert camera_region(
            country="USA", latitude=latitude, longitude=longitude
        ).admin1 == reference.geolocation.find_admin1_region("USA", None, latitude, longitude)
    assert region_for(18.4, -66.1).iso3 == "PRI"  # from coordinates alone: Puerto Rico's own code


def test_missing_reference_fails_with_the_install_command(monkeypatch):
    monkeypatch.setattr(speciesnet_reference.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=r"pip install --no-deps speciesnet==5\.0\.6"):
        speciesnet_reference.load()


def test_border_caveat_and_explicit_country_wins():
    # Old Faithful, Yellowstone, lies in Wyoming; the nearest town is West Yellowstone, Montana, 31 km away.
    old_faithful = locate(44.4605, -110.8281)
    assert old_faithful.iso3 == "USA" and old_faithful.admin1 == "MT"  # the nearest-place answer is wrong ...
    assert "region may be wrong" in old_faithful.caveat and "31 km away" in old_faithful.caveat  # ... and says so
    assert camera_region(country="USA", admin1="wy", latitude=44.4605, longitude=-110.8281) == ("USA", "WY", None)
    # Basel: three countries within a few km.
    basel = locate(47.6, 7.59)
    assert "near a border" in basel.caveat and all(c in basel.caveat for c in ("CHE", "DEU", "FRA"))
    assert camera_region(country="che", latitude=47.6, longitude=7.59).iso3 == "CHE"  # explicit country wins
    assert region_for(52.52, 13.405).caveat is None  # the middle of Berlin
    with pytest.raises(ValueError, match="were the two swapped"):
        locate(13.4, 152.5 + 100)


DEPLOYMENT_COLUMNS = "deploymentID,latitude,longitude,deploymentStart,deploymentEnd,timezone,folder\n"


def test_deployments_name_the_country_for_the_geofence(tmp_path):
    rules = tmp_path / "geofence.json"
    rules.write_text(json.dumps(MAP))
    parse = build_parser().parse_args
    base = ["--config", "c", "--weights", "w", "--input", "i", "--output", "o", "--classify", "--geofence", str(rules)]
    german = tmp_path / "germany.csv"
    german.write_text(
        DEPLOYMENT_COLUMNS
        + "cam1,52.52,13.40,2024-05-01,2024-06-01,Europe/Berlin,cam1\n"
        + "cam2,48.14,11.58,2024-05-01,2024-06-01,Europe/Berlin,cam2\n"
    )
    args = parse([*base, "--deployments", str(german)])
    species_args.check_species_args(args)
    assert (args.country, args.admin1) == ("DEU", None)
    # An explicit country wins over the coordinates.
    args = parse([*base, "--deployments", str(german), "--country", "AUT"])
    species_args.check_species_args(args)
    assert args.country == "AUT"
    # Cameras in two countries: one run geofences for one country, and the message names both.
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(german.read_text() + "cam3,-1.29,36.82,2024-05-01,2024-06-01,Africa/Nairobi,cam3\n")
    with pytest.raises(SystemExit, match=r"--deployments: .* stand in DEU, KEN .*--country"):
        species_args.check_species_args(parse([*base, "--deployments", str(mixed)]))
    # A bad file names its row and field; without --geofence the coordinates have nothing to say.
    broken = tmp_path / "broken.csv"
    broken.write_text(DEPLOYMENT_COLUMNS + "cam1,95,13.40,2024-05-01,2024-06-01,Europe/Berlin,cam1\n")
    with pytest.raises(SystemExit, match=r"--deployments: .*latitude"):
        species_args.check_species_args(parse([*base, "--deployments", str(broken)]))
    no_fence = [a for a in base if a not in ("--geofence", str(rules))]
    with pytest.raises(SystemExit, match="add --geofence"):
        species_args.check_species_args(parse([*no_fence, "--deployments", str(german)]))
