"""Benchmarks of luigi_repro: run ``python -m benchmarks`` (see benchmarks/README.md)."""
