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
  key=$( { cat "$dir/go.mod" "$dir/go.sum"; go version; echo "${pkg[$t]} ${ldflags[$t]:-}"; } | sha256sum | cut -c1-16)
  out="$cache/$t-$key/$t"
  if [ ! -x "$out" ]; then
    echo "tools: building $t (${pkg[$t]}); the first build can take minutes" >&2
    start=$(date +%s)
    tmp="$cache/$t-$key.tmp.$$"
    mkdir -p "$tmp"
    (cd "$dir" && go build -trimpath -ldflags "${ldflags[$t]:-}" -o "$tmp/$t" "${pkg[$t]}")
    rm -rf "$cache/$t-$key" && mv "$tmp" "$cache/$t-$key"
    echo "tools: built $t in $(( $(date +%s) - start ))s" >&2
  fi
  ln -sfn "$out" "$root/bin/$t"
done

# The Flux CRDs the tests install (Flux owns them; we never ship copies):
# taken from the released controller modules in the module cache.
flux_crds() {
  local mod=$1 ver=$2; shift 2
  local dir
  dir=$(cd "$root" && go mod download -json "$mod@$ver" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { echo "tools: cannot download $mod@$ver" >&2; exit 1; }
  mkdir -p "$root/bin/crds"
  for f in "$@"; do
    install -m 0644 "$dir/config/crd/bases/$f" "$root/bin/crds/$f"
  done
}
if [ $# -eq 0 ] || [[ " $* " == *" crds "* ]]; then
  flux_crds github.com/fluxcd/source-controller v1.9.6 source.toolkit.fluxcd.io_externalartifacts.yaml
fi
