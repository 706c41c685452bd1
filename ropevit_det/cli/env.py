"""``ropevit-det env``: print what a bug report needs (paste it into the issue)."""
from __future__ import annotations

import argparse

from ropevit_det.env_info import collect_env_info


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    print(collect_env_info())
    return 0
