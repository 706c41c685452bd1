"""A command that needs an optional package names the extra that installs it, before it does any work."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from ropevit_det._deps import COMMAND_NEEDS, EXTRAS, missing_extra
from ropevit_det.cli.main import CLONE_ONLY, COMMANDS
from ropevit_det.cli.main import main as ropevit_det
from tests.conftest import REPO


def run_without(monkeypatch, capsys, modules: list[str], argv: list[str]) -> str:
    """Run ``ropevit-det ARGV`` in-process with ``modules`` unimportable; return its one line on stderr."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(SystemExit) as exit_:
        ropevit_det(argv)
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_review_without_megadetector_names_the_camtrap_extra(monkeypatch, capsys, tmp_path: Path) -> None:
    line = run_without(
        monkeypatch,
        capsys,
        ["megadetector"],
        [
            "review",
            "--results",
            str(tmp_path / "r.json"),
            "--images",
            str(tmp_path),
            "--output-dir",
            str(tmp_path / "review"),
        ],
    )
    assert line == (
        "ERROR: ropevit-det review needs megadetector (not installed), from the extra [camtrap]: "
        'pip install "ropevit_det[camtrap]" && pip install --no-deps megadetector==10.0.28'
    )
    assert not (tmp_path / "review").exists()


def test_rde_without_pandas_names_the_camtrap_extra(monkeypatch, capsys, tmp_path: Path) -> None:
    line = run_without(
        monkeypatch,
        capsys,
        ["pandas"],
        ["rde", "find", "--results", "r.json", "--images", str(tmp_path), "--output-dir", str(tmp_path / "rde")],
    )
    assert "needs pandas" in line and 'pip install "ropevit_det[camtrap]"' in line
    assert not (tmp_path / "rde").exists()


def infer_argv(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "infer",
        "--config",
        "camera_trap/ropevit_faster_rcnn_cct.yaml",
        "--weights",
        str(tmp_path / "w.pth"),
        "--input",
        str(REPO / "tests/assets/camtrap_mini/images"),
        "--output",
        str(tmp_path / "out" / "r.json"),
        *extra,
    ]


@pytest.mark.parametrize(
    "extra_flags, missing, extra",
    [
        (["--classify", "--smooth-sequences"], "megadetector", "camtrap"),
        (["--backend", "onnxruntime"], "onnxruntime", "export"),
        (["--backend", "openvino"], "openvino", "openvino"),
    ],
)
def test_infer_stops_before_any_file_is_written(
    monkeypatch, capsys, tmp_path: Path, extra_flags, missing, extra
) -> None:
    line = run_without(monkeypatch, capsys, [missing], infer_argv(tmp_path, *extra_flags, "--resume"))
    assert f"needs {missing}" in line and f'pip install "ropevit_det[{extra}]"' in line
    assert sorted(tmp_path.iterdir()) == []  # no output folder, no journal: a rerun is not blocked


def test_export_onnx_without_onnx(monkeypatch, capsys, tmp_path: Path) -> None:
    line = run_without(
        monkeypatch,
        capsys,
        ["onnx"],
        [
            "export",
            "--config",
            "camera_trap/ropevit_faster_rcnn_cct.yaml",
            "--weights",
            "w.pth",
            "--format",
            "onnx",
            "--output",
            str(tmp_path / "model.onnx"),
        ],
    )
    assert "ropevit-det export needs onnx" in line and 'pip install "ropevit_det[export]"' in line
    assert sorted(tmp_path.iterdir()) == []


def test_camtrapdp_validate_without_frictionless(monkeypatch, capsys, tmp_path: Path) -> None:
    line = run_without(monkeypatch, capsys, ["frictionless"], ["camtrapdp", "validate", str(tmp_path)])
    assert "needs frictionless" in line and "[camtrap]" in line


def test_what_needs_nothing_optional_is_not_stopped(monkeypatch) -> None:
    for extra in EXTRAS.values():
        for module in extra[0]:
            monkeypatch.setitem(sys.modules, module, None)
    args = type("Args", (), {"format": "torchscript", "backend": "int8", "smooth_sequences": False, "step": "import"})
    for command in COMMANDS:
        assert missing_extra(command, args) is None or command in ("review", "rde")


def test_every_extra_the_table_names_is_defined_in_setup_and_listed_in_the_readme() -> None:
    setup = (REPO / "setup.py").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for _modules, install in EXTRAS.values():
        extra = re.search(r"\[(\w+)\]", install).group(1)
        assert f'"{extra}": [' in setup
        assert f"[{extra}]" in readme
    assert set(COMMAND_NEEDS) - {"classify"} <= set(COMMANDS) | set(CLONE_ONLY)


def test_benchmark_names_the_bench_extra_before_building_a_model(monkeypatch, capsys) -> None:
    from benchmarks.commands import benchmark

    monkeypatch.setitem(sys.modules, "yolov5", None)
    with pytest.raises(SystemExit):
        benchmark.main(["--vitdet-modes", "", "--mdv5a-modes", "fp32", "--topk-candidates", "1000"])
    line = capsys.readouterr().err.strip()
    assert line.startswith("ERROR: python tools/benchmark.py needs yolov5 (not installed), from the extra [bench]: ")
    assert "pip install --no-deps yolov5==7.0.14" in line


def test_a_module_imported_already_counts_as_installed() -> None:
    import humanfriendly  # noqa: F401 - it leaves __spec__ None once imported, which find_spec cannot handle

    args = type("Args", (), {})
    assert missing_extra("review", args) is None
