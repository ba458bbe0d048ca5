"""`python -m bench` (or `make bench`): run every benchmark against the configured services or the
local stack (`orchestrator-data stack start` first)."""

from bench import pool

BENCHMARKS = [pool]

if __name__ == "__main__":
    for benchmark in BENCHMARKS:
        benchmark.main()
