#!/usr/bin/env bash
# `just images`: builds burrow's two images from deploy/Dockerfile with podman, checks them and
# prints their sizes:
#
#   bash deploy/containers/images.sh      # → localhost/burrow-api:local, localhost/burrow-worker:local
#
# This machine reaches Debian's mirror and crates.io but no image registry, so:
#   - the runtime base is built here (base-image.sh: debootstrap → podman import) and passed as
#     RUNTIME_BASE; users with a registry keep the default, debian:bookworm-slim;
#   - the release binaries are compiled on this host (cargo, same Debian suite as the base, so
#     the glibc matches) and passed in as the `prebuilt` build context (BINARIES=prebuilt): the
#     Dockerfile's builder stage needs the rust:*-slim image, which no registry here serves.
# Checks per image: the user is 10001 (non-root), both binaries start, the HEALTHCHECK is in the
# image (podman keeps it only with --format docker) and, run by podman inside a container whose
# server is not running, reports unhealthy (so the probe really asks the port; `just
# compose-test` sees it healthy with the server up).
#
# Knobs: BURROW_TAG (local), DEBIAN_SUITE (bookworm: the host's suite; the binaries need a
# runtime glibc at least as new as the host's).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
tag=${BURROW_TAG:-local}
suite=${DEBIAN_SUITE:-bookworm}
bindir=$root/target/containers/bin

log() { printf 'images: %s\n' "$*" >&2; }
fail() {
  log "FAIL: $*"
  exit 1
}

bash "$here/setup.sh"
base=$(bash "$here/base-image.sh" "$suite")

host_suite=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
[[ $host_suite == "$suite" ]] ||
  fail "the binaries are built on this host ($host_suite) but the base is $suite: set DEBIAN_SUITE=$host_suite"

log "cargo build --release (burrow-api, burrow-worker)"
start=$SECONDS
nice -n 10 cargo build --release --locked --quiet --bin burrow-api --bin burrow-worker
mkdir -p "$bindir"
for bin in burrow-api burrow-worker; do
  strip -o "$bindir/$bin" "target/release/$bin"
done
log "binaries ready ($((SECONDS - start)) s)"

images=()
for target in api worker; do
  image=localhost/burrow-$target:$tag
  old=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
  log "podman build --target $target → $image"
  start=$SECONDS
  podman build --quiet --format docker -f deploy/Dockerfile \
    --ignorefile deploy/Dockerfile.dockerignore --target "$target" \
    --build-arg DEBIAN_SUITE="$suite" --build-arg RUNTIME_BASE="$base" \
    --build-arg BINARIES=prebuilt --build-context prebuilt="$bindir" \
    -t "$image" . >/dev/null
  # The image this one replaces, unless a container still uses it.
  if [[ -n $old && $old != "$(podman image inspect --format '{{.Id}}' "$image")" ]]; then
    podman rmi "$old" >/dev/null 2>&1 || true
  fi
  # podman keeps the binaries-prebuilt stage as an untagged image (a copy of the binaries);
  # the build is done with it. (--layers=false would not keep it, but fails on this Dockerfile
  # with podman 4.3: "identifier is not an image".)
  podman images -q --filter label=burrow.stage=binaries-prebuilt | xargs -r podman rmi >/dev/null 2>&1 || true
  log "built $image ($((SECONDS - start)) s)"
  images+=("$image")
done

# Containers made by the checks below, removed on the way out.
probes=()
cleanup() {
  for c in "${probes[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

for image in "${images[@]}"; do
  user=$(podman image inspect --format '{{.Config.User}}' "$image")
  # --health-cmd none: these one-shot runs need no health check (podman would try to schedule
  # one with systemd, which is not there).
  uid=$(podman run --rm --health-cmd none --entrypoint id "$image" -u)
  [[ $user == 10001:10001 && $uid == 10001 ]] || fail "$image runs as '$user' (uid $uid), not 10001"
  for bin in burrow-api burrow-worker; do
    podman run --rm --health-cmd none --entrypoint "$bin" "$image" --help >/dev/null ||
      fail "$bin does not start in $image (a missing library?)"
  done
  health=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$image")
  [[ $health == *curl* ]] || fail "$image has no HEALTHCHECK ($health)"
  # The server is replaced by `sleep`: the image's own probe must then fail.
  probe=burrow-images-probe-$$-${image##*/burrow-}
  probe=${probe//:/-}
  probes+=("$probe")
  podman run -d --name "$probe" --entrypoint sleep "$image" 60 >/dev/null 2>&1
  if podman healthcheck run "$probe" >/dev/null 2>&1; then
    fail "$image: HEALTHCHECK passes with no server running"
  fi
  log "$image: user 10001, both binaries start, HEALTHCHECK present and fails without a server"
done

echo
printf '%-34s %10s\n' image size
for image in "$base" "${images[@]}"; do
  printf '%-34s %7.1f MB\n' "$image" "$(podman image inspect --format '{{.Size}}' "$image" | awk '{print $1 / 1e6}')"
done
