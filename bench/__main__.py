"""`python -m bench` (or `make bench`): run every benchmark against the configured services or the
local stack (`orchestrator-data stack start` first). Each prints its ratio against a baseline
measured in the same run."""

from bench import backup, full_load, pool, recovery, redis_limiter, search_sync, seed

BENCHMARKS = [pool, redis_limiter, seed, backup, search_sync, full_load, recovery]

if __name__ == "__main__":
    for benchmark in BENCHMARKS:
        benchmark.main()
