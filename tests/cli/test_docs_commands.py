"""Every command the README and docs/ show parses with today's parsers, and the cheap ones run.

A command is a line of a code block (``\\`` continuations joined) or an inline code span that starts with
``ropevit-det SUB`` or ``python tools/X.py`` (after any ``VAR=value`` prefixes and ``.venv/bin/``). Its sub-command
or tool must exist, each flag must exist, and a code-block command must give the flags its parser requires.
``...`` in a flag's place stands for flags the page gives elsewhere (the README's ``--config ... --weights ...``):
such a command is checked with the required flags relaxed. An inline span is a fragment of a sentence: its
sub-command and each of its flags must exist. The cheap commands also run for real.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ropevit_det.cli.common import reject_flags_among_overrides
from ropevit_det.cli.main import CLONE_ONLY, COMMANDS
from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
ENV_PREFIX = re.compile(r"^[A-Z_][A-Z0-9_]*=\S+$")
SHELL_VARIABLE = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")


@dataclass(frozen=True)
class DocCommand:
    page: str
    text: str
    in_code_block: bool

    def __str__(self) -> str:
        return f"{self.page}: {self.text}"


def command_words(text: str) -> list[str] | None:
    """The words after ``ropevit-det`` or ``python``, or None when the text is not a command of ours."""
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        return None
    while words and ENV_PREFIX.match(words[0]):
        words = words[1:]
    if len(words) >= 2 and words[0] == "ropevit-det":
        return words[1:]
    if len(words) >= 2 and words[0].endswith("python") and re.fullmatch(r"tools/[a-z_]+\.py", words[1]):
        return words[1:]
    return None


def doc_commands() -> list[DocCommand]:
    found: list[DocCommand] = []
    for page in DOCS:
        name = page.relative_to(REPO).as_posix()
        text = page.read_text(encoding="utf-8")
        for block in FENCE.findall(text):
            for line in block.replace("\\\n", " ").splitlines():
                if command_words(line.strip()):
                    found.append(DocCommand(name, " ".join(line.split()), True))
        for span in INLINE.findall(FENCE.sub("", text)):
            if command_words(span):
                found.append(DocCommand(name, span, False))
    return found


def parser_of(program: str) -> argparse.ArgumentParser:
    """The parser behind ``ropevit-det NAME`` or ``tools/X.py`` (tools wrap a cli or benchmarks module's main)."""
    if program.startswith("tools/"):
        wrapper = (REPO / program).read_text(encoding="utf-8")
        module = re.search(r"^from ([\w.]+) import main$", wrapper, re.M).group(1)
    else:
        module = f"ropevit_det.cli.{COMMANDS[program][0]}"
    return importlib.import_module(module).build_parser()


def relax_required(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                relax_required(sub)
            action.required = False
        elif action.option_strings:
            action.required = False
        elif action.nargs is None:
            action.nargs = "?"


def takes_value(parser: argparse.ArgumentParser, flag: str) -> bool:
    action = parser._option_string_actions.get(flag)
    return action is not None and action.nargs != 0


def all_flags(parser: argparse.ArgumentParser) -> set[str]:
    flags = set(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags |= all_flags(sub)
    return flags


def check(command: DocCommand) -> str | None:
    """None when the command parses, else the reason it does not."""
    words = command_words(command.text)
    program, args = words[0], words[1:]
    if program in ("--help", "-h") or program.isupper():  # ropevit-det's own help; SUB, VERSION: placeholders
        return None
    names = program.split("|")  # `ropevit-det train|infer|...` in a sentence names several
    unknown = [n for n in names if not n.startswith("tools/") and n not in COMMANDS and n not in CLONE_ONLY]
    if unknown:
        return f"no sub-command {unknown[0]!r}"
    if len(names) > 1 or program in CLONE_ONLY:
        return None
    parser = parser_of(program)
    if not command.in_code_block:  # a fragment in a sentence: its flags must exist
        missing = [a.split("=")[0] for a in args if a.startswith("--") and a.split("=")[0] not in all_flags(parser)]
        return f"unrecognized arguments: {missing[0]}" if missing else None
    # Shell variables stand for a value the user's shell gives (e.g. the array task id): give one.
    args = [SHELL_VARIABLE.sub("1", a) for a in args]
    args = [a[1:-1] if a.startswith("[") and a.endswith("]") else a for a in args]  # [--optional-flag]
    placeholder = [i for i, a in enumerate(args) if a == "..." and not (i and takes_value(parser, args[i - 1]))]
    args = [a for i, a in enumerate(args) if i not in placeholder]
    if placeholder:
        relax_required(parser)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            namespace = parser.parse_args(args)
    except SystemExit as exc:
        return None if exc.code == 0 else stderr.getvalue().strip().splitlines()[-1]
    if program in ("train", "tools/train_net.py"):
        try:
            reject_flags_among_overrides(namespace.opts)
        except SystemExit as exc:
            return str(exc)
    return None


COMMANDS_IN_DOCS = doc_commands()


def test_the_extraction_finds_the_commands() -> None:
    texts = [c.text for c in COMMANDS_IN_DOCS]
    assert len(texts) > 60
    assert any(t.startswith("ropevit-det rde apply") for t in texts)
    assert any(t.startswith("OMP_NUM_THREADS=1 python tools/benchmark.py") for t in texts)  # a README figure
    assert any("--val-json val.json --val-images images/ OUTPUT_DIR output/mine" in t for t in texts)  # continuation


@pytest.mark.parametrize("command", COMMANDS_IN_DOCS, ids=str)
def test_documented_command_parses(command: DocCommand) -> None:
    assert check(command) is None, f"{command}\n  -> {check(command)}"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("ropevit-det infer --config c.yaml --weights w.pth --input x --output y --no-such-flag", "--no-such-flag"),
        ("ropevit-det review --results r.json --images i/", "required"),
        ("ropevit-det frobnicate --x", "no sub-command"),
        ("python tools/train_net.py --config c.yaml OUTPUT_DIR o --resume", "--resume"),
    ],
)
def test_the_checker_catches_a_wrong_command(text: str, reason: str) -> None:
    assert reason in (check(DocCommand("t.md", text, True)) or "")


def test_the_placeholder_relaxes_only_the_required_flags() -> None:
    assert check(DocCommand("t.md", "ropevit-det infer ... --input x --output y", True)) is None
    assert "--nope" in check(DocCommand("t.md", "ropevit-det infer ... --nope", True))


# The cheap documented commands, run for real as a user would type them (from the clone's root).
CHEAP = [
    ["ropevit-det", "--help"],
    ["ropevit-det", "env"],
    ["python", "tools/demo.py", "--help"],
    ["ropevit-det", "export", "--help"],
    # docs/CAMERA_TRAPS.md's split, on the sample frames given three locations (the sample file has one)
    [
        "python",
        "tools/split_cct.py",
        "{tmp}/my_survey_cct.json",
        "--output-dir",
        "{tmp}/splits",
        "--val-fraction",
        "0.15",
        "--seed",
        "0",
    ],
    ["ropevit-det", "split-cct", "--help"],
]


@pytest.mark.parametrize("argv", CHEAP, ids=" ".join)
def test_cheap_documented_command_runs(argv: list[str], tmp_path: Path) -> None:
    sample = json.loads((REPO / "tests/assets/camtrap_mini/serengeti_cct_original.json").read_text(encoding="utf-8"))
    for index, image in enumerate(sample["images"]):
        image["location"] = f"site_{index % 3}"
    (tmp_path / "my_survey_cct.json").write_text(json.dumps(sample), encoding="utf-8")
    argv = [a.format(tmp=tmp_path) for a in argv]
    if argv[0] == "ropevit-det":
        argv = [sys.executable, "-m", "ropevit_det.cli.main", *argv[1:]]
    else:
        argv = [sys.executable, *argv[1:]]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    if "split_cct.py" in argv[1]:
        splits = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in (tmp_path / "splits").iterdir()}
        assert sorted(splits) == ["my_survey_cct_train.json", "my_survey_cct_val.json"]
        assert sum(len(s["images"]) for s in splits.values()) == len(sample["images"])


