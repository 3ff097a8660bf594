# burrow's tasks. `just demo` runs the main job on real input; `just test` runs every test.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Make sure PostgreSQL and RabbitMQ run on localhost (installs them from Debian's packages if missing).
services:
    bash deploy/local/services.sh

# Import the five fixture workbooks end to end: api + two workers + RabbitMQ + Postgres.
demo: services
    bash deploy/local/demo.sh

# The whole test suite, against the real services on localhost (cargo-nextest if installed),
# then the doc examples (nextest does not run doctests).
test: services
    if cargo nextest --version >/dev/null 2>&1; then \
      cargo nextest run --workspace --all-features --no-fail-fast; \
    else \
      cargo test --workspace --all-features --no-fail-fast; \
    fi
    cargo test --doc --workspace --all-features

# The api answers as its OpenAPI document says: schemathesis (--checks all, pinned in
# crates/api/contract/) against an isolated api with keys required (about 3 min).
contract: services
    bash crates/api/contract/run.sh

# Formatting and lints, warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings

# Regenerate the committed fixtures (deterministic: the bytes do not change).
fixtures:
    cargo run -p burrow-shared --features fixtures --bin burrow-fixtures -- mock --dir fixtures

# Write a big people workbook for benchmarks (not committed), e.g. `just big-fixture 1000000`.
big-fixture rows="1000000":
    cargo run --release -p burrow-shared --features fixtures --bin burrow-fixtures -- big --rows {{rows}} --out fixtures/big/people-{{rows}}.xlsx

# The fault-injection suite: kills and restarts processes, RabbitMQ and Postgres (a few minutes).
chaos: services
    cargo build --bins
    cargo test -p burrow-worker --all-features --test chaos -- --ignored --nocapture --test-threads 1

# Validate deploy/: compose.yaml (Compose spec), k8s/ (Kubernetes and KEDA schemas), Dockerfile (hadolint).
deploy-check:
    bash deploy/validate.sh

# Local Debian base (debootstrap), release binaries built on this host; checks user and HEALTHCHECK.
# The api and worker images from deploy/Dockerfile with podman; prints their sizes.
images:
    bash deploy/containers/images.sh

# RabbitMQ 4.0 and PostgreSQL 17 built from Debian's packages; removes all it made afterwards.
# deploy/compose.yaml with podman-compose: workers 3 -> 5 -> 1, fixtures imported, one killed, 0 lost.
compose-test: images
    bash deploy/containers/compose-test.sh

# The fault-injection suite stops and restarts the containers' services, not this machine's.
# The tests and the chaos suite against RabbitMQ 4.0 and PostgreSQL 17 in containers.
matrix:
    bash deploy/containers/matrix.sh

# A 3-node RabbitMQ 4.0 cluster in containers (network of its own, removed afterwards) under a
# stream of jobs: its work queue's leader stopped and restarted, a node cut off the network and
# reconnected; prints the time to recover; 0 lost, 0 applied twice.
cluster-chaos: services
    bash deploy/containers/cluster-chaos.sh

# promtool comes from Debian's prometheus package, installed if missing; only promtool is used, so
# the server the package may start is stopped (it would listen on 9090, the worker's port).
# Alerting rules (promtool check + unit tests) and the Grafana dashboard (JSON, known metrics only).
alerts-check:
    command -v promtool >/dev/null 2>&1 || { \
      apt-get update && apt-get install -y --no-install-recommends prometheus; \
      if [ -d /run/systemd/system ]; then systemctl disable --now prometheus || true; \
      elif [ -x /etc/init.d/prometheus ]; then /etc/init.d/prometheus stop || true; fi; \
    }
    promtool check rules deploy/prometheus/alerts.yaml
    promtool test rules deploy/prometheus/alerts_test.yaml
    python3 deploy/grafana/check_dashboard.py deploy/grafana/burrow.json --rules deploy/prometheus/alerts.yaml

# Measured scale-out: 2,000 sleep jobs on 1, 2 and 4 worker processes, then one SIGKILLed (about 3 min).
scale-demo: services
    bash deploy/scale-demo.sh

# The dashboard end to end in headless chromium, real api + worker (after `npm ci` in crates/api/dashboard/tests).
browser-test: services
    bash crates/api/dashboard/tests/run.sh

# Failing inputs are kept in crates/shared/tests/fuzz-regressions/; `just fuzz 600` fuzzes longer.
# Fuzz the job-message decoder and the xlsx import (proptest, stable Rust), about `seconds` per target.
fuzz seconds="60":
    export FUZZ_SECONDS={{seconds}} PROPTEST_CASES=${PROPTEST_CASES:-1000000000}; \
    if cargo nextest --version >/dev/null 2>&1; then \
      cargo nextest run -p burrow-shared --features fixtures --test fuzz_message --test fuzz_import \
        --no-fail-fast --success-output final; \
    else \
      cargo test -p burrow-shared --features fixtures --test fuzz_message --test fuzz_import \
        --no-fail-fast -- --nocapture; \
    fi

# The bench's peers (bench/peers/*.py: polars + ADBC, DuckDB) in the venv target/bench-venv, at
# the versions pinned in bench/peers/requirements.txt (from PyPI); checks that each imports. A
# failure does not stop `just bench`: a peer that cannot run gets a "not run" row.
bench-peers:
    test -x target/bench-venv/bin/python || python3 -m venv target/bench-venv
    -target/bench-venv/bin/pip install --quiet --disable-pip-version-check -r bench/peers/requirements.txt
    -target/bench-venv/bin/python -c 'import polars, fastexcel, pyarrow, adbc_driver_postgresql.dbapi; print("polars", polars.__version__, "fastexcel", fastexcel.__version__)'
    -target/bench-venv/bin/python -c 'import duckdb, importlib.metadata as m; [next(f for f in m.files(p) if f.name.endswith(".duckdb_extension")) for p in ("duckdb-ext-excel", "duckdb-ext-postgres")]; print("duckdb", duckdb.__version__, "+ excel, postgres extensions")'

# Benchmarks side by side with their references from the same run (release build; about 3 min
# once built): prints a table, writes bench/results/latest.json, exits 1 if a target is missed.
bench: services bench-peers
    cargo build --release --bins
    test -f fixtures/big/people-1000000.xlsx || cargo run --release -p burrow-shared --features fixtures --bin burrow-fixtures -- big --rows 1000000 --out fixtures/big/people-1000000.xlsx
    test -f fixtures/big/people-1000000.csv || cargo run --release -p burrow-shared --features fixtures --bin burrow-fixtures -- big --rows 1000000 --out fixtures/big/people-1000000.csv
    target/release/burrow-bench
