"""The sample frames laid out as a small survey: one folder per camera location, a COCO Camera Traps file with
locations and sequences, and the deployments file of the Camtrap DP export (for ``demo --camera-trap``)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

# The sample frames ship with a clone (tests/assets), not with the installed package.
# One folder (camera location) per source of the sample frames, by file-name prefix; the location decides the split.
LOCATIONS = {"serengeti_": "serengeti_E03", "pw_": "pw_site", "speciesnet_": "blanks"}
# Where and when each location's camera stood, for the Camtrap DP export (times cover the frames' EXIF times;
# the pw frames carry none and are left out of the package, which says so).
DEPLOYMENTS = [
    {
        "deploymentID": "serengeti-E03",
        "latitude": "-2.333",
        "longitude": "34.833",
        "deploymentStart": "2010-08-01",
        "deploymentEnd": "2010-08-31",
        "timezone": "Africa/Dar_es_Salaam",
        "folder": "serengeti_E03",
        "locationName": "Serengeti E03",
    },
    {
        "deploymentID": "pw-1",
        "latitude": "47.6",
        "longitude": "-122.3",
        "deploymentStart": "2021-06-01",
        "deploymentEnd": "2021-06-30",
        "timezone": "America/Los_Angeles",
        "folder": "pw_site",
        "locationName": "",
    },
    {
        "deploymentID": "blanks-1",
        "latitude": "-41.29",
        "longitude": "174.78",
        "deploymentStart": "2010-01-01",
        "deploymentEnd": "2024-12-31",
        "timezone": "+12:00",
        "folder": "blanks",
        "locationName": "",
    },
]


def sample_survey(sample_dir: Path, data_dir: Path) -> tuple[Path, Path]:
    """Copy the sample frames into one folder per location; write their CCT file with location and sequence.

    Returns ``(image root, CCT file)``.
    """
    coco = json.loads((sample_dir / "annotations.json").read_text(encoding="utf-8"))
    root = data_dir / "images"
    images = []
    for im in coco["images"]:
        name = im["file_name"]
        location = next((loc for prefix, loc in LOCATIONS.items() if name.startswith(prefix)), "unknown")
        target = root / location / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file():
            shutil.copy2(sample_dir / "images" / name, target)
        stem = Path(name).stem
        # Sequences as the sources give them: two 2-frame Serengeti bursts, one pw burst, single blank frames.
        seq = {"serengeti_E03": f"E03_{'a' if stem.endswith(('38', '39')) else 'b'}", "pw_site": "pw_1"}.get(
            location, stem
        )
        images.append({**im, "file_name": f"{location}/{name}", "location": location, "seq_id": seq})
    cct = {**coco, "images": images}
    cct_file = data_dir / "sample_cct.json"
    cct_file.write_text(json.dumps(cct, indent=1), encoding="utf-8")
    return root, cct_file


def write_deployments(path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(DEPLOYMENTS[0]))
        writer.writeheader()
        writer.writerows(DEPLOYMENTS)
    return path
