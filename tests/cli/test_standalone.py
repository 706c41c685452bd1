"""The project stands alone: no tracked file reaches outside the clone, configs travel with the package, and a
wheel installed away from the clone works on its own (``ropevit-det`` console command included)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ropevit_det import model_zoo
from tests.conftest import REPO, TINY_VIT_OVERRIDES

# A relative path that climbs out of its folder through one or more parent steps, then names something.
PARENT_PATH = re.compile(r"(?<![\w.])((?:\.\./)+)([\w.-]+)")


def tracked_files() -> list[Path]:
    """The repository's tracked files (git), or every file outside build/venv folders in an exported tree."""
    if (REPO / ".git").exists():
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
        return [REPO / name for name in out.decode().split("\0") if name]
    skip = {".venv", "output", "build", ".git", "__pycache__", ".pytest_cache"}
    return [p for p in REPO.rglob("*") if p.is_file() and not skip.intersection(p.relative_to(REPO).parts)]


def paths_outside_the_clone(path: Path) -> list[str]:
    """The relative paths in ``path``'s text that, read from its folder, lead outside the repository."""
    text = path.read_text(encoding="utf-8", errors="replace")
    outside = []
    for match in PARENT_PATH.finditer(text):
        target = (path.parent / match.group(1) / match.group(2)).resolve()
        if not target.is_relative_to(REPO):
            outside.append(match.group(0))
    return outside


def test_no_tracked_file_points_outside_the_clone() -> None:
    """A clone has nothing beside it: no test, tool, config or doc may read or name a sibling folder."""
    offenders = {}
    for path in tracked_files():
        if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".pt", ".pth"):
            continue
        found = paths_outside_the_clone(path)
        if found:
            offenders[str(path.relative_to(REPO))] = found
    assert not offenders, f"tracked files reach outside the clone: {offenders}"


def test_the_outside_check_sees_a_sibling_folder(tmp_path) -> None:
    # The check itself must catch a path to a folder beside the clone, or the test above proves nothing.
    probe = REPO / "tests" / f"_probe_{tmp_path.name}.md"
    probe.write_text("data in " + "../" * 2 + "sibling/data/images and ../README.md\n", encoding="utf-8")
    try:
        assert paths_outside_the_clone(probe) == ["../" * 2 + "sibling"]
    finally:
        probe.unlink()


def test_sample_data_lives_in_the_repository_with_its_attribution() -> None:
    root = REPO / "tests" / "assets" / "camtrap_mini"
    frames = sorted((root / "images").iterdir())
    assert len(frames) == 21
    sources = (root / "SOURCES.md").read_text(encoding="utf-8")
    assert "CDLA-Permissive-1.0" in sources and "MIT" in sources


def test_every_config_of_the_clone_is_in_the_zoo() -> None:
    in_clone = sorted(
        p.relative_to(REPO / "configs").as_posix()
        for p in (REPO / "configs").rglob("*")
        if p.suffix in (".yaml", ".py")
    )
    assert model_zoo.available_configs() == in_clone


def test_zoo_resolves_names_and_builds_configs() -> None:
    path = Path(model_zoo.get_config_file("ropevit_mrcnn.yaml"))
    assert path.is_file() and path.parent.name == "configs"
    assert model_zoo.get_config_file("configs/ropevit_mrcnn.yaml") == str(path)  # clone-style spelling
    cfg = model_zoo.get_config("camera_trap/ropevit_faster_rcnn_cct.yaml", ["MODEL.ROPE_VIT.DEPTH", "2"])
    assert cfg.MODEL.BACKBONE.NAME == "build_ropevit_sfp_backbone" and cfg.MODEL.ROPE_VIT.DEPTH == 2
    lazy = model_zoo.get_config("lazy/ropevit_mrcnn.py")
    assert lazy.model.backbone.square_pad == 1024


def test_unknown_zoo_name_lists_the_names_that_exist() -> None:
    with pytest.raises(model_zoo.ConfigNotFoundError, match=r"no config named 'nope\.yaml'.*ropevit_mrcnn\.yaml"):
        model_zoo.get_config_file("nope.yaml")
    with pytest.raises(model_zoo.ConfigNotFoundError):
        model_zoo.get_config_file("../setup.py")  # names stay inside the zoo


def test_resolve_config_prefers_a_file_then_names_both_lookups(tmp_path) -> None:
    own = tmp_path / "mine.yaml"
    own.write_text('_BASE_: "x.yaml"\n')
    assert model_zoo.resolve_config(own) == str(own)
    assert model_zoo.resolve_config("ropevit_mrcnn.yaml") == model_zoo.get_config_file("ropevit_mrcnn.yaml")
    with pytest.raises(model_zoo.ConfigNotFoundError) as info:
        model_zoo.resolve_config(tmp_path / "missing.yaml")
    message = str(info.value)
    assert "neither a file" in message and "model zoo" in message and "ropevit_mrcnn.yaml" in message


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)


