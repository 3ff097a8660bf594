#!/usr/bin/env bash
# bench/profile.sh BENCH: runs `burrow-bench --only BENCH` (with smaller sizes) under a
# system-wide `perf record` and prints where the CPU samples went: per process (burrow's api,
# worker and bench, each Postgres backend, RabbitMQ, and whatever else runs on the machine),
# then the top symbols of the busiest of them.
#
# cpu-clock sampling at 499 Hz, no call graphs: it works in VMs without hardware counters and
# on release binaries without frame pointers. Postgres's own symbols come from its dynamic
# symbol table (static functions show as [unknown]).
#
# Needs Debian's linux-perf and the release binaries (`cargo build --release --bins`).
# Writes target/bench/profile-BENCH.{data,txt,json}. Sizes: BENCH_NOOP_JOBS (10000),
# BENCH_SWEEP_JOBS (1000), BENCH_RATE_SECS (10), or any other BENCH_* variable.
set -euo pipefail
cd "$(dirname "$0")/.."

bench=${1:?usage: bench/profile.sh import|overhead|retry|sweep|latency}
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 2; }
out=target/bench/profile-$bench
mkdir -p target/bench
export BENCH_OUT=$out.json
export BENCH_NOOP_JOBS=${BENCH_NOOP_JOBS:-10000}
export BENCH_SWEEP_JOBS=${BENCH_SWEEP_JOBS:-1000}
export BENCH_RATE_SECS=${BENCH_RATE_SECS:-10}

# The bench exits 1 when a target is missed; the profile is wanted either way.
status=0
perf record -a -F 499 -o "$out.data" -- target/release/burrow-bench --only "$bench" || status=$?
perf script -i "$out.data" -F comm,pid,tid,ip,sym,dso 2>/dev/null >"$out.txt"

python3 - "$out.txt" <<'PY'
"""Samples per program (processes grouped by the executable most of their user-space samples
ran in: every Postgres backend counts as `postgres`), with their kernel share, then the top
symbols of burrow's programs, Postgres and RabbitMQ."""
import collections
import re
import sys

line_re = re.compile(
    r"^\s*(?P<comm>.+?)\s+(?P<pid>\d+)/\d+\s+\S+\s+(?P<sym>.*?)\s+\((?P<dso>[^()]*)\)\s*$")
samples = []
exes = collections.defaultdict(collections.Counter)
for line in open(sys.argv[1], errors="replace"):
    m = line_re.match(line)
    if not m:
        continue
    dso = m["dso"].rsplit("/", 1)[-1]
    pid = int(m["pid"])
    if not dso.startswith(("[", "lib", "ld-")):
        exes[pid][dso] += 1
    samples.append((pid, m["comm"].strip(), m["sym"] or "[unknown]", dso))

def program(pid, comm):
    exe = exes[pid].most_common(1)
    return exe[0][0] if exe else comm

total = len(samples)
per_program = collections.Counter()
kernel = collections.Counter()
pids = collections.defaultdict(set)
syms = collections.defaultdict(collections.Counter)
for pid, comm, sym, dso in samples:
    name = program(pid, comm)
    per_program[name] += 1
    pids[name].add(pid)
    kernel[name] += dso.startswith("[kernel")
    syms[name][f"{sym} ({dso})"] += 1

print(f"\n{total} samples (499 Hz, all cores); by program:")
for name, n in per_program.most_common(12):
    print(f"  {100 * n / total:5.1f} %  {name} ({len(pids[name])} processes; {100 * kernel[name] / n:.0f} % in the kernel)")
for name in ("burrow-worker", "burrow-api", "burrow-bench", "postgres", "beam.smp"):
    n = per_program[name]
    if not n:
        continue
    print(f"\n{name}: {n} samples; top symbols:")
    for sym, k in syms[name].most_common(15):
        print(f"  {100 * k / n:5.1f} %  {sym}")
PY
echo "profile: $out.data (perf report -i $out.data --sort comm,dso,sym)"
exit "$status"
