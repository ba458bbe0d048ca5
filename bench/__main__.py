"""`python -m bench` (or `make bench`): run every benchmark against the configured services or the
local stack (`orchestrator-data stack start` first). Each prints its ratio against a baseline
measured in the same run (failover: on a scratch Patroni pair of its own, needs etcd-server)."""

from bench import backup, failover, full_load, pool, recovery, redis_limiter, search_sync, seed

BENCHMARKS = [pool, redis_limiter, seed, backup, search_sync, full_load, recovery, failover]

if __name__ == "__main__":
    for benchmark in BENCHMARKS:
        benchmark.main()
