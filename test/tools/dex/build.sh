#!/usr/bin/env bash
# build.sh: build Dex, the OpenID Connect provider the end-to-end tests log in
# against, into bin/dex, and bin/dex-bcrypt (./bcrypt), which hashes the
# static users' passwords for Dex's config (test/scripts/dex-up.sh,
# test/peers/dex).
#
# Dex's release tags (v2.x.y on a module path without /v2) are not Go module
# versions, so the pin below is a pseudo-version of a commit on Dex's master.
# Its module zip lacks the nested module api/v2 that Dex's go.mod replaces
# with ./api/v2, so the build runs on a writable copy of the module whose
# go.mod requires the published api/v2 instead. Nothing of this repository's
# modules is touched: GOFLAGS=-mod=mod applies to that copy only.
#
# Idempotent: exits at once when bin/dex reports the pinned version and
# bin/dex-bcrypt exists. Needs Go and a C compiler (Dex links SQLite through
# cgo); gcc is installed with apt-get when missing. Takes a few minutes.
#
# Environment:
#   BIN   output directory (default: bin/ of this repository)
set -euo pipefail

DEX_MODULE=github.com/dexidp/dex
DEX_VERSION=v0.0.0-20240807174518-43956db7fd75
DEX_API_VERSION=v2.4.0

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
bin=${BIN:-$root/bin}

die() {
	echo "dex build: $*" >&2
	exit 1
}

if [[ -x $bin/dex && -x $bin/dex-bcrypt ]] &&
	"$bin/dex" version 2>/dev/null | grep -qxF "Dex Version: $DEX_VERSION"; then
	exit 0
fi

command -v go >/dev/null || die "go is not on PATH"
if ! command -v gcc >/dev/null; then
	[[ $(id -u) -eq 0 ]] || die "gcc is missing: apt-get install -y gcc libc6-dev"
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y gcc libc6-dev
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dex-build.XXXXXX")
cleanup() {
	chmod -R u+w "$tmp" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "building dex $DEX_VERSION into $bin"
mkdir -p "$bin"
(
	cd "$tmp"
	export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=1
	go mod download "$DEX_MODULE@$DEX_VERSION"
	src=$(go env GOMODCACHE)/$DEX_MODULE@$DEX_VERSION
	[[ -f $src/go.mod ]] || die "$src/go.mod is missing after go mod download"
	cp -R "$src" "$tmp/dex"
	chmod -R u+w "$tmp/dex"

	cd "$tmp/dex"
	go mod edit \
		-dropreplace="$DEX_MODULE/api/v2" \
		-require="$DEX_MODULE/api/v2@$DEX_API_VERSION"
	mkdir cmd/dex-bcrypt
	cp "$here/bcrypt/main.go" cmd/dex-bcrypt/main.go

	# Built under temporary names and renamed, so that an interrupted build
	# never leaves a binary that passes the check above.
	go build -trimpath -ldflags "-X main.version=$DEX_VERSION" -o "$bin/.dex.tmp" ./cmd/dex
	go build -trimpath -o "$bin/.dex-bcrypt.tmp" ./cmd/dex-bcrypt
)
mv -f "$bin/.dex-bcrypt.tmp" "$bin/dex-bcrypt"
mv -f "$bin/.dex.tmp" "$bin/dex"
"$bin/dex" version
