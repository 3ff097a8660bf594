#!/usr/bin/env bash
# Builds a Debian base image locally, for machines that reach Debian's package mirror but no
# image registry (this project's CI and developer machines):
#
#   bash deploy/containers/base-image.sh SUITE        # SUITE: bookworm or trixie
#
# debootstrap --variant=minbase writes a Debian root file system from Debian's packages; it is
# trimmed the way Debian's own *-slim images are (no docs, man pages or locales, dpkg told to
# keep them out of later installs; no apt lists, .deb files or package caches, apt told to keep
# none after an install), packed into
# target/containers/rootfs-SUITE.tar (the cache: a later run skips debootstrap) and imported
# with `podman import` as localhost/burrow-base:SUITE. Prints the image name on stdout.
#
# Knobs: DEBIAN_MIRROR (default http://deb.debian.org/debian), BASE_IMAGE_REBUILD=1 ignores the
# cached tarball. Needs root, debootstrap and podman (CONTAINERS_CONF: see containers.conf).
set -euo pipefail

suite=${1:?usage: base-image.sh bookworm|trixie}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=$root/target/containers
tarball=$cache/rootfs-$suite.tar
image=localhost/burrow-base:$suite

log() { printf 'base-image: %s\n' "$*" >&2; }

if [[ ${BASE_IMAGE_REBUILD:-0} == 1 ]]; then rm -f "$tarball"; fi

if [[ ! -s $tarball ]]; then
  mkdir -p "$cache"
  dir=$(mktemp -d "$cache/rootfs-$suite.XXXXXX")
  trap 'rm -rf "$dir"' EXIT
  log "debootstrap --variant=minbase $suite from $mirror (about a minute)"
  start=$SECONDS
  debootstrap --variant=minbase "$suite" "$dir" "$mirror" >"$cache/debootstrap-$suite.log" 2>&1 || {
    tail -n 20 "$cache/debootstrap-$suite.log" >&2
    exit 1
  }
  # As Debian's slim images: later `apt-get install`s inside the image skip docs and locales too.
  cat >"$dir/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
  # And as there, apt keeps no .deb files, package caches or translations after an install, so
  # an image's `apt-get install` layer holds the installed files only.
  cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
Acquire::CompressionTypes::Order:: "gz";
EOF
  find "${dir:?}/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "${dir:?}/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "${dir:?}"/usr/share/{man,groff,info,locale,lintian,linda}/* \
    "${dir:?}"/var/cache/apt/*.bin "${dir:?}"/var/cache/apt/archives/*.deb \
    "${dir:?}"/var/lib/apt/lists/* "${dir:?}"/var/log/* "${dir:?}"/tmp/* "${dir:?}"/dev/*
  # No service starts inside an image build (apt's postinst scripts ask policy-rc.d).
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod 0755 "$dir/usr/sbin/policy-rc.d"
  # Written whole then renamed, so an interrupted run never leaves a truncated cache.
  tar --numeric-owner -C "$dir" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
  log "rootfs $suite: $(du -h "$tarball" | cut -f1) in ${tarball#"$root"/} ($((SECONDS - start)) s)"
fi

if ! podman image exists "$image" || [[ $(podman image inspect "$image" --format '{{index .Labels "burrow.rootfs"}}') != "$(stat -c %Y "$tarball")" ]]; then
  log "importing $image"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --change "LABEL burrow.rootfs=$(stat -c %Y "$tarball")" \
    "$tarball" "$image" >/dev/null
fi
echo "$image"
