"""Benchmarks. Each prints a ratio against a baseline measured in the same run, never an absolute
target: machines differ, ratios on the same machine in the same run do not lie as much."""
