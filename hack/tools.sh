#!/usr/bin/env bash
# Builds the binaries the tests run (etcd, kube-apiserver, ...) from the small Go
# modules under tests/tools, two lanes at a time, into a cache outside the clone keyed by
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
  [helm-controller]=github.com/fluxcd/helm-controller
  [notification-controller]=github.com/fluxcd/notification-controller
  [flux]=github.com/fluxcd/flux2/v2/cmd/flux
  [kubelet]=k8s.io/kubernetes/cmd/kubelet
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
  [coredns]=github.com/externalsource/externalsource-controller/tests/tools/coredns
  [kube-state-metrics]=k8s.io/kube-state-metrics/v2
  [gitea]=code.gitea.io/gitea
)
# Tools built inside a copy of their own module's source rather than as a
# dependency of the tool module: the flux CLI embeds cmd/flux/manifests/*.yaml,
# which its released module zip lacks (a placeholder is written), and its own
# go.mod carries the replace lines it needs; Gitea's module declares another
# path (gitea.dev) than the one the proxy serves it under, carries replace
# lines too, and embeds its options and templates only once `go generate` has
# packed them (the bindata tag). The value is the module path; the tool
# module's go.mod requires it at the version to build.
declare -A srcmod=(
  [flux]=github.com/fluxcd/flux2/v2
  [gitea]=code.gitea.io/gitea
)
# Build tags per tool.
declare -A tags=(
  [gitea]=bindata
)
# CGO_ENABLED per tool where it matters: yq runs inside the hook sandbox, which
# grants it no libraries, and coredns runs from an image with no libc, so both
# must be static.
declare -A cgo=(
  [yq]=0
  [coredns]=0
)
# Every tool links without its symbol table and DWARF (-s -w): nothing here
# debugs them, and leaving both out saves each link a part of its time.
strip="-s -w"
k8sver="-X k8s.io/component-base/version.gitVersion=v1.34.4 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34"
declare -A ldflags=(
  [kube-apiserver]="$k8sver"
  [kubelet]="$k8sver"
  [kube-controller-manager]="$k8sver"
  [kube-scheduler]="$k8sver"
  [kube-proxy]="$k8sver"
  [flux]="-X main.VERSION=2.9.5"
  [gitea]="-X main.Version=1.27.3 -X main.Tags=bindata"
)

