"""MegaDetector-format output: validator-approved files, journal checkpoints, an atomic final write, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ropevit_det.camera_trap.results.journal import JournalError, existing_journals, journal_path, read_journal
from ropevit_det.camera_trap.results.md_format import (
    FORMAT_VERSION,
    ResultsFileError,
    detection_entry,
    failure_entry,
    image_entry,
    load_results,
    make_info,
)
from ropevit_det.camera_trap.results.output_file import prepare_output
from ropevit_det.camera_trap.results.writer import ResultsWriter
from tests.camtrap_helpers import validate_md
from tests.lock_helpers import as_if_killed

REPO = Path(__file__).resolve().parents[2]


def _entry(i: int) -> dict:
    return image_entry(
        f"cam{i % 3}/IMG_{i:04d}.JPG", [detection_entry(1, 0.5 + (i % 5) / 10, [10, 10, 50, 40], 100, 80)]
    )


def test_detection_entry_normalises_clips_and_rounds():
    det = detection_entry(1, np.float32(0.87654), [10, 20, 50, 60], 100, 200)
    assert det == {"category": "1", "conf": 0.877, "bbox": [0.1, 0.1, 0.4, 0.2]}
    assert type(det["conf"]) is float  # the validator rejects numpy and int confidences
    clipped = detection_entry(2, 0.5, [-5, -5, 120, 50], 100, 100)
    assert clipped["bbox"] == [0.0, 0.0, 1.0, 0.5]


def test_complete_file_passes_the_megadetector_validator(tmp_path):
    out = tmp_path / "results.json"
    info = make_info(
        "ropevit_cct.pth",
        typical_detection_threshold=0.3,
        conservative_detection_threshold=0.1,
        classifier="rope_vit_reg4_b14_capi-inat21",
    )
    with ResultsWriter(
        out, info=info, classification_categories={"0": "Vulpes vulpes", "7": "Homo sapiens"}, checkpoint_every=2
    ) as writer:
        writer.add(
            image_entry(
                "b/IMG_2.JPG",
                [
                    detection_entry(1, 0.4, [0, 0, 10, 10], 100, 100),
                    detection_entry(1, 0.9, [5, 5, 60, 60], 100, 100, classifications=[("7", 0.1), (0, 0.85)]),
                ],
            )
        )
        writer.add(image_entry("a\\IMG_1.JPG", []))  # Windows separators become forward slashes
        writer.add(failure_entry("a/broken.JPG", "cannot read image (OSError: image file is truncated)"))
    data = json.loads(out.read_text())
    report = validate_md(out)
    assert report["errors"] == [] and report["warnings"] == []
    assert data["info"]["format_version"] == FORMAT_VERSION == "1.6"
    assert data["info"]["detector_metadata"]["typical_detection_threshold"] == 0.3
    assert "detection_completion_time" in data["info"]
    assert data["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}
    assert [im["file"] for im in data["images"]] == ["a/IMG_1.JPG", "a/broken.JPG", "b/IMG_2.JPG"]
    assert data["images"][1]["detections"] is None and "truncated" in data["images"][1]["failure"]
    dets = data["images"][2]["detections"]
    assert [d["conf"] for d in dets] == [0.9, 0.4]  # best first
    assert dets[0]["classifications"] == [["0", 0.85], ["7", 0.1]]


def test_validator_is_not_a_rubber_stamp():
    bad = {
        "info": {"format_version": "1.6"},
        "detection_categories": {"1": "animal"},
        "images": [{"file": "x.jpg", "detections": [{"category": "1", "conf": 1, "bbox": [0, 0, 1, 1]}]}],
    }
    assert validate_md(bad)["errors"]  # an int confidence is rejected


def test_checkpoint_then_resume_skips_done_files(tmp_path):
    out = tmp_path / "results.json"
    writer = ResultsWriter(out, info=make_info("m"), checkpoint_every=2)
    for i in range(3):
        writer.add(_entry(i))
    as_if_killed(writer)  # a kill: the results file is only written at the end, the journal has every added image
    assert not out.exists()
    journaled = read_journal(journal_path(out))
    assert [e["file"] for e in journaled.entries] == [_entry(i)["file"] for i in range(3)]
    assert journaled.header["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}

    all_entries = [_entry(i) for i in range(6)]
    with ResultsWriter(out, info=make_info("m"), checkpoint_every=2, resume=True) as resumed:
        assert resumed.done == {e["file"] for e in all_entries[:3]}
        todo = [e for e in all_entries if e["file"] not in resumed.done]
        assert len(todo) == 3
        for e in todo:
            resumed.add(e)
    final = load_results(out)
    assert sorted(im["file"] for im in final["images"]) == sorted(e["file"] for e in all_entries)
    assert "detection_completion_time" in final["info"]
    assert validate_md(out)["errors"] == []
    assert existing_journals(out) == []  # all in the results file now: the journal is gone


def test_torn_last_journal_line_is_dropped_and_redone(tmp_path, caplog):
    out = tmp_path / "results.json"
    writer = ResultsWriter(out, info=make_info("m"))
    for i in range(3):
        writer.add(_entry(i))
    writer.close()
    journal = journal_path(out)
    whole = journal.read_bytes()
    # A power cut in the middle of the 4th line: half of it reached the disk, and no newline.
    line = json.dumps(_entry(3)).encode()
    journal.write_bytes(whole + line[: len(line) // 2])
    with caplog.at_level("WARNING"):
        resumed = ResultsWriter(out, info=make_info("m"), resume=True)
    assert "torn" in caplog.text
    assert resumed.done == {_entry(i)["file"] for i in range(3)}  # the torn image is not done ...
    assert journal.read_bytes() == whole  # ... and its half line was cut off before appending
    resumed.add(_entry(3))  # ... so it is done again, on a line of its own
    resumed.finalize()
    assert [im["file"] for im in load_results(out)["images"]] == sorted(_entry(i)["file"] for i in range(4))


def test_damaged_line_inside_a_journal_is_an_error_not_a_torn_write(tmp_path):
    out = tmp_path / "results.json"
    writer = ResultsWriter(out, info=make_info("m"))
    for i in range(3):
        writer.add(_entry(i))
    writer.close()
    journal = journal_path(out)
    lines = journal.read_bytes().split(b"\n")
    lines[2] = lines[2][:10]  # the 2nd entry is damaged, the 3rd after it is complete
    journal.write_bytes(b"\n".join(lines))
    with pytest.raises(JournalError, match="line 3 is damaged but complete lines follow"):
        read_journal(journal)


def test_ranks_write_their_own_journals_and_rank_0_merges(tmp_path):
    out = tmp_path / "results.json"
    prepare_output(out, resume=False, overwrite=False)
    writers = [ResultsWriter(out, info=make_info("m"), rank=r, world_size=2) for r in range(2)]
    for i in range(6):
        writers[i % 2].add(_entry(i))
    writers[1].close()
    with pytest.raises(RuntimeError, match="only rank 0"):
        writers[1].finalize()
    assert sorted(p.name for p in existing_journals(out)) == [
        "results.json.journal-0.jsonl",
        "results.json.journal-1.jsonl",
    ]
    writers[0].finalize()
    data = load_results(out)
    assert [im["file"] for im in data["images"]] == sorted(_entry(i)["file"] for i in range(6))
    assert validate_md(out)["errors"] == [] and existing_journals(out) == []


def test_exception_inside_the_block_keeps_unsaved_work(tmp_path):
    out = tmp_path / "results.json"
    with pytest.raises(RuntimeError), ResultsWriter(out, info=make_info("m"), checkpoint_every=100) as writer:
        writer.add(_entry(0))
        raise RuntimeError("CUDA error")
    data = load_results(out)
    assert len(data["images"]) == 1 and "detection_completion_time" not in data["info"]


def test_existing_corrupt_or_foreign_outputs_are_refused_clearly(tmp_path):
    out = tmp_path / "results.json"
    ResultsWriter(out, info=make_info("m")).finalize()
    with pytest.raises(FileExistsError, match="resume it, or overwrite it"):
        ResultsWriter(out, info=make_info("m"))
    ResultsWriter(out, info=make_info("m"), overwrite=True).finalize()  # explicit overwrite is allowed
    with pytest.raises(ResultsFileError, match="detection categories"):
        ResultsWriter(out, info=make_info("m"), detection_categories={"1": "animal"}, resume=True)
    out.write_text('{"images": [{"file": "a.jpg", "detections": []')  # cut short
    with pytest.raises(ResultsFileError, match="not valid JSON"):
        ResultsWriter(out, info=make_info("m"), resume=True)
    out.write_text('{"annotations": []}')
    with pytest.raises(ResultsFileError, match="not a MegaDetector results file"):
        ResultsWriter(out, info=make_info("m"), resume=True)
    out.unlink()
    killed = ResultsWriter(out, info=make_info("m"))
    killed.add(_entry(0))
    as_if_killed(killed)  # a killed run: only its journal (and a stale lock) is left
    with pytest.raises(FileExistsError, match="journal-0.jsonl exists"):
        ResultsWriter(out, info=make_info("m"))
    with pytest.raises(JournalError, match="detection categories"):
        ResultsWriter(out, info=make_info("m"), detection_categories={"1": "animal"}, resume=True)


def test_bad_entries_are_rejected_when_added(tmp_path):
    writer = ResultsWriter(tmp_path / "r.json", info=make_info("m"))
    writer.add(_entry(0))
    with pytest.raises(ValueError, match="already in the results"):
        writer.add(_entry(0))
    with pytest.raises(ValueError, match="detection category '9'"):
        writer.add(image_entry("z.jpg", [detection_entry(9, 0.5, [0, 0, 1, 1], 2, 2)]))
    with pytest.raises(ValueError, match="classification category"):
        writer.add(image_entry("y.jpg", [detection_entry(1, 0.5, [0, 0, 1, 1], 2, 2, classifications=[(3, 0.9)])]))


# The child resumes a complete 2-image file, adds a 3rd image, then stops half-way through writing the final
# file (json.dump writes half its text, syncs it to disk and hangs), so the kill lands mid-write every time.
_WRITER_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    from ropevit_det.camera_trap.results.md_format import image_entry, make_info
    from ropevit_det.camera_trap.results.writer import ResultsWriter

    with ResultsWriter(sys.argv[1], info=make_info("m")) as first:
        for i in range(2):
            first.add(image_entry(f"cam/IMG_{i}.JPG", []))

    real_dump = json.dump

    def dump_then_hang(obj, f, **kwargs):
        text = json.dumps(obj, **kwargs)
        f.write(text[: len(text) // 2])
        f.flush()
        os.fsync(f.fileno())
        print("mid-write", flush=True)
        time.sleep(120)

    json.dump = dump_then_hang
    with ResultsWriter(sys.argv[1], info=make_info("m"), resume=True) as writer:
        writer.add(image_entry("cam/IMG_2.JPG", []))
""")


