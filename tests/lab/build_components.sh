#!/usr/bin/env bash
# Build the real components the lab's Kubernetes tests run: kube-apiserver, etcd and helm.
#
# Sources: the Go module proxy only (go get of the released modules; no other source is fetched).
# Each binary lands in a cache directory keyed by component and version:
#   $WIRECHECK_LAB_CACHE/<component>-<version>/<binary>     (default cache: /var/cache/wirecheck-lab)
# A binary already in the cache is not built again. The Go module and build caches live in the
# same cache directory (gomod/, gobuild/) so a CI machine that keeps it rebuilds nothing.
# Each build's wall time is written beside the binary (build.log, build-seconds).
# Commands in each build's subshell end it with `|| exit 1`: `set -e` does not apply inside `( ... ) || ...`.
#
# Versions: tests/lab/components.env (the tests read the same file).
# Usage: tests/lab/build_components.sh [kube-apiserver|etcd|helm ...]   (default: all three)
set -euo pipefail

# shellcheck source=tests/lab/components.env
. "$(dirname "$0")/components.env"
CACHE="${WIRECHECK_LAB_CACHE:-/var/cache/wirecheck-lab}"

command -v go >/dev/null || { echo "build_components: Go is needed (go1.26 or newer on PATH)" >&2; exit 1; }

mkdir -p "$CACHE"
export GOMODCACHE="$CACHE/gomod" GOCACHE="$CACHE/gobuild"
export CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

log() { echo "build_components: $*" >&2; }

# new_module DIR: an empty main module in DIR to build one released program from
new_module() {
  cd "$1" && go mod init wirecheck.lab/build >/dev/null 2>&1
}

# failed DIR: show the end of the build log and stop
failed() {
  log "build failed; the last lines of $1/build.log:"
  tail -n 40 "$1/build.log" >&2
  exit 1
}

# finish COMPONENT VERSION BIN START: record the build time beside the binary
finish() {
  local dir="$CACHE/$1-$2" secs=$(( $(date +%s) - $4 ))
  echo "$secs" >"$dir/build-seconds"
  echo "$(date -u +%FT%TZ) built $1 $2 in ${secs}s (go $(go env GOVERSION), $(nproc) cores)" >>"$dir/build.log"
  log "$1 $2 built in ${secs}s -> $dir/$3"
}

build_kube_apiserver() {
  local v="$K8S_VERSION" dir="$CACHE/kube-apiserver-$K8S_VERSION"
  [ -x "$dir/kube-apiserver" ] && { log "kube-apiserver $v cached"; return; }
  local start; start=$(date +%s)
  local tmp; tmp=$(mktemp -d); mkdir -p "$dir"
  log "building $(basename "$dir") (log: $dir/build.log)"
  (
    new_module "$tmp" || exit 1
    # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with its own
    # staging/ tree; as a dependency those replaces do not apply, so pin each one to the
    # matching published release (v1.X.Y -> v0.X.Y), reading the list from the release itself.
    local gomod staging="v0.${v#v1.}"
    gomod=$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p') || exit 1
    local mods; mods=$(sed -n 's#^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#\1#p' "$gomod")
    [ -n "$mods" ] || { echo "no staging replacements in the go.mod of k8s.io/kubernetes@$v"; exit 1; }
    for m in $mods; do
      go mod edit -replace "$m=$m@$staging" || exit 1
    done
    go mod edit -require "k8s.io/kubernetes@$v" || exit 1
    cat >main_tools.go <<'EOF'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
EOF
    go mod tidy || exit 1
    local minor="${v#v1.}"; minor="${minor%%.*}"
    local ld="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld="$ld -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    done
    go build -trimpath -ldflags="$ld" -o "$dir/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  ) >>"$dir/build.log" 2>&1 || failed "$dir"
  mv "$dir/kube-apiserver.tmp" "$dir/kube-apiserver"
  rm -rf "$tmp"
  finish kube-apiserver "$v" kube-apiserver "$start"
}

build_etcd() {
  local v="$ETCD_VERSION" dir="$CACHE/etcd-$ETCD_VERSION"
  [ -x "$dir/etcd" ] && { log "etcd $v cached"; return; }
  local start; start=$(date +%s)
  local tmp; tmp=$(mktemp -d); mkdir -p "$dir"
  log "building $(basename "$dir") (log: $dir/build.log)"
  (
    new_module "$tmp" || exit 1
    # since etcd 3.5 the etcd server program is the main package of go.etcd.io/etcd/server/v3
    go get "go.etcd.io/etcd/server/v3@$v" || exit 1
    go build -trimpath -ldflags="-s -w" -o "$dir/etcd.tmp" go.etcd.io/etcd/server/v3
  ) >>"$dir/build.log" 2>&1 || failed "$dir"
  mv "$dir/etcd.tmp" "$dir/etcd"
  rm -rf "$tmp"
  finish etcd "$v" etcd "$start"
}

build_helm() {
  local v="$HELM_VERSION" dir="$CACHE/helm-$HELM_VERSION"
  [ -x "$dir/helm" ] && { log "helm $v cached"; return; }
  local start; start=$(date +%s)
  local tmp; tmp=$(mktemp -d); mkdir -p "$dir"
  log "building $(basename "$dir") (log: $dir/build.log)"
  (
    new_module "$tmp" || exit 1
    go get "helm.sh/helm/v3@$v" || exit 1
    go build -trimpath -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$v" \
      -o "$dir/helm.tmp" helm.sh/helm/v3/cmd/helm
  ) >>"$dir/build.log" 2>&1 || failed "$dir"
  mv "$dir/helm.tmp" "$dir/helm"
  rm -rf "$tmp"
  finish helm "$v" helm "$start"
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(etcd helm kube-apiserver)
for t in "${targets[@]}"; do
  case "$t" in
    kube-apiserver) build_kube_apiserver ;;
    etcd) build_etcd ;;
    helm) build_helm ;;
    *) log "unknown component $t (kube-apiserver, etcd, helm)"; exit 2 ;;
  esac
done
