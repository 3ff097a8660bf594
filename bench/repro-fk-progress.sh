#!/usr/bin/env bash
# bench/repro-fk-progress.sh: the import's biggest gap to its raw floor, reproduced with psql
# alone. One COPY of 1,000,000 rows into imported_rows (whose job_id references jobs), timed
# twice on a fresh parent row: alone, and while another session UPDATEs that parent row every
# 250 ms — what the worker's progress watcher does while an import runs.
#
# Why it costs: COPY checks the foreign key once per row at the end of the statement, each
# check locking the jobs row FOR KEY SHARE. An UPDATE while those locks are held gives the row
# a MultiXact and one more version in its HOT chain, which no vacuum may prune while the import
# runs; every later check walks the chain and looks the MultiXacts up
# (GetMultiXactIdMembers in a profile).
#
# Uses its own database (burrow_bench_repro, made by `burrow-api migrate`, dropped on exit).
# About a minute. REPRO_RUNS pairs (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
export PGOPTIONS='-c client_min_messages=warning'

admin=${BENCH_ADMIN_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=${admin%/*}/burrow_bench_repro
rows=$(mktemp /tmp/burrow-repro-XXXXXX.copy)
job=b9c83324-6ec0-498f-a51b-7ccb0f036c42
updater=

cleanup() {
  [[ -n $updater ]] && kill "$updater" 2>/dev/null || true
  rm -f "$rows"
  psql "$admin" -qc "DROP DATABASE IF EXISTS burrow_bench_repro WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

psql "$admin" -qc "DROP DATABASE IF EXISTS burrow_bench_repro WITH (FORCE)"
DATABASE_URL=$db target/release/burrow-api migrate >/dev/null 2>&1
psql "$db" -qc "\copy (SELECT '$job'::uuid, g + 1, g, 'First' || g, 'Last' || g, 'p' || g || '@example.com', 'F', '10.0.0.1' FROM generate_series(1, 1000000) g) TO '$rows'"

copy_once() {
  psql "$db" -q -c "TRUNCATE jobs CASCADE" \
    -c "INSERT INTO jobs (id, kind, correlation_id, status) VALUES ('$job', 'import_xlsx', gen_random_uuid(), 'processing')" \
    -c "CHECKPOINT"
  if [[ $1 == updater ]]; then
    (while true; do
      psql "$db" -Atqc "UPDATE jobs SET progress_done = coalesce(progress_done, 0) + 1 WHERE id = '$job'" >/dev/null
      sleep 0.25
    done) &
    updater=$!
  fi
  local start end
  start=$(date +%s.%N)
  psql "$db" -qc "\copy imported_rows (job_id, row_number, id, first_name, last_name, email, gender, ip_address) FROM '$rows'"
  end=$(date +%s.%N)
  if [[ -n $updater ]]; then kill "$updater"; wait "$updater" 2>/dev/null || true; updater=; fi
  printf '%-32s %6.2f s\n' "$2" "$(echo "$end - $start" | bc)"
}

for _ in $(seq "${REPRO_RUNS:-2}"); do
  copy_once alone "COPY, parent row untouched:"
  copy_once updater "COPY, parent UPDATEd every 250 ms:"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
