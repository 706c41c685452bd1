"""List files are data, not syntax: what ``merge --unprocessed-list`` writes, ``infer --input`` reads back exactly."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ropevit_det.camera_trap.detection.batch_job import run_batch_job
from ropevit_det.camera_trap.detection.job_settings import BatchJobSettings
from ropevit_det.camera_trap.inputs.list_file import read_list_file, write_list_file
from ropevit_det.camera_trap.inputs.listing import list_inputs
from ropevit_det.cli import merge as merge_cli
from tests.camtrap_helpers import save_rgb
from tests.checkpoint_helpers import make_birder_net, save_birder_pt
from tests.conftest import CONFIGS

QUICK = CONFIGS / "quick_schedules" / "ropevit_faster_rcnn_instant_test.yaml"
OVERRIDES = ["MODEL.ROI_HEADS.NUM_CLASSES", "1", "TEST.DETECTIONS_PER_IMAGE", "3", "MODEL.SFP.SQUARE_PAD", "0"]
HOSTILE = [
    "Camera #3/img 1.jpg",
    "Camera #3/# not a comment.jpg",
    " lead space and  two.jpg",
    "Kamera Über/ß 東京.jpg",
    "line\nbreak.jpg",
    '"quoted".jpg',
    "tab\there.png",
]


def test_lines_are_read_verbatim(tmp_path):
    listing = tmp_path / "todo.txt"
    listing.write_bytes(b'Camera #3/img 1.jpg\r\n  two spaces.jpg\n\n"line\\nbreak.jpg"\n# x.jpg\n')
    assert read_list_file(listing) == ["Camera #3/img 1.jpg", "  two spaces.jpg", "line\nbreak.jpg", "# x.jpg"]
    (tmp_path / "todo.json").write_text(json.dumps(["a #1.jpg", "b\nc.jpg"]))
    assert read_list_file(tmp_path / "todo.json") == ["a #1.jpg", "b\nc.jpg"]
    (tmp_path / "bad.txt").write_text('"unterminated.jpg\n')
    with pytest.raises(ValueError, match="bad.txt, line 1: a line starting with a double quote"):
        read_list_file(tmp_path / "bad.txt")


def test_a_list_with_hashes_and_spaces_keeps_every_image(tmp_path):
    root = tmp_path / "card"
    names = [*HOSTILE, "back\\slash.jpg"]
    for name in names:
        save_rgb(root / name, 8, 8)
    listing = tmp_path / "todo.txt"
    write_list_file(listing, [str(root / name) for name in names])
    top, files = list_inputs(listing, root=root)
    assert top == root.resolve() and files == sorted(names)


@settings(max_examples=200, deadline=None)
@given(names=st.lists(st.text(min_size=1), max_size=8), suffix=st.sampled_from([".txt", ".json"]))
def test_list_file_round_trip(names, suffix):
    """Any names, unicode, ``#``, spaces, line breaks, lone surrogates (non-UTF-8 file names) included."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"list{suffix}"
        write_list_file(path, names)
        assert read_list_file(path) == names


def test_merge_unprocessed_list_reads_back_into_infer(tmp_path):
    root = tmp_path / "card"
    for name in ["done.jpg", *HOSTILE]:
        save_rgb(root / name, 40, 30)
    shard = tmp_path / "shard.json"
    shard.write_text(
        json.dumps(
            {
                "info": {"format_version": "1.4", "detector": "tiny.pt"},
                "detection_categories": {"1": "animal"},
                "images": [{"file": "done.jpg", "detections": []}],
            }
        )
    )
    todo = tmp_path / "todo.txt"
    assert (
        merge_cli.main(
            [
                "--output",
                str(tmp_path / "merged.json"),
                "--input",
                str(root),
                "--unprocessed-list",
                str(todo),
                str(shard),
            ]
        )
        == 0
    )
    assert read_list_file(todo) == [str(root / name) for name in sorted(HOSTILE)]

    weights = save_birder_pt(make_birder_net(), tmp_path / "weights")
    rest = tmp_path / "rest.json"
    run_batch_job(
        BatchJobSettings(
            config_file=str(QUICK),
            weights=str(weights),
            input=str(todo),
            input_root=str(root),
            output=str(rest),
            opts=OVERRIDES,
            class_names="animal",
            num_workers=0,
            progress=False,
        )
    )
    entries = json.loads(rest.read_text())["images"]
    assert sorted(e["file"] for e in entries) == sorted(HOSTILE)
    assert all(e.get("failure") is None for e in entries)  # every listed image found and read
