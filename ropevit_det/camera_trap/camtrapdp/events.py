"""Events: the media of one deployment that show one visit, grouped as the sequence smoothing groups them.

An event is what Camtrap DP counts animals in (event-level observations, ``eventID``). Media are grouped by
:mod:`..smoothing`'s own functions, so a burst is one unit for smoothing and for the package alike:

* by capture time: a new event wherever two media of a deployment are more than ``gap_seconds`` apart
  (60 s by default, the usual camera-trap convention);
* or by a COCO Camera Traps file's ``seq_id`` where one is given; media it does not list fall back to capture
  times. A sequence is never shared between deployments.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..postprocess.smoothing import sequences_from_capture_times, sequences_from_cct

__all__ = ["DEFAULT_EVENT_GAP_SECONDS", "group_events"]

DEFAULT_EVENT_GAP_SECONDS = 60.0


def group_events(
    media: Sequence[Mapping[str, Any]],
    deployment_of: Mapping[str, str],
    *,
    gap_seconds: float = DEFAULT_EVENT_GAP_SECONDS,
    cct_file: str | os.PathLike | None = None,
) -> tuple[dict[str, str], int]:
    """``({file: eventID}, number of files whose event came from the CCT file)``.

    Args:
        media: results entries (``file`` and ``datetime``, EXIF's ``YYYY:MM:DD HH:MM:SS``); every one needs a
            ``datetime`` unless the CCT file gives its sequence.
        deployment_of: ``{file: deploymentID}``.
        gap_seconds: the largest gap between two media of one event.
        cct_file: a CCT file whose ``seq_id`` groups the media it lists.

    Event ids are ``<deploymentID>_e<n>``, numbered per deployment in the order of their first medium.
    """
    if gap_seconds <= 0:
        raise ValueError(f"the event gap must be positive seconds, got {gap_seconds}")
    seq_of: dict[str, str] = {}
    from_cct = 0
    if cct_file is not None:
        for item in sequences_from_cct(cct_file, {"images": list(media)}):
            seq_of[item["file_name"]] = f"cct:{deployment_of[item['file_name']]}:{item['seq_id']}"
        from_cct = len(seq_of)
    rest = [m for m in media if m["file"] not in seq_of]
    with contextlib.redirect_stderr(io.StringIO()):  # MegaDetector's progress bar, meaningless here
        sequences = sequences_from_capture_times(
            {"images": rest}, interval_seconds=gap_seconds, camera_of=lambda f: deployment_of[f]
        )
    for item in sequences:
        seq_of[item["file_name"]] = f"time:{item['seq_id']}"
    missing = [m["file"] for m in media if m["file"] not in seq_of]
    if missing:
        raise ValueError(
            f"{len(missing)} media have neither a capture time nor a CCT seq_id, e.g. {missing[0]}; "
            "they cannot be grouped into events"
        )
    # Number events per deployment in time order (CCT sequences by their first medium's time, if known).
    order = sorted(media, key=lambda m: (deployment_of[m["file"]], m.get("datetime") or "", m["file"]))
    event_ids: dict[str, str] = {}
    counters: dict[str, int] = {}
    for m in order:
        seq = seq_of[m["file"]]
        if seq not in event_ids:
            deployment = deployment_of[m["file"]]
            counters[deployment] = counters.get(deployment, 0) + 1
            event_ids[seq] = f"{deployment}_e{counters[deployment]}"
    return {m["file"]: event_ids[seq_of[m["file"]]] for m in media}, from_cct
