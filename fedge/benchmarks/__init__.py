"""Benchmarks run by `fedge bench NAME --json PATH`; results are reported in bench/README.md."""
