"""The user-facing commands, one module each; ``ropevit-det SUBCOMMAND`` dispatches to them (``cli/main.py``).

Each module exposes ``main(argv=None) -> int``. The files in ``tools/`` are thin wrappers around the same
functions, so detectron2 users can keep running ``python tools/train_net.py``.
"""
