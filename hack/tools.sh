#!/usr/bin/env bash
# Builds the binaries the tests run (etcd, kube-apiserver, ...) from the small Go
# modules under tests/tools, one at a time, into a cache outside the clone keyed by
# the tool module's go.mod/go.sum, the Go version and the build flags, and links
# them into bin/. A warm run only checks keys and links: seconds.
#
# usage: hack/tools.sh [tool ...|crds]   (default: every tool under tests/tools, and crds)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${EXS_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/externalsource-controller/tools}
mkdir -p "$cache" "$root/bin"

# package and link flags per tool; a tool module's directory name is the binary name.
declare -A pkg=(
  [etcd]=go.etcd.io/etcd/server/v3
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [versitygw]=github.com/versity/versitygw/cmd/versitygw
  [kustomize-controller]=github.com/fluxcd/kustomize-controller
  [goreleaser]=github.com/goreleaser/goreleaser/v2
  [yq]=github.com/mikefarah/yq/v4
)
# CGO_ENABLED per tool where it matters: yq runs inside the hook sandbox, which
# grants it no libraries, so it must be static.
declare -A cgo=(
  [yq]=0
)
declare -A ldflags=(
  [kube-apiserver]="-X k8s.io/component-base/version.gitVersion=v1.34.4 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34"
)

tools=()
for a in "$@"; do [ "$a" = crds ] || tools+=("$a"); done
if [ $# -eq 0 ]; then
  for d in "$root"/tests/tools/*/; do
    [ -f "$d/go.mod" ] && tools+=("$(basename "$d")")
  done
fi

for t in "${tools[@]}"; do
  dir="$root/tests/tools/$t"
  [ -n "${pkg[$t]:-}" ] || { echo "tools: unknown tool $t" >&2; exit 1; }
  key=$( { cat "$dir/go.mod" "$dir/go.sum"; go version; echo "${pkg[$t]} ${ldflags[$t]:-}"; [ -z "${cgo[$t]:-}" ] || echo "CGO_ENABLED=${cgo[$t]}"; } | sha256sum | cut -c1-16)
  out="$cache/$t-$key/$t"
  if [ ! -x "$out" ]; then
    echo "tools: building $t (${pkg[$t]}); the first build can take minutes" >&2
    start=$(date +%s)
    tmp="$cache/$t-$key.tmp.$$"
    mkdir -p "$tmp"
    (cd "$dir" && CGO_ENABLED=${cgo[$t]:-$(go env CGO_ENABLED)} go build -trimpath -ldflags "${ldflags[$t]:-}" -o "$tmp/$t" "${pkg[$t]}")
    rm -rf "$cache/$t-$key" && mv "$tmp" "$cache/$t-$key"
    echo "tools: built $t in $(( $(date +%s) - start ))s" >&2
  fi
  ln -sfn "$out" "$root/bin/$t"
done

# The Flux CRDs the tests install (Flux owns them; we never ship copies):
# taken from the released controller modules in the module cache.
# bin/crds holds what every test needs (ExternalArtifact); bin/crds-e2e what
# kustomize-controller needs besides (the other source kinds it watches, and
# Kustomization).
flux_crds() {
  local mod=$1 ver=$2 dest=$3; shift 3
  local dir
  dir=$(cd "$root" && go mod download -json "$mod@$ver" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { echo "tools: cannot download $mod@$ver" >&2; exit 1; }
  mkdir -p "$root/bin/$dest"
  for f in "$@"; do
    install -m 0644 "$dir/config/crd/bases/$f" "$root/bin/$dest/$f"
  done
}
if [ $# -eq 0 ] || [[ " $* " == *" crds "* ]]; then
  flux_crds github.com/fluxcd/source-controller v1.9.6 crds source.toolkit.fluxcd.io_externalartifacts.yaml
  flux_crds github.com/fluxcd/source-controller v1.9.6 crds-e2e \
    source.toolkit.fluxcd.io_buckets.yaml source.toolkit.fluxcd.io_gitrepositories.yaml \
    source.toolkit.fluxcd.io_helmcharts.yaml source.toolkit.fluxcd.io_helmrepositories.yaml \
    source.toolkit.fluxcd.io_ocirepositories.yaml
  flux_crds github.com/fluxcd/kustomize-controller v1.7.3 crds-e2e kustomize.toolkit.fluxcd.io_kustomizations.yaml
fi
