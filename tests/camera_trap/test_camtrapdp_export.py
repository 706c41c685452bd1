"""Export of the sample survey to Camtrap DP 1.0.2, validated with frictionless offline; broken packages fail
naming the field; undated and failed media are refused or counted, never dropped without a word."""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import pytest

from ropevit_det.camera_trap.camtrapdp.deployments import DeploymentsError
from ropevit_det.camera_trap.camtrapdp.export import ExportError, ExportOptions, export_package
from ropevit_det.camera_trap.camtrapdp.schema import PROFILE_URL, field_names
from ropevit_det.camera_trap.camtrapdp.validate import validate_package
from ropevit_det.cli import camtrapdp as cli
from tests.camtrapdp_helpers import DEPLOYMENTS, make_survey, read_csv, rows_with_folder, write_deployments


@pytest.fixture()
def no_network(monkeypatch):
    """Any connection attempt fails the test: validation must use the shipped profile and schemas only."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def export(tmp_path: Path, **options) -> tuple[Path, object]:
    survey = make_survey(tmp_path)
    output = tmp_path / "package"
    report = export_package(
        results=survey.results,
        deployments=survey.deployments,
        images=survey.root,
        output=output,
        options=ExportOptions(**options),
    )
    return output, report


def test_sample_survey_exports_to_a_valid_package_offline(tmp_path: Path, no_network) -> None:
    output, report = export(tmp_path)
    result = validate_package(output)
    assert result.valid, result.describe()

    for table in ("deployments", "media", "observations"):
        header, _ = read_csv(output / f"{table}.csv")
        assert header == field_names(table)  # every column, in schema order
    _, media = read_csv(output / "media.csv")
    _, observations = read_csv(output / "observations.csv")
    descriptor = json.loads((output / "datapackage.json").read_text(encoding="utf-8"))
    assert descriptor["profile"] == PROFILE_URL

    assert len(media) == report.images == 21
    assert {m["filePath"] for m in media} >= {"pw/pw_102542.jpg", "serengeti/serengeti_S1_E03_R3_PICT0038.jpeg"}
    pict38 = next(m for m in media if m["fileName"] == "serengeti_S1_E03_R3_PICT0038.jpeg")
    assert pict38["timestamp"] == "2010-08-07T01:04:15+03:00"  # EXIF time + the deployment's zone

    on_media = [o for o in observations if o["observationLevel"] == "media"]
    kinds = [o["observationType"] for o in on_media]
    # 18 animal boxes, 1 person box, 3 blank frames; the 0.05 box is under the results' 0.2 threshold.
    assert (kinds.count("animal"), kinds.count("human"), kinds.count("blank")) == (18, 1, 3)
    assert report.media_observations == 22
    assert all(o["classificationMethod"] == "machine" and "model_final.pth" in o["classifiedBy"] for o in on_media)
    hippo = [o for o in on_media if o["scientificName"] == "Hippopotamus amphibius"]
    assert len(hippo) == 4 and all(o["classificationProbability"] == "0.800" and o["bboxX"] for o in hippo)
    assert descriptor["taxonomic"][0]["scientificName"] == "Hippopotamus amphibius"
    assert descriptor["taxonomic"][0]["family"] == "Hippopotamidae"

    # Events: two Serengeti bursts, three blank frames days apart, one pw burst.
    events = [o for o in observations if o["observationLevel"] == "event"]
    assert report.events == 6 and len({o["eventID"] for o in events}) == 6
    pw_event = [o for o in events if o["deploymentID"] == "pw-1"]
    assert {(o["observationType"], o["count"]) for o in pw_event} == {("animal", "1"), ("human", "1")}
    assert pw_event[0]["eventStart"] == "2021-06-01T10:00:00-07:00"
    assert pw_event[0]["eventEnd"] == "2021-06-01T10:00:26-07:00"
    assert sum(o["observationType"] == "blank" for o in events) == 3
    assert any("contributors" in d for d in report.defaults)


def test_event_count_is_the_most_individuals_in_one_frame(tmp_path: Path) -> None:
    survey = make_survey(tmp_path)
    # Three deer in the second frame of the first Serengeti burst, one in the first.
    entry = next(e for e in survey.data["images"] if e["file"].endswith("PICT0039.jpeg"))
    entry["detections"] += [dict(entry["detections"][0], bbox=[0.01 * i, 0.0, 0.1, 0.1]) for i in (1, 2)]
    survey.results.write_text(json.dumps(survey.data), encoding="utf-8")
    export_package(results=survey.results, deployments=survey.deployments, images=survey.root, output=tmp_path / "p")
    _, observations = read_csv(tmp_path / "p" / "observations.csv")
    first_burst = next(
        o for o in observations if o["eventID"] == "serengeti-S1-E03_e1" and o["observationLevel"] == "event"
    )
    assert first_burst["count"] == "3"


def test_broken_package_fails_validation_naming_the_field(tmp_path: Path, no_network) -> None:
    output, _ = export(tmp_path)
    path = output / "observations.csv"
    header, rows = read_csv(path)
    boxed = next(i for i, r in enumerate(rows) if r["bboxX"])
    rows[boxed]["bboxX"] = "1.7"
    rows[boxed + 1]["deploymentID"] = ""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    result = validate_package(output)
    assert not result.valid
    found = {(p.resource, p.field, p.row) for p in result.problems}
    assert ("observations", "bboxX", boxed + 2) in found  # CSV rows count the header as row 1
    assert ("observations", "deploymentID", boxed + 3) in found
    assert "field bboxX" in result.describe() and "field deploymentID" in result.describe()


def test_validate_command_names_the_field_and_fails(tmp_path: Path, capsys, no_network) -> None:
    output, _ = export(tmp_path)
    assert cli.main(["validate", str(output)]) == 0
    text = (output / "media.csv").read_text(encoding="utf-8")
    (output / "media.csv").write_text(text.replace(",image/jpeg,", ",jpeg,", 1), encoding="utf-8")
    assert cli.main(["validate", str(output)]) == 1
    assert "field fileMediatype" in capsys.readouterr().out


def test_package_naming_another_version_fails_offline_naming_the_url(tmp_path: Path, no_network) -> None:
    output, _ = export(tmp_path)
    descriptor = json.loads((output / "datapackage.json").read_text(encoding="utf-8"))
    descriptor["profile"] = PROFILE_URL.replace("1.0.2", "1.0.1")
    (output / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
    result = validate_package(output)
    assert not result.valid and "1.0.1/camtrap-dp-profile.json" in result.describe()


def test_undated_media_are_refused_or_skipped_with_a_count(tmp_path: Path) -> None:
    survey = make_survey(tmp_path)
    for entry in survey.data["images"]:
        if entry["file"].startswith("pw/"):
            del entry["datetime"]
    survey.results.write_text(json.dumps(survey.data), encoding="utf-8")
    kwargs = {"results": survey.results, "deployments": survey.deployments, "images": survey.root}
    with pytest.raises(ExportError, match="14 of 21 media have no capture time.*--skip-undated"):
        export_package(output=tmp_path / "a", **kwargs)
    assert not (tmp_path / "a" / "media.csv").exists()
    report = export_package(output=tmp_path / "b", options=ExportOptions(skip_undated=True), **kwargs)
    assert report.media == 7 and len(report.skipped_undated) == 14
    assert "skipped 14 media without a capture time" in report.describe()
    assert validate_package(tmp_path / "b").valid


def test_failed_images_are_refused_or_skipped_with_a_count(tmp_path: Path) -> None:
    survey = make_survey(tmp_path)
    survey.data["images"].append({"file": "pw/broken.jpg", "failure": "image could not be decoded", "detections": None})
    survey.results.write_text(json.dumps(survey.data), encoding="utf-8")
    kwargs = {"results": survey.results, "deployments": survey.deployments, "images": survey.root}
    with pytest.raises(ExportError, match="1 of 22 images failed.*could not be decoded.*--skip-failed"):
        export_package(output=tmp_path / "a", **kwargs)
    report = export_package(output=tmp_path / "b", options=ExportOptions(skip_failed=True), **kwargs)
    assert report.media == 21 and report.skipped_failed == ["pw/broken.jpg"]


def test_media_outside_the_deployment_period_name_the_field(tmp_path: Path) -> None:
    survey = make_survey(tmp_path)
    rows = [list(r) for r in DEPLOYMENTS]
    rows[0][4] = "2010-08-06"  # deploymentEnd before the Serengeti frames of 2010-08-07
    write_deployments(survey.deployments, rows)
    with pytest.raises(DeploymentsError, match="outside deployment 'serengeti-S1-E03'") as info:
        export_package(
            results=survey.results, deployments=survey.deployments, images=survey.root, output=tmp_path / "p"
        )
    assert (info.value.line, info.value.field) == (2, "deploymentEnd")


def test_media_of_no_deployment_stop_the_export(tmp_path: Path) -> None:
    survey = make_survey(tmp_path)
    write_deployments(survey.deployments, rows_with_folder({"pw-1": "pw_other"}))
    with pytest.raises(DeploymentsError, match="14 media file"):
        export_package(
            results=survey.results, deployments=survey.deployments, images=survey.root, output=tmp_path / "p"
        )


def test_events_from_a_cct_seq_id(tmp_path: Path) -> None:
    survey = make_survey(tmp_path)
    pw = sorted(e["file"] for e in survey.data["images"] if e["file"].startswith("pw/"))
    cct = {
        "images": [{"id": f, "file_name": f, "seq_id": "A" if i < 5 else "B"} for i, f in enumerate(pw)],
        "annotations": [],
        "categories": [{"id": 0, "name": "empty"}],
    }
    (tmp_path / "cct.json").write_text(json.dumps(cct), encoding="utf-8")
    report = export_package(
        results=survey.results,
        deployments=survey.deployments,
        images=survey.root,
        output=tmp_path / "p",
        options=ExportOptions(cct_file=tmp_path / "cct.json"),
    )
    assert report.events_from_cct == 14 and report.events == 7  # pw's one burst split in two by seq_id


def test_export_command_with_metadata_copies_media_and_lists_defaults(tmp_path: Path, capsys) -> None:
    survey = make_survey(tmp_path)
    meta = tmp_path / "meta.yaml"
    meta.write_text(
        "title: Hippos of the Serengeti\ncontributors:\n  - title: Jane Doe\n    role: contact\n"
        "project:\n  title: Night life\n  samplingDesign: targeted\n"
        "licenses:\n  - {name: CC0-1.0, scope: data}\n  - {name: CC-BY-4.0, scope: media}\n",
        encoding="utf-8",
    )
    output = tmp_path / "package"
    argv = [
        "export",
        "--results",
        str(survey.results),
        "--deployments",
        str(survey.deployments),
        "--images",
        str(survey.root),
        "--output",
        str(output),
        "--package-metadata",
        str(meta),
        "--copy-media",
        "--threshold",
        "0.01",
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "21 media" in out and "valid Camtrap DP 1.0.2 package" in out
    assert "project.individualAnimals" in out and "contributors" not in out and "title:" not in out
    descriptor = json.loads((output / "datapackage.json").read_text(encoding="utf-8"))
    assert descriptor["title"] == "Hippos of the Serengeti" and descriptor["project"]["samplingDesign"] == "targeted"
    _, media = read_csv(output / "media.csv")
    assert all(m["filePath"].startswith("media/") and (output / m["filePath"]).is_file() for m in media)
    _, observations = read_csv(output / "observations.csv")
    assert sum(o["observationType"] == "animal" and o["observationLevel"] == "media" for o in observations) == 19
    # A second export into the same folder is refused without --overwrite: one line, non-zero.
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: ") and "--overwrite" in err and len(err.strip().splitlines()) == 1


def test_export_command_reports_a_bad_deployments_file_in_one_line(tmp_path: Path, capsys) -> None:
    survey = make_survey(tmp_path)
    rows = [list(r) for r in DEPLOYMENTS]
    rows[1][1] = "north"
    write_deployments(survey.deployments, rows)
    code = cli.main(
        [
            "export",
            "--results",
            str(survey.results),
            "--deployments",
            str(survey.deployments),
            "--images",
            str(survey.root),
            "--output",
            str(tmp_path / "p"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "line 3, field latitude" in err and len(err.strip().splitlines()) == 1


def test_videos_are_media_with_observations_but_no_box(tmp_path: Path, no_network) -> None:
    from tests.camera_trap.test_camtrap_video import _frames, make_video

    survey = make_survey(tmp_path)
    make_video(survey.root / "pw" / "clip.mp4", _frames())
    survey.data["images"].append(
        {
            "file": "pw/clip.mp4",
            "datetime": "2021:06:01 10:05:00",
            "frame_rate": 10.0,
            "frames_processed": [0, 3, 6],
            "detections": [{"category": "1", "conf": 0.7, "bbox": [0.1, 0.2, 0.3, 0.4], "frame_number": 3}],
        }
    )
    survey.results.write_text(json.dumps(survey.data), encoding="utf-8")
    output = tmp_path / "package"
    report = export_package(results=survey.results, deployments=survey.deployments, images=survey.root, output=output)
    assert (report.images, report.videos, report.events) == (21, 1, 7)  # 5 min after the pw burst: its own event
    assert validate_package(output).valid
    _, media = read_csv(output / "media.csv")
    clip = next(m for m in media if m["fileName"] == "clip.mp4")
    assert clip["fileMediatype"] == "video/mp4" and clip["timestamp"] == "2021-06-01T10:05:00-07:00"
    _, observations = read_csv(output / "observations.csv")
    on_clip = [o for o in observations if o["mediaID"] == clip["mediaID"]]
    assert [(o["observationType"], o["bboxX"]) for o in on_clip] == [("animal", "")]

    from ropevit_det.camera_trap.camtrapdp.import_coco import package_to_cct

    data, imported = package_to_cct(output, survey.root)
    assert imported.videos == 1 and len(data["images"]) == 21


def test_metadata_file_may_not_set_what_the_export_writes(tmp_path: Path, capsys) -> None:
    survey = make_survey(tmp_path)
    argv = [
        "export",
        "--results",
        str(survey.results),
        "--deployments",
        str(survey.deployments),
        "--images",
        str(survey.root),
        "--output",
        str(tmp_path / "p"),
        "--package-metadata",
        str(tmp_path / "meta.json"),
    ]
    (tmp_path / "meta.json").write_text(json.dumps({"profile": "tabular-data-package"}), encoding="utf-8")
    assert cli.main(argv) == 1 and "'profile' is written by the export itself" in capsys.readouterr().err
    (tmp_path / "meta.json").write_text(json.dumps({"project": "Pond mammals"}), encoding="utf-8")
    assert cli.main(argv) == 1 and "'project' must be a mapping" in capsys.readouterr().err


def test_without_the_shipped_files_frictionless_would_reach_for_the_network(tmp_path: Path, no_network) -> None:
    # The guard above is real: plain frictionless fetches the profile URL and fails on the blocked socket.
    import contextlib

    from frictionless import validate

    output, _ = export(tmp_path)
    with contextlib.chdir(output):
        report = validate(json.loads((output / "datapackage.json").read_text(encoding="utf-8")))
    assert not report.valid and "network access attempted" in str(report.flatten(["note"]))
