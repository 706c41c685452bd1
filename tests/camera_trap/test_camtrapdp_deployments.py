"""The deployments file: read, checked before any work, every bad case an error naming its line and field."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ropevit_det.camera_trap.camtrapdp.deployments import DeploymentsError, read_deployments
from tests.camtrapdp_helpers import DEPLOYMENT_COLUMNS, DEPLOYMENTS, write_deployments


def rows_with(line: int, column: str, value: str) -> list[list[str]]:
    """The helper's three rows, with ``column`` of the row on CSV line ``line`` (first row = line 2) changed."""
    rows = [list(r) for r in DEPLOYMENTS]
    rows[line - 2][DEPLOYMENT_COLUMNS.index(column)] = value
    return rows


def expect_error(path: Path, line: int, field: str) -> DeploymentsError:
    with pytest.raises(DeploymentsError) as info:
        read_deployments(path)
    error = info.value
    assert (error.line, error.field) == (line, field), str(error)
    assert f"line {line}" in str(error) and field in str(error)
    return error


def test_good_file_is_read_with_zones_applied(tmp_path: Path) -> None:
    deps = read_deployments(write_deployments(tmp_path / "d.csv", DEPLOYMENTS))
    assert [d.deployment_id for d in deps] == ["serengeti-S1-E03", "blanks-1", "pw-1"]
    serengeti, blanks, pw = deps
    # A date alone: the whole day; an IANA zone with its offset on that date (PDT in June).
    assert serengeti.start.isoformat() == "2010-08-01T00:00:00+03:00"
    assert serengeti.end.isoformat() == "2010-08-31T23:59:59+03:00"
    assert blanks.start.utcoffset() == timedelta(hours=12)
    assert pw.localize(datetime(2021, 6, 1, 10, 0)).isoformat() == "2021-06-01T10:00:00-07:00"
    assert pw.columns["cameraModel"] == "Reconyx HF2X" and "folder" not in pw.columns
    assert deps.deployment_of("pw/pw_1.jpg") is pw and deps.deployment_of("other/x.jpg") is None


def test_missing_column(tmp_path: Path) -> None:
    columns = [c for c in DEPLOYMENT_COLUMNS if c != "timezone"]
    rows = [[v for c, v in zip(DEPLOYMENT_COLUMNS, r) if c != "timezone"] for r in DEPLOYMENTS]
    expect_error(write_deployments(tmp_path / "d.csv", rows, columns), 1, "timezone")


def test_unknown_column_is_not_dropped(tmp_path: Path) -> None:
    rows = [r + ["x"] for r in DEPLOYMENTS]
    error = expect_error(write_deployments(tmp_path / "d.csv", rows, DEPLOYMENT_COLUMNS + ["notes"]), 1, "notes")
    assert "deploymentComments" in str(error)


def test_latitude_not_a_number(tmp_path: Path) -> None:
    expect_error(write_deployments(tmp_path / "d.csv", rows_with(3, "latitude", "41°17'S")), 3, "latitude")


def test_latitude_out_of_range(tmp_path: Path) -> None:
    expect_error(write_deployments(tmp_path / "d.csv", rows_with(2, "latitude", "95.2")), 2, "latitude")


def test_longitude_out_of_range(tmp_path: Path) -> None:
    expect_error(write_deployments(tmp_path / "d.csv", rows_with(4, "longitude", "-190")), 4, "longitude")


def test_empty_required_value(tmp_path: Path) -> None:
    expect_error(write_deployments(tmp_path / "d.csv", rows_with(3, "longitude", "")), 3, "longitude")


def test_bad_datetime(tmp_path: Path) -> None:
    expect_error(
        write_deployments(tmp_path / "d.csv", rows_with(2, "deploymentStart", "01/08/2010")), 2, "deploymentStart"
    )


def test_end_before_start(tmp_path: Path) -> None:
    expect_error(write_deployments(tmp_path / "d.csv", rows_with(4, "deploymentEnd", "2021-05-31")), 4, "deploymentEnd")


def test_unknown_timezone(tmp_path: Path) -> None:
    error = expect_error(
        write_deployments(tmp_path / "d.csv", rows_with(2, "timezone", "Africa/Serengeti")), 2, "timezone"
    )
    assert "IANA" in str(error) and "+02:00" in str(error)


def test_bad_offset(tmp_path: Path) -> None:
    expect_error(write_deployments(tmp_path / "d.csv", rows_with(3, "timezone", "+25:00")), 3, "timezone")


def test_nested_folders_overlap(tmp_path: Path) -> None:
    error = expect_error(write_deployments(tmp_path / "d.csv", rows_with(4, "folder", "serengeti/card2")), 4, "folder")
    assert "serengeti-S1-E03" in str(error) and "pw-1" in str(error)


def test_same_folder_overlaps(tmp_path: Path) -> None:
    expect_error(write_deployments(tmp_path / "d.csv", rows_with(3, "folder", "./serengeti/")), 3, "folder")


def test_root_folder_overlaps_every_other(tmp_path: Path) -> None:
    expect_error(write_deployments(tmp_path / "d.csv", rows_with(2, "folder", "")), 3, "folder")


def test_folder_outside_the_root(tmp_path: Path) -> None:
    expect_error(write_deployments(tmp_path / "d.csv", rows_with(3, "folder", "../elsewhere")), 3, "folder")


def test_duplicate_deployment_id(tmp_path: Path) -> None:
    expect_error(write_deployments(tmp_path / "d.csv", rows_with(4, "deploymentID", "blanks-1")), 4, "deploymentID")


def test_media_belonging_to_no_deployment(tmp_path: Path) -> None:
    deps = read_deployments(write_deployments(tmp_path / "d.csv", DEPLOYMENTS))
    with pytest.raises(DeploymentsError) as info:
        deps.assign(["pw/pw_1.jpg", "card7/IMG_0001.JPG", "card7/IMG_0002.JPG"])
    assert info.value.field == "folder"
    assert "2 media file(s)" in str(info.value) and "card7/IMG_0001.JPG" in str(info.value)


def test_more_values_than_columns(tmp_path: Path) -> None:
    rows = [list(r) for r in DEPLOYMENTS]
    rows[1][-1] = "Browning"
    rows[1].append("BTC-8E")  # an unquoted "Browning, BTC-8E" splits into two values
    path = write_deployments(tmp_path / "d.csv", rows)
    with pytest.raises(DeploymentsError, match="line 3: 1 more value") as info:
        read_deployments(path)
    assert info.value.line == 3
