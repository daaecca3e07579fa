#!/usr/bin/env bash
# baseimages.sh DIR: an offline busybox base image (busybox-static rootfs, no
# network, no buildah) pushed to the buildset registry; tests and the local
# pipeline build FROM it. Needs registries.sh first.
# The OCI layout is built by hand (tar + gzip + sha256) and is reproducible;
# it is cached under $SLIPWAY_CACHE, so later starts only push it (~0.2 s).
# Exports SLIPWAY_TEST_BASE_IMAGE (full reference) and SLIPWAY_TEST_BASE_DIGEST.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
[ $# -eq 1 ] || usage
dir=$1
[ -f "$dir/env.d/registries.env" ] || die "baseimages needs the registries: hack/testenv.sh up DIR registries baseimages"
# shellcheck source=/dev/null # written by hack/servers/registries.sh
. "$dir/env.d/registries.env"
command -v busybox >/dev/null || die "busybox-static missing: run hack/install-deps.sh"
[ -f /bin/busybox ] || die "busybox-static missing: run hack/install-deps.sh"
command -v skopeo >/dev/null || die "skopeo missing: run hack/install-deps.sh"

bbver=$(dpkg-query -W -f '${Version}' busybox-static 2>/dev/null || busybox | head -1)
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
key=$( { cat "$0"; echo "$bbver $arch"; } | sha256sum | cut -c1-16)
cache="$SLIPWAY_CACHE/baseimage-busybox-$key"
tag=1.35

if [ ! -f "$cache/layout/index.json" ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/slipway-baseimage.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  root="$work/rootfs"
  mkdir -p "$root"/{bin,etc,tmp,root,home,usr/bin,var} "$work/layout/blobs/sha256"
  cp /bin/busybox "$root/bin/busybox"
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
  done
  ln -s /bin/env "$root/usr/bin/env"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  chmod 1777 "$root/tmp"; chmod 0700 "$root/root"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
      --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
      -C "$root" -cf "$work/layer.tar" .
  diffid=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  gzip -n -9 -c "$work/layer.tar" >"$work/layer.tar.gz"
  ldig=$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1); lsize=$(stat -c %s "$work/layer.tar.gz")
  mv "$work/layer.tar.gz" "$work/layout/blobs/sha256/$ldig"
  printf '{"architecture":"%s","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"slipway hack/servers/baseimages.sh: busybox-static %s rootfs"}]}' \
    "$arch" "$diffid" "$bbver" >"$work/config.json"
  cdig=$(sha256sum "$work/config.json" | cut -d' ' -f1); csize=$(stat -c %s "$work/config.json")
  mv "$work/config.json" "$work/layout/blobs/sha256/$cdig"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$cdig" "$csize" "$ldig" "$lsize" >"$work/manifest.json"
  mdig=$(sha256sum "$work/manifest.json" | cut -d' ' -f1); msize=$(stat -c %s "$work/manifest.json")
  mv "$work/manifest.json" "$work/layout/blobs/sha256/$mdig"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
    "$mdig" "$msize" "$tag" >"$work/layout/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"
  mkdir -p "$(dirname "$cache")"
  rm -rf "$cache.tmp"; mv "$work" "$cache.tmp"; rm -rf "$cache.tmp/rootfs" "$cache.tmp/layer.tar"
  rm -rf "$cache"; mv "$cache.tmp" "$cache"
  trap - EXIT
fi

ref="$SLIPWAY_TEST_REGISTRY_BUILDSET/slipway/busybox:$tag"
mkdir -p "$dir/tmp"
TMPDIR="$dir/tmp" skopeo copy --quiet --dest-tls-verify=false "oci:$cache/layout:$tag" "docker://$ref" >"$dir/logs/baseimages.log" 2>&1 \
  || { cat "$dir/logs/baseimages.log" >&2; die "pushing the busybox base image to $ref"; }
digest=$(TMPDIR="$dir/tmp" skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$ref")
cat >"$dir/env.d/baseimages.env" <<ENV
export SLIPWAY_TEST_BASE_IMAGE=$ref
export SLIPWAY_TEST_BASE_DIGEST=$digest
ENV