def test_export_help_names_only_what_exists() -> None:
    from ropevit_det.cli import export

    text = export.build_parser().format_help()
    assert "--exported" not in text and "see above" not in text
    assert "MODEL.SFP.SQUARE_PAD" in text.split("--input-size", 2)[2]  # the default, in the flag's own help


def test_benchmark_warmup_0_is_one_line(capsys) -> None:
    from benchmarks.commands import benchmark

    with pytest.raises(SystemExit) as exit_:
        benchmark.main(["--warmup", "0"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith(
        "--warmup 0: FLOPs are counted in the first warm-up run; give --warmup 1 or more, "
        "or add --no-flops to time without warming up"
    )


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_internal_references(doc: Path) -> None:
    """Pages speak to users: no issue numbers of this project, no sessions that wrote them."""
    text = doc.read_text(encoding="utf-8")
    found = re.findall(r"(?i)\bissues? \d+|\bissue #?\d+|\bsessions?\b|added by (?:the|issue)", text)
    assert not found, f"{doc.relative_to(REPO)}: {found}"


@pytest.mark.parametrize(
    "name, url",
    [
        ("birder", "https://github.com/birder-project/birder"),
        ("CAPI", "https://arxiv.org/abs/2502.08769"),
        ("ViTDet", "https://arxiv.org/abs/2203.16527"),
        ("detectron2 project", "https://github.com/facebookresearch/detectron2/tree/main/projects/ViTDet"),
        ("MegaDetector", "https://github.com/agentmorris/MegaDetector"),
        ("Timelapse", "https://timelapse.ucalgary.ca/"),
        ("AddaxAI", "https://addaxdatascience.com/addaxai/"),
        ("SpeciesNet", "https://github.com/google/cameratrapai"),
    ],
)
def test_the_readme_links_what_it_builds_on(name: str, url: str) -> None:
    assert f"[{name}]({url})" in (REPO / "README.md").read_text(encoding="utf-8")
