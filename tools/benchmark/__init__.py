"""The benchmark behind `make bench`; `tools/bench.py` is its entry point."""
