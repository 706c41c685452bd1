"""The benchmark commands behind ``tools/benchmark*.py`` and ``tools/profile_inference.py``: each is
``build_parser()`` and ``main(argv) -> int``."""
