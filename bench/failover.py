"""Failover of the HA pair (Patroni + etcd), on a scratch pair of its own (docs/failover.md, issue 21):
trials of kill -9 of the primary under a writer of at least 200 commits/s, each measuring

- writes resumed: from the last commit acknowledged by the old primary to the first by the new one
  (goal p95 <= 5 s, max <= 8 s; CloudNativePG's e2e test allows 10 s, Patroni's defaults give 30-45 s);
- acknowledged commits lost (goal 0 with a synchronous standby);
- rejoin: from the kill to the old primary streaming as a standby again (goal <= 30 s);
- rounds of the watcher in which two members accepted writes (goal 0).

`--kind postgres` kills the primary's PostgreSQL (Patroni sees the crash in its next 1 s loop and, with
primary_start_timeout 0, hands over at once); `--kind member` kills Patroni and PostgreSQL together (the
leader key must expire first: ttl 20 s, Patroni's minimum) and restarts the member as a supervisor would.

    .venv/bin/python -m bench.failover [--trials 20] [--kind postgres|member|both] [--mode sync|async]
                                       [--member-trials 5] [--rate 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

from orchestrator_data.replication.drill import DrillResult, run_drill
from orchestrator_data.stack.ha_scratch import scratch_pair


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def _summary(kind: str, mode: str, results: list[DrillResult], seconds: float) -> None:
    resumed = [r.writes_resumed_s for r in results]
    rejoin = [r.rejoin_s for r in results if r.rejoin_s is not None]
    rates = [r.commits_acknowledged for r in results]
    speeds = [r.commits_per_s for r in results]
    print(f"\n{kind} -9, {mode} replication: {len(results)} trials in {seconds:.0f} s, the writer at "
          f"{min(speeds):.0f}-{max(speeds):.0f} commits/s before each kill")
    print(f"  writes resumed  p50 {statistics.median(resumed):.2f} s   p95 {_p95(resumed):.2f} s   "
          f"max {max(resumed):.2f} s")
    print(f"  commits lost    {sum(r.commits_lost for r in results)} of {sum(rates)} acknowledged "
          f"({sum(r.uncertain_commits for r in results)} with an unknown outcome, never acknowledged)")
    if rejoin:
        print(f"  rejoin          p50 {statistics.median(rejoin):.1f} s   p95 {_p95(rejoin):.1f} s   "
              f"max {max(rejoin):.1f} s   ({len(results) - len(rejoin)} did not rejoin in time)")
    else:
        print("  rejoin          none rejoined in time")
    print(f"  two primaries   {sum(r.two_primaries_rounds for r in results)} of "
          f"{sum(r.watcher_rounds for r in results)} watcher rounds")


def run(kind: str, mode: str, trials: int, rate: float) -> list[DrillResult]:
    results = []
    started = time.monotonic()
    with scratch_pair(mode) as cluster:
        for trial in range(1, trials + 1):
            result = run_drill(cluster, kind=kind, rate=rate, before_s=2.0, timeout_s=60, rejoin_timeout_s=90)
            results.append(result)
            print(f"  trial {trial:2}: {result.old_primary} -> {result.new_primary}  resumed "
                  f"{result.writes_resumed_s:5.2f} s  lost {result.commits_lost}  rejoin "
                  f"{result.rejoin_s if result.rejoin_s is not None else '-'} s  two primaries "
                  f"{result.two_primaries_rounds}  ({result.commits_per_s:.0f} commits/s)", flush=True)
    _summary(kind, mode, results, time.monotonic() - started)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="kills of the primary's PostgreSQL")
    parser.add_argument("--member-trials", type=int, default=5,
                        help="kills of the whole member (each waits for the 20 s ttl)")
    parser.add_argument("--kind", choices=("postgres", "member", "both"), default="both")
    parser.add_argument("--mode", choices=("sync", "async", "strict"), default="sync")
    parser.add_argument("--rate", type=float, default=250.0, help="the writer's pace, commits per second")
    args = parser.parse_args(argv)
    print(f"failover: a scratch Patroni pair, {args.mode} replication, a writer at {args.rate:.0f} commits/s")
    if args.kind in ("postgres", "both"):
        run("postgres", args.mode, args.trials, args.rate)
    if args.kind in ("member", "both") and args.member_trials:
        run("member", args.mode, args.member_trials, args.rate)


if __name__ == "__main__":
    main()
