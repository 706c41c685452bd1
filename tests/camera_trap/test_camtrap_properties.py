"""Property-based tests (hypothesis) of what reads files people hand around: the MD results loader, merge and the
CCT checks, on generated names (unicode, ``#``, spaces, newlines) and values (NaN, infinite, huge, negative)."""

from __future__ import annotations

import json
import math
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ropevit_det.camera_trap.data.cct_checks import CCTConsistencyError, check_cct_consistency
from ropevit_det.camera_trap.data.split import split_by_location
from ropevit_det.camera_trap.results.md_format import ResultsFileError, load_results
from ropevit_det.camera_trap.results.merge import MergeError, merge_results
from ropevit_det.utils.atomic_json import write_json_atomic

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Names as they occur on shares: any unicode, plus the characters that break line- and comment-based formats.
NAMES = st.text(
    alphabet=st.one_of(st.characters(blacklist_categories=("Cs",)), st.sampled_from("#/ \n\t\\.")),
    min_size=1,
    max_size=24,
)
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(10**30), max_value=10**30))
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, NAMES),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(NAMES, inner, max_size=4)),
    max_leaves=12,
)


def _detection() -> st.SearchStrategy:
    """A detection that is sometimes right and sometimes wrong in each field."""
    return st.fixed_dictionaries(
        {},
        optional={
            "category": st.one_of(st.sampled_from(["1", "2", "7"]), JSON_VALUES),
            "conf": st.one_of(st.floats(0, 1), NUMBERS, JSON_VALUES),
            "bbox": st.one_of(
                st.lists(st.floats(0, 1), min_size=4, max_size=4), st.lists(NUMBERS, max_size=5), JSON_VALUES
            ),
        },
    )


MD_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "info": st.one_of(st.fixed_dictionaries({"detector": NAMES}), JSON_VALUES),
        "detection_categories": st.one_of(st.just({"1": "animal", "2": "person"}), JSON_VALUES),
        "classification_categories": st.one_of(st.just({"0": "Vulpes vulpes"}), JSON_VALUES),
        "images": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "file": st.one_of(NAMES, JSON_VALUES),
                        "detections": st.one_of(st.none(), st.lists(_detection(), max_size=3), JSON_VALUES),
                        "failure": st.one_of(st.none(), NAMES, JSON_VALUES),
                    },
                ),
                max_size=4,
            ),
            JSON_VALUES,
        ),
    },
)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@SETTINGS
@given(content=st.one_of(MD_LIKE.map(json.dumps), JSON_VALUES.map(json.dumps), st.binary(max_size=64)))
def test_load_results_loads_or_raises_its_own_error(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.json"
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        try:
            data = load_results(path)
        except ResultsFileError as error:
            assert str(path) in str(error)
            return
    # What loads is what the tools rely on: every detection has a known category, a finite conf and box.
    for entry in data["images"]:
        assert isinstance(entry["file"], str)
        for det in entry.get("detections") or ():
            assert det["category"] in data["detection_categories"] and _finite(det["conf"])
            assert len(det["bbox"]) == 4 and all(_finite(v) for v in det["bbox"])


def _results_file(folder: Path, name: str, files: list[str]) -> Path:
    path = folder / name
    write_json_atomic(
        path,
        {
            "info": {"detector": "model.pth"},
            "detection_categories": {"1": "animal"},
            "images": [
                {"file": f, "detections": [{"category": "1", "conf": 0.5, "bbox": [0.1, 0.1, 0.2, 0.2]}]} for f in files
            ],
        },
    )
    return path


@SETTINGS
@given(files=st.lists(NAMES, min_size=1, max_size=12, unique=True), data=st.data())
def test_merge_keeps_each_image_exactly_once_or_refuses(files, data):
    shards = data.draw(st.integers(1, 4))
    owner = data.draw(st.lists(st.integers(0, shards - 1), min_size=len(files), max_size=len(files)))
    repeated = data.draw(st.lists(st.sampled_from(files), max_size=2))  # an overlap between two shards
    parts = [[f for f, k in zip(files, owner) if k == shard] for shard in range(shards)]
    for k, file in enumerate(repeated):  # into another shard (or the same one again, with one shard)
        parts[(owner[files.index(file)] + 1 + k) % shards].append(file)
    with tempfile.TemporaryDirectory() as folder:
        paths = [_results_file(Path(folder), f"shard {k} #.json", part) for k, part in enumerate(parts)]
        try:
            merged = merge_results(paths)
        except MergeError as error:
            assert repeated and any(f in str(error) for f in repeated)
            return
        assert not repeated
        write_json_atomic(Path(folder) / "merged.json", merged.data)
        written = [e["file"] for e in load_results(Path(folder) / "merged.json")["images"]]
    assert Counter(written) == Counter(files)  # each image once, names byte for byte


IDS = st.one_of(st.integers(-3, 6), st.sampled_from(["0", "1", "a/b", "a #1", "ü\n"]))
BOXES = st.one_of(
    st.none(),
    st.lists(st.one_of(st.floats(-1e300, 1e300), NUMBERS), min_size=3, max_size=5),
    st.lists(st.floats(0, 1000), min_size=4, max_size=4),
)


@SETTINGS
@given(
    image_ids=st.lists(IDS, min_size=2, max_size=8),
    annotations=st.lists(st.tuples(IDS, BOXES), max_size=10),
    data=st.data(),
)
def test_cct_checks_refuse_by_name_or_leave_nothing_ambiguous(image_ids, annotations, data):
    locations = data.draw(
        st.lists(st.sampled_from(["L1", "L2", "L3 #", "ö"]), min_size=len(image_ids), max_size=len(image_ids))
    )
    cct = {
        "categories": [{"id": 1, "name": "deer"}],
        "images": [
            {"id": i, "file_name": f"{k}.jpg", "location": loc} for k, (i, loc) in enumerate(zip(image_ids, locations))
        ],
        "annotations": [
            {"id": f"a{k}", "image_id": i, "category_id": 1, "bbox": box} for k, (i, box) in enumerate(annotations)
        ],
    }
    try:
        check_cct_consistency(cct, "CCT file x.json")
    except CCTConsistencyError as error:
        assert str(error).startswith("CCT file x.json: ")
        return
    # Passed: ids are unique, every annotation names an image of the same type and value, boxes are sound.
    assert len(set(image_ids)) == len(image_ids)
    assert all(any(type(i) is type(a) and i == a for i in image_ids) for a, _ in annotations)
    assert all(box is None or (len(box) == 4 and all(_finite(v) and v >= 0 for v in box)) for _, box in annotations)
    if len(set(locations)) >= 2:
        splits, _ = split_by_location(cct, val_fraction=0.4)
        placed = Counter(ann["id"] for split in splits.values() for ann in split["annotations"])
        assert placed == Counter(f"a{k}" for k in range(len(annotations)))  # each annotation in one split


@pytest.mark.parametrize("image_ids, annotated", [([1, 1], 1), ([7], "7"), (["7"], 7)])
def test_the_cases_the_properties_are_about(image_ids, annotated):
    """A duplicated id is refused; "7" and 7 are different ids, so an annotation of one is not of the other."""
    cct = {
        "categories": [{"id": 1, "name": "deer"}],
        "images": [{"id": i, "file_name": f"{k}.jpg"} for k, i in enumerate(image_ids)],
        "annotations": [{"id": "a", "image_id": annotated, "category_id": 1}],
    }
    with pytest.raises(CCTConsistencyError):
        check_cct_consistency(cct, "x")
