"""Merging MegaDetector results files: refusals that name the files, the unprocessed-image report, a valid output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ropevit_det.camera_trap.results.md_format import detection_entry, failure_entry, image_entry, make_info
from ropevit_det.camera_trap.results.merge import MergeError, merge_results
from ropevit_det.cli import merge as cli
from tests.camtrap_helpers import save_rgb, validate_md, write_json


def _results(path: Path, files: list[str], *, categories=None, detector="model.pth", classes=None) -> Path:
    images = [image_entry(f, [detection_entry("1", 0.8, [1, 2, 30, 40], 64, 48)]) for f in files]
    data = {
        "info": make_info(detector),
        "detection_categories": categories or {"1": "animal", "2": "person"},
        "images": images,
    }
    if classes is not None:
        data["classification_categories"] = classes
    return write_json(path, data)


def test_merge_keeps_every_image_once_sorted_and_valid(tmp_path):
    a = _results(tmp_path / "a.json", ["cam2/b.jpg", "cam1/a.jpg"])
    b = _results(tmp_path / "b.json", ["cam3/c.jpg"], classes={"0": "Vulpes vulpes"})
    write_json(
        tmp_path / "c.json",
        {
            "info": make_info("model.pth"),
            "detection_categories": {"1": "animal", "2": "person"},
            "images": [failure_entry("cam0/broken.jpg", "cannot read image")],
        },
    )
    merged = merge_results([a, b, tmp_path / "c.json"])
    assert [e["file"] for e in merged.data["images"]] == ["cam0/broken.jpg", "cam1/a.jpg", "cam2/b.jpg", "cam3/c.jpg"]
    assert merged.data["classification_categories"] == {"0": "Vulpes vulpes"}
    assert merged.sources["cam3/c.jpg"] == str(b)
    assert validate_md(merged.data)["errors"] == []


def test_merge_refuses_duplicates_and_conflicts_naming_the_files(tmp_path):
    a = _results(tmp_path / "a.json", ["x.jpg", "y.jpg"])
    b = _results(tmp_path / "b.json", ["y.jpg", "z.jpg"])
    with pytest.raises(MergeError, match=rf"y\.jpg \(in {a} and {b}\)"):
        merge_results([a, b])
    other = _results(tmp_path / "other.json", ["w.jpg"], categories={"1": "animal", "2": "vehicle"})
    with pytest.raises(MergeError, match=rf"detection_categories differ: {a} has .*, {other} has"):
        merge_results([a, other])
    species = _results(tmp_path / "s1.json", ["s.jpg"], classes={"0": "Vulpes vulpes"})
    species2 = _results(tmp_path / "s2.json", ["t.jpg"], classes={"0": "Canis lupus"})
    with pytest.raises(MergeError, match=f"classification_categories differ: {species}"):
        merge_results([species, species2])
    foreign = _results(tmp_path / "md.json", ["v.jpg"], detector="md_v5a.0.0.pt")
    with pytest.raises(MergeError, match=f"{foreign} was written by detector 'md_v5a.0.0.pt'"):
        merge_results([a, foreign])


def test_cli_reports_and_lists_unprocessed_images(tmp_path, caplog):
    card = tmp_path / "card"
    for name in ("a.jpg", "b.jpg", "c.jpg", "sub/d.jpg"):
        save_rgb(card / name, 4, 4)
    a = _results(tmp_path / "a.json", ["a.jpg"])
    b = _results(tmp_path / "b.json", ["sub/d.jpg"])
    out, todo = tmp_path / "merged.json", tmp_path / "todo.txt"
    with caplog.at_level("INFO"):
        assert (
            cli.main([str(a), str(b), "--output", str(out), "--input", str(card), "--unprocessed-list", str(todo)]) == 0
        )
    assert "2 of 4 input images are in no results file, e.g. b.jpg, c.jpg" in caplog.text
    assert todo.read_text().splitlines() == [str(card.resolve() / "b.jpg"), str(card.resolve() / "c.jpg")]
    assert validate_md(out)["errors"] == [] and len(json.loads(out.read_text())["images"]) == 2
    with pytest.raises(SystemExit, match="pass --overwrite"):
        cli.main([str(a), "--output", str(out)])
    with pytest.raises(SystemExit, match="cannot merge: .*a.json and .*a.json"):
        cli.main([str(a), str(a), "--output", str(tmp_path / "again.json")])


def test_unprocessed_list_rerun_with_input_root_completes_the_merge(tmp_path, caplog):
    """The recipe of docs/SCALE.md: shards with one missing, merge, re-run the list with --input-root, merge again.

    The missing images sit in cam3/ and cam3/sub/: without --input-root the list's common folder (cam3) would
    become the root and the entries would read d.jpg and sub/e.jpg, which match nothing in the first merge.
    """
    from ropevit_det.camera_trap.inputs.listing import list_inputs
    from ropevit_det.cli import infer as infer_cli
    from tests.checkpoint_helpers import make_birder_net, save_birder_pt
    from tests.conftest import CONFIGS

    card = tmp_path / "card"
    files = ["cam1/a.jpg", "cam1/b.jpg", "cam3/d.jpg", "cam3/sub/e.jpg"]
    for k, rel in enumerate(files):
        save_rgb(card / rel, 96, 64, color=(40 * k, 120, 60))
    weights = save_birder_pt(make_birder_net(), tmp_path / "weights")
    common = [
        "--config",
        str(CONFIGS / "quick_schedules" / "ropevit_faster_rcnn_instant_test.yaml"),
        "--weights",
        str(weights),
        "--threshold",
        "0",
        "--class-names",
        "animal",
        "--num-workers",
        "0",
        "--no-progress",
    ]
    overrides = ["MODEL.ROI_HEADS.NUM_CLASSES", "1", "TEST.DETECTIONS_PER_IMAGE", "2", "MODEL.SFP.SQUARE_PAD", "0"]

    def infer(*args: str) -> None:
        assert infer_cli.main([*common, *args, *overrides]) == 0

    # A 2-shard job array whose second task never ran.
    infer("--input", str(card), "--shard", "1/2", "--output", str(tmp_path / "shard_1.json"))
    todo, first = tmp_path / "todo.txt", tmp_path / "results.json"
    with caplog.at_level("INFO"):
        assert (
            cli.main(
                [
                    str(tmp_path / "shard_1.json"),
                    "--output",
                    str(first),
                    "--input",
                    str(card),
                    "--unprocessed-list",
                    str(todo),
                ]
            )
            == 0
        )
    assert "2 of 4 input images are in no results file, e.g. cam3/d.jpg, cam3/sub/e.jpg" in caplog.text
    assert f"--input {todo} --input-root {card.resolve()} --output rest.json" in caplog.text
    assert list_inputs(todo)[1] == ["d.jpg", "sub/e.jpg"]  # the default root, the list's common folder: wrong here

    # The re-run, itself as two shards: each lists the paths under --input-root and takes its part of them.
    rest = [tmp_path / f"rest_{k}.json" for k in (1, 2)]
    for k, out in zip((1, 2), rest):
        infer("--input", str(todo), "--input-root", str(card), "--shard", f"{k}/2", "--output", str(out))
    assert [[e["file"] for e in json.loads(p.read_text())["images"]] for p in rest] == [files[2:3], files[3:]]
    caplog.clear()
    complete = tmp_path / "complete.json"
    with caplog.at_level("INFO"):
        assert cli.main([str(first), *map(str, rest), "--output", str(complete), "--input", str(card)]) == 0
    assert "every one of the 4 input images is in the merged results" in caplog.text
    data = json.loads(complete.read_text())
    assert [e["file"] for e in data["images"]] == files and all("failure" not in e for e in data["images"])
    assert validate_md(complete) == {**validate_md(complete), "errors": [], "warnings": []}

    # A root that does not hold the listed images is refused before any model is loaded, with the fix.
    with pytest.raises(
        SystemExit,
        match=r"--input-root: 2 of 2 inputs are not under the input root .*cam1 .*"
        r"give a root that holds them all",
    ):
        infer_cli.main(
            [
                *common,
                "--input",
                str(todo),
                "--input-root",
                str(card / "cam1"),
                "--output",
                str(tmp_path / "never.json"),
            ]
        )
    with pytest.raises(SystemExit, match="--input-root: input root .* is not a folder"):
        infer_cli.main(
            [
                *common,
                "--input",
                str(todo),
                "--input-root",
                str(tmp_path / "nowhere"),
                "--output",
                str(tmp_path / "never.json"),
            ]
        )


@pytest.mark.parametrize(
    "make, named",
    [
        (lambda p: p.write_bytes(bytes(range(256)) * 4), "is not valid JSON"),  # a binary file (an image, a .pth)
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: None, "does not exist"),
        (
            lambda p: p.write_text('{"images": [{"file": "q.jpg", "detections": "none"}], "detection_categories": {}}'),
            r"'q\.jpg'.*'detections' that are not a list",
        ),
    ],
)
def test_a_shard_that_is_not_a_results_file_is_one_line(tmp_path, make, named):
    good = _results(tmp_path / "a.json", ["x.jpg"])
    bad = tmp_path / "shard_2.json"
    make(bad)
    with pytest.raises(SystemExit) as error:
        cli.main(["--output", str(tmp_path / "merged.json"), str(good), str(bad)])
    message = str(error.value)
    assert message.startswith("ERROR: ") and str(bad) in message and "\n" not in message
    assert re.search(named, message), message
    assert not (tmp_path / "merged.json").exists()


def test_an_output_that_cannot_be_written_is_one_line(tmp_path):
    good = _results(tmp_path / "a.json", ["x.jpg"])
    (tmp_path / "merged.json").mkdir()
    with pytest.raises(SystemExit, match="cannot write --output") as error:
        cli.main(["--output", str(tmp_path / "merged.json"), "--overwrite", str(good)])
    assert "\n" not in str(error.value)