def test_unknown_sub_command_lists_the_sub_commands() -> None:
    proc = _run([sys.executable, "-m", "ropevit_det", "segment-everything"])
    assert proc.returncode == 2
    assert "unknown sub-command 'segment-everything'" in proc.stderr
    for name in ("train", "infer", "eval-camtrap", "split-cct", "convert", "demo", "export", "env"):
        assert f"  {name} " in proc.stderr
    assert "  benchmark " not in proc.stderr and "python tools/benchmark.py" in proc.stderr


def test_benchmark_sub_commands_point_to_the_clone() -> None:
    proc = _run([sys.executable, "-m", "ropevit_det", "benchmark", "--quick"])
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        "ropevit-det benchmark: the benchmark harness is not part of the installed package; it needs a "
        "clone of the repository: python tools/benchmark.py --quick"
    )


@pytest.mark.parametrize(
    "tool", ["benchmark", "benchmark_eval", "benchmark_journal", "benchmark_scaling", "profile_inference"]
)
def test_benchmark_tools_run_from_a_clone_without_installing(tool, tmp_path) -> None:
    """tools/benchmark*.py find benchmarks/ (and ropevit_det) from the clone itself: no PYTHONPATH, any folder."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = _run([sys.executable, str(REPO / "tools" / f"{tool}.py"), "--help"], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage:")


def test_tool_with_unknown_config_fails_in_one_line(tmp_path) -> None:
    proc = _run(
        [
            sys.executable,
            str(REPO / "tools" / "infer.py"),
            "--config",
            "no_such.yaml",
            "--weights",
            "x",
            "--input",
            str(tmp_path),
            "--output",
            str(tmp_path / "r.json"),
        ]
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ERROR: --config: config 'no_such.yaml' is neither a file") and "ropevit_mrcnn.yaml" in last


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """The package built as a wheel and installed into a throw-away folder, away from the clone."""
    root = tmp_path_factory.mktemp("wheel")
    wheels, site = root / "dist", root / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # --no-build-isolation: build with this environment's setuptools, so the test needs no network.
    build = _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)])
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("ropevit_det-*.whl")
    install = _run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)])
    assert install.returncode == 0, install.stderr
    return site


def _outside_env(site: Path) -> dict[str, str]:
    # The wheel's folder first on the path: it must win over the editable install of the clone.
    return {**os.environ, "PYTHONPATH": str(site)}


def test_wheel_works_away_from_the_clone(installed_wheel, tmp_path) -> None:
    site, elsewhere = installed_wheel, tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import ropevit_det, torch\n"
        "from ropevit_det import model_zoo\n"
        "from detectron2.modeling import build_model\n"
        "print(ropevit_det.__file__)\n"
        "print(model_zoo.get_config_file('ropevit_mrcnn.yaml'))\n"
        f"cfg = model_zoo.get_config('ropevit_mrcnn.yaml', {TINY_VIT_OVERRIDES!r})\n"
        "model = build_model(cfg).eval()\n"
        "with torch.no_grad():\n"
        "    out = model([{'image': torch.rand(3, 96, 128) * 255}])\n"
        "print(type(out[0]['instances']).__name__)\n"
    )
    proc = _run([sys.executable, "-c", script], cwd=elsewhere, env=_outside_env(site))
    assert proc.returncode == 0, proc.stderr
    package_file, config_file, kind = proc.stdout.strip().splitlines()[-3:]
    assert Path(package_file).is_relative_to(site), "the clone, not the wheel, was imported"
    assert Path(config_file).is_relative_to(site) and Path(config_file).is_file()
    assert kind == "Instances"


def test_wheel_holds_no_benchmark_harness(installed_wheel) -> None:
    installed = {p.relative_to(installed_wheel).as_posix() for p in installed_wheel.rglob("*.py")}
    assert any(p.startswith("ropevit_det/checkpoint/") for p in installed)  # the listing sees the package
    harness = sorted(
        p
        for p in installed
        if p.startswith(("benchmarks/", "ropevit_det/benchmark"))
        or re.search(r"ropevit_det/cli/(benchmark|profile)", p)
    )
    assert not harness, harness


def test_wheel_console_command(installed_wheel, tmp_path) -> None:
    site = installed_wheel
    command = site / "bin" / "ropevit-det"
    assert command.is_file(), "the wheel declares no ropevit-det console script"
    env = _outside_env(site)
    proc = _run([str(command), "infer", "--help"], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "usage: ropevit-det infer" in proc.stdout and "--config" in proc.stdout
    proc = _run([str(command), "env"], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    ropevit_line = next(line for line in proc.stdout.splitlines() if line.startswith("ropevit_det "))
    assert str(site) in ropevit_line, ropevit_line
    for key in (
        "torch ",
        "detectron2 ",
        "detectron2._C ",
        "CPU bf16 ",
        "birder ",
        "faster-coco-eval ",
        "weights cache ",
        "published weights cached ",
    ):
        assert any(line.startswith(key) for line in proc.stdout.splitlines()), key