def test_kill_during_the_final_write_never_corrupts_the_output(tmp_path):
    out = tmp_path / "results.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER_SCRIPT, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        line = proc.stdout.readline().strip()
        if line != "mid-write":
            proc.kill()
            pytest.fail(f"writer did not reach the final write: {proc.stderr.read()}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    # The half-written final file exists only as a temporary file ...
    (stale,) = tmp_path.glob(".results.json.*.tmp")
    with pytest.raises(json.JSONDecodeError):
        json.loads(stale.read_text())
    # ... while the output still holds the previous complete file, and the journal the image added since.
    data = load_results(out)
    assert [im["file"] for im in data["images"]] == ["cam/IMG_0.JPG", "cam/IMG_1.JPG"]
    assert validate_md(out)["errors"] == []
    assert [e["file"] for e in read_journal(journal_path(out)).entries] == ["cam/IMG_2.JPG"]
    with ResultsWriter(out, info=make_info("m"), resume=True) as resumed:
        assert resumed.done == {"cam/IMG_0.JPG", "cam/IMG_1.JPG", "cam/IMG_2.JPG"}
        assert not stale.exists()  # the interrupted write's temporary file is cleaned up
        resumed.add(image_entry("cam/IMG_3.JPG", []))
    assert len(load_results(out)["images"]) == 4
