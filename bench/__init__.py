"""Benchmarks (run as python -m bench.<name>): speed and memory of the stages, measured as ratios in one process."""