tools=()
for a in "$@"; do [ "$a" = crds ] || [ "$a" = debs ] || tools+=("$a"); done
if [ $# -eq 0 ]; then
  for d in "$root"/tests/tools/*/; do
    [ -f "$d/go.mod" ] && tools+=("$(basename "$d")")
  done
fi

# build_from_source TOOL DIR OUT: copies the module the tool module requires
# out of the module cache, prepares it (the flux CLI: the placeholder
# manifest it embeds, since the tests never run its install/bootstrap
# commands, which need the real ones; Gitea: its bindata, packed from the
# source's own options, templates and public files by its go:generate lines)
# and builds the package inside it.
build_from_source() {
  local t=$1 dir=$2 out=$3 mod=${srcmod[$1]} ver src work rel
  ver=$(cd "$dir" && go list -m -f '{{.Version}}' "$mod") || return 1
  src=$(cd "$dir" && go mod download -json "$mod@$ver" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -n "$src" ] || { echo "tools: cannot download $mod@$ver" >&2; return 1; }
  work="$out/src"
  cp -r "$src" "$work" && chmod -R u+w "$work" || return 1
  case $t in
  flux)
    mkdir -p "$work/cmd/flux/manifests"
    printf '# placeholder: the tests never install Flux with this binary\n' >"$work/cmd/flux/manifests/placeholder.yaml"
    ;;
  gitea)
    (cd "$work" && CGO_ENABLED=0 go generate -tags bindata ./modules/options ./modules/templates ./modules/public ./modules/migration) || return 1
    ;;
  esac
  rel=${pkg[$t]#"$mod"}
  (cd "$work" && CGO_ENABLED=${cgo[$t]:-$(go env CGO_ENABLED)} go build -trimpath -tags "${tags[$t]:-}" -ldflags "$strip ${ldflags[$t]:-}" -o "$out/$t" "./${rel#/}") || return 1
  rm -rf "$work"
}

# Tools that share most of their dependencies build one after another in one
# lane, so that the later ones find the earlier one's packages in the build
# cache rather than compiling them a second time at the same moment; lanes
# run side by side (EXS_TOOLS_JOBS at once, default 2). One go build leaves a
# core idle through its link and the narrow parts of its package graph, and
# one tool's module downloads wait on the network: a second lane fills both.
declare -A lane=(
  [kube-apiserver]=k8s [kubelet]=k8s [kube-controller-manager]=k8s
  [kube-scheduler]=k8s [kube-proxy]=k8s
  [kustomize-controller]=flux [helm-controller]=flux
  [notification-controller]=flux [flux]=flux
)
# The lanes in the order they start: the longest first. Cold, two lanes on
# 2 cores with empty module and build caches (docs/dev/development.md, "CI"):
# on a slower machine the Flux lane took 17 min, the Kubernetes lane 14,
# Gitea 9. The Flux lane is that short only because its three controllers'
# tool modules hold every module they share at one version (the flux CLI
# builds from its own go.mod): when kustomize-controller pinned other
# Kubernetes and controller-runtime versions than the others, the lane
# took 37 min there. Keep them aligned when bumping one. A controller's version
# is written only in its tool module: the CRD copies below and tests/cluster
# (devenv.ToolModuleVersion) read it from there.
lane_order=(flux k8s gitea)

# build_tool TOOL KEY: builds one tool into its cache entry.
build_tool() {
  local t=$1 key=$2 dir="$root/tests/tools/$1" start tmp
  echo "tools: building $t (${pkg[$t]}); the first build can take minutes" >&2
  start=$(date +%s)
  tmp="$cache/$t-$key.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  if [ -n "${srcmod[$t]:-}" ]; then
    build_from_source "$t" "$dir" "$tmp" || { rm -rf "$tmp"; return 1; }
  else
    (cd "$dir" && CGO_ENABLED=${cgo[$t]:-$(go env CGO_ENABLED)} go build -trimpath -tags "${tags[$t]:-}" -ldflags "$strip ${ldflags[$t]:-}" -o "$tmp/$t" "${pkg[$t]}") || { rm -rf "$tmp"; return 1; }
  fi
  rm -rf "$cache/$t-$key" && mv "$tmp" "$cache/$t-$key" || return 1
  echo "tools: built $t in $(( $(date +%s) - start ))s" >&2
}

# run_lane "TOOL:KEY ...": a lane's tools in order; the first failure ends it.
# (Called in a list, so `set -e` does not apply inside: every step of
# build_tool and build_from_source returns its own failure.)
run_lane() {
  local tk
  for tk in $1; do build_tool "${tk%%:*}" "${tk#*:}" || return 1; done
}

declare -A out_of=() lane_tools=()
units=()
for t in "${tools[@]}"; do
  dir="$root/tests/tools/$t"
  [ -n "${pkg[$t]:-}" ] || { echo "tools: unknown tool $t" >&2; exit 1; }
  key=$( { cat "$dir/go.mod" "$dir/go.sum" "$dir"/*.go 2>/dev/null; go version; echo "${pkg[$t]} $strip ${ldflags[$t]:-}"; [ -z "${cgo[$t]:-}" ] || echo "CGO_ENABLED=${cgo[$t]}"; [ -z "${tags[$t]:-}" ] || echo "tags=${tags[$t]}"; } | sha256sum | cut -c1-16)
  out_of[$t]="$cache/$t-$key/$t"
  [ -x "${out_of[$t]}" ] && continue
  l=${lane[$t]:-$t}
  [ -n "${lane_tools[$l]:-}" ] || units+=("$l")
  lane_tools[$l]="${lane_tools[$l]:-} $t:$key"
done
ordered=()
for l in "${lane_order[@]}"; do [ -z "${lane_tools[$l]:-}" ] || ordered+=("$l"); done
for l in "${units[@]}"; do [[ " ${lane_order[*]} " == *" $l "* ]] || ordered+=("$l"); done

jobs_max=${EXS_TOOLS_JOBS:-2}
running=0
for l in "${ordered[@]}"; do
  if [ "$running" -ge "$jobs_max" ]; then wait -n || true; running=$((running - 1)); fi
  run_lane "${lane_tools[$l]}" &
  running=$((running + 1))
done
wait
# Success is judged by what is in the cache, not by exit statuses a
# finished lane may already have handed to `wait -n`.
failed=()
for t in "${tools[@]}"; do
  if [ -x "${out_of[$t]}" ]; then ln -sfn "${out_of[$t]}" "$root/bin/$t"; else failed+=("$t"); fi
done
[ ${#failed[@]} -eq 0 ] || { echo "tools: failed to build: ${failed[*]} (the errors are above)" >&2; exit 1; }

# The Flux CRDs the tests install (Flux owns them; we never ship copies):
# taken from the released controller modules in the module cache.
# bin/crds holds what every test needs (ExternalArtifact); bin/crds-e2e what
# the e2e suite's Flux controllers need besides (the other source kinds they
# watch, Kustomization, HelmRelease, and notification-controller's kinds).
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
# modver GOMOD MODULE prints the version GOMOD requires MODULE at: each
# version is written once, in the go.mod that builds against it (the
# source-controller API ours compiles with; each Flux controller's tool
# module), and read from there.
modver() {
  local v
  v=$(awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$1")
  [ -n "$v" ] || { echo "tools: $1 requires no $2" >&2; exit 1; }
  echo "$v"
}
if [ $# -eq 0 ] || [[ " $* " == *" crds "* ]]; then
  srcver=$(modver "$root/go.mod" github.com/fluxcd/source-controller/api)
  flux_crds github.com/fluxcd/source-controller "$srcver" crds source.toolkit.fluxcd.io_externalartifacts.yaml
  flux_crds github.com/fluxcd/source-controller "$srcver" crds-e2e \
    source.toolkit.fluxcd.io_buckets.yaml source.toolkit.fluxcd.io_gitrepositories.yaml \
    source.toolkit.fluxcd.io_helmcharts.yaml source.toolkit.fluxcd.io_helmrepositories.yaml \
    source.toolkit.fluxcd.io_ocirepositories.yaml
  for c in kustomize-controller helm-controller notification-controller; do
    ver=$(modver "$root/tests/tools/$c/go.mod" "github.com/fluxcd/$c")
    case $c in
      kustomize-controller) crds=(kustomize.toolkit.fluxcd.io_kustomizations.yaml) ;;
      helm-controller) crds=(helm.toolkit.fluxcd.io_helmreleases.yaml) ;;
      notification-controller) crds=(notification.toolkit.fluxcd.io_alerts.yaml
        notification.toolkit.fluxcd.io_providers.yaml notification.toolkit.fluxcd.io_receivers.yaml) ;;
    esac
    flux_crds "github.com/fluxcd/$c" "$ver" crds-e2e "${crds[@]}"
  done
fi

# The Debian packages the one-node cluster's images are built from
# (tests/cluster: the hook executor's jq and its libraries, libc for Flux's
# controllers, CA certificates), downloaded with apt-get into the cache; the
# tests unpack them and reach no network. Keep in step with
# HookExecutorPackages in tests/cluster/projectimages.go.
if [ $# -eq 0 ] || [[ " $* " == *" debs "* ]]; then
  mkdir -p "$cache/debs"
  for p in jq libjq1 libonig5 libc6 ca-certificates; do
    ls "$cache/debs/${p}_"*.deb >/dev/null 2>&1 && continue
    (cd "$cache/debs" && apt-get download -qq "$p" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) || true
    ls "$cache/debs/${p}_"*.deb >/dev/null 2>&1 || { echo "tools: apt-get download $p failed (apt-get update first?)" >&2; exit 1; }
  done
fi
