"""``ropevit-det env``: print what a bug report needs (paste it into the issue)."""

from __future__ import annotations

import argparse

from ropevit_det.env_info import collect_env_info


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=__doc__)


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print(collect_env_info())
    return 0
