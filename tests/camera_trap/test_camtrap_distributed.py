"""``tools/infer.py --num-gpus 2`` on the CPU (2 processes over gloo, detectron2's launch): the same results as
one process, also when the 2-process run is killed part-way and resumed; and --shard parts that merge back."""

from __future__ import annotations

import json
import signal

import pytest
import torch

from ropevit_det.camera_trap.inputs.sharding import parse_shard, part_of
from ropevit_det.camera_trap.results.journal import existing_journals, read_journal
from tests.camtrap_helpers import MINI_IMAGES, validate_md
from tests.conftest import CONFIGS
from tests.infer_helpers import kill_once_journaled, run_infer, tiny_card_run

QUICK = CONFIGS / "quick_schedules" / "ropevit_mrcnn_instant_test.yaml"
OVERRIDES = ["MODEL.ROI_HEADS.NUM_CLASSES", "1", "TEST.DETECTIONS_PER_IMAGE", "3", "MODEL.SFP.SQUARE_PAD", "0"]
FILES = sorted(p.name for p in MINI_IMAGES.iterdir())[:8]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    return tiny_card_run(tmp_path_factory.mktemp("dist"), QUICK, FILES)


def _run(setup: dict, name: str, *extra: str) -> dict:
    out = setup["root"] / f"{name}.json"
    proc = run_infer(*setup["common"], "--output", str(out), *extra, *OVERRIDES)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"data": json.loads(out.read_text()), "log": proc.stderr, "output": out}


@pytest.fixture(scope="module")
def single(setup) -> dict:
    """The reference: one process, run in this one (saves a start-up), on one thread like the ranks."""
    from ropevit_det.cli import infer as cli

    out = setup["root"] / "single.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the ranks run with OMP_NUM_THREADS=1; same kernels, same rounding
    try:
        assert cli.main([*setup["common"], "--output", str(out), *OVERRIDES]) == 0
    finally:
        torch.set_num_threads(threads)
    return {"data": json.loads(out.read_text()), "output": out}


def test_two_processes_give_the_single_process_result(setup, single):
    two = _run(setup, "two", "--num-gpus", "2")
    assert [e["file"] for e in single["data"]["images"]] == FILES
    assert two["data"]["images"] == single["data"]["images"]  # same entries, boxes and scores, in input order
    assert two["data"]["detection_categories"] == single["data"]["detection_categories"]
    # Each rank did its own contiguous half and wrote its own journal; rank 0 merged them and removed them.
    assert "[rank 0/2]: 4 images in" in two["log"] and "[rank 1/2]: 4 images in" in two["log"]
    assert existing_journals(two["output"]) == []
    assert any(det["conf"] > 0 for e in single["data"]["images"] for det in e["detections"])


def test_killed_two_process_run_resumes_to_the_same_result(setup, single):
    out = setup["root"] / "killed.json"
    args = [*setup["common"], "--output", str(out), "--num-gpus", "2", *OVERRIDES]
    status = kill_once_journaled(args, out, 2, setup["root"] / "killed.log")
    assert status == -signal.SIGKILL
    journals = existing_journals(out)
    done = [e["file"] for path in journals for e in read_journal(path).entries]
    assert not out.exists() and 2 <= len(done) < len(FILES)  # killed part-way, with work in the journals
    resumed = _run(setup, "killed", "--num-gpus", "2", "--resume")
    assert resumed["data"]["images"] == single["data"]["images"]
    assert existing_journals(out) == []


def test_shards_split_the_sorted_input_deterministically():
    items = list(range(10))
    parts = [part_of(items, k, 3) for k in range(3)]
    assert parts == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]  # contiguous, sizes differ by at most one
    assert part_of(items[:2], 2, 3) == []  # more parts than items: some are empty
    assert parse_shard("3/8") == (3, 8)
    for bad in ("0/8", "9/8", "3", "a/b"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def test_shards_merge_back_into_the_single_process_result(setup, single, caplog):
    from ropevit_det.cli import infer as cli
    from ropevit_det.cli import merge as merge_cli

    shards = [setup["root"] / f"shard_{k}.json" for k in (1, 2)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for k, out in zip((1, 2), shards):
            assert cli.main([*setup["common"], "--output", str(out), "--shard", f"{k}/2", *OVERRIDES]) == 0
    finally:
        torch.set_num_threads(threads)
    parts = [json.loads(p.read_text()) for p in shards]
    assert [[e["file"] for e in p["images"]] for p in parts] == [FILES[:4], FILES[4:]]
    assert [p["info"]["shard"] for p in parts] == ["1/2", "2/2"]
    merged = setup["root"] / "merged.json"
    card = setup["common"][setup["common"].index("--input") + 1]
    with caplog.at_level("INFO"):
        assert merge_cli.main([*map(str, reversed(shards)), "--output", str(merged), "--input", card]) == 0
    data = json.loads(merged.read_text())
    assert data["images"] == single["data"]["images"] and "shard" not in data["info"]
    assert "every one of the 8 input images" in caplog.text
    assert validate_md(merged) == {**validate_md(merged), "errors": [], "warnings": []}
