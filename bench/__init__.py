"""Benchmarks: runnable modules (``python -m bench.<name>``) that measure on the embedded AWS and
report ratios against a baseline measured in the same run (DESIGN.md, "Quality bars")."""
