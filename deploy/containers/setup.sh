#!/usr/bin/env bash
# Installs what the container recipes (`just images`, `just compose-test`) need, only what is
# missing, so it is cheap to run every time:
#   - podman, runc (podman's OCI runtime here: crun fails on this kind of machine; see
#     containers.conf) and debootstrap, from Debian's packages;
#   - podman-compose, pinned in requirements.txt, from PyPI into target/compose-venv.
#
#   bash deploy/containers/setup.sh     # needs root for apt-get
#
# Knob: COMPOSE_VENV (default target/compose-venv).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${COMPOSE_VENV:-$root/target/compose-venv}
requirements=$here/requirements.txt

log() { printf 'containers-setup: %s\n' "$*" >&2; }

missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if ((${#missing[@]})); then
  log "installing ${missing[*]} (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ ! -x $venv/bin/podman-compose ]] || ! cmp -s "$requirements" "$venv/.requirements"; then
  log "installing podman-compose into ${venv#"$root"/} (PyPI)"
  [[ -x $venv/bin/python ]] || { rm -rf "$venv"; python3 -m venv "$venv"; }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/.requirements"
fi
