#!/usr/bin/env bash
# dex-up.sh: start Dex (bin/dex, built by test/tools/dex/build.sh) on
# 127.0.0.1 as the OpenID Connect provider of an end-to-end test, with
# in-memory storage, one static user and one static client. Stop it with
# dex-down.sh DEX_DIR (the directory this script prints on its last line).
#
# Issuer:   http://127.0.0.1:$DEX_PORT/dex
#           (discovery at $issuer/.well-known/openid-configuration)
# User:     email admin@example.com, username admin, password $DEX_PASSWORD.
#           Dex's password database logs users in by email: the login form's
#           "login" field takes admin@example.com, not admin.
# Client:   $CLIENT_ID / $CLIENT_SECRET (confidential), redirect URIs
#           $REDIRECT_URIS; the approval screen is skipped and only the
#           authorization code flow is offered.
#
# DEX_DIR receives config.yaml, dex.log, dex.pid, and env, a file of
# DEX_ISSUER=, DEX_PID=, DEX_CLIENT_ID=, DEX_CLIENT_SECRET= lines for `source`.
#
# Environment:
#   REDIRECT_URIS  comma-separated redirect URIs of the client (required)
#   DEX_PORT       port to listen on (default 5556)
#   DEX_DIR        state directory (default: a new mktemp -d directory)
#   DEX_PASSWORD   the user's password (default "password")
#   CLIENT_ID      the client's ID (default "web")
#   CLIENT_SECRET  the client's secret (default "web-secret")
#   DEX            Dex binary (default: bin/dex of this repository)
#   DEX_BCRYPT     password hasher (default: bin/dex-bcrypt of this repository)
#   DEX_UP_TIMEOUT seconds to wait for discovery to answer (default 30)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
dex_bin=${DEX:-$root/bin/dex}
bcrypt_bin=${DEX_BCRYPT:-$root/bin/dex-bcrypt}
port=${DEX_PORT:-5556}
password=${DEX_PASSWORD:-password}
client_id=${CLIENT_ID:-web}
client_secret=${CLIENT_SECRET:-web-secret}
timeout=${DEX_UP_TIMEOUT:-30}

die() {
	echo "dex-up: $*" >&2
	exit 1
}

[[ -x $dex_bin && -x $bcrypt_bin ]] ||
	die "$dex_bin or $bcrypt_bin is missing: run test/tools/dex/build.sh (make dex)"
command -v curl >/dev/null || die "curl is required"
[[ -n ${REDIRECT_URIS:-} ]] || die "REDIRECT_URIS (comma-separated) is required"
[[ $port =~ ^[0-9]+$ ]] || die "DEX_PORT=$port is not a port number"

dir=${DEX_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/dex.XXXXXX")}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [[ -f $dir/dex.pid ]] && kill -0 "$(cat "$dir/dex.pid")" 2>/dev/null; then
	die "Dex is already running from $dir (pid $(cat "$dir/dex.pid")): run dex-down.sh $dir"
fi

issuer=http://127.0.0.1:$port/dex
hash=$(printf '%s\n' "$password" | "$bcrypt_bin")

# JSON strings are valid YAML scalars, so every value is quoted the JSON way.
quote() {
	local s=${1//\\/\\\\}
	s=${s//\"/\\\"}
	printf '"%s"' "$s"
}

{
	cat <<EOF
issuer: $(quote "$issuer")
storage:
  type: memory
web:
  http: $(quote "127.0.0.1:$port")
logger:
  level: info
  format: text
oauth2:
  skipApprovalScreen: true
  responseTypes: ["code"]
enablePasswordDB: true
staticPasswords:
  - email: "admin@example.com"
    username: "admin"
    userID: "00000000-0000-4000-8000-000000000001"
    hash: $(quote "$hash")
staticClients:
  - id: $(quote "$client_id")
    secret: $(quote "$client_secret")
    name: $(quote "$client_id")
    redirectURIs:
EOF
	IFS=, read -ra uris <<<"$REDIRECT_URIS"
	for uri in "${uris[@]}"; do
		[[ -n $uri ]] && echo "      - $(quote "$uri")"
	done
} >"$dir/config.yaml"

# setsid: a Ctrl-C in the caller's terminal does not reach Dex; dex-down.sh
# stops it.
setsid "$dex_bin" serve "$dir/config.yaml" </dev/null >"$dir/dex.log" 2>&1 &
pid=$!
echo "$pid" >"$dir/dex.pid"

deadline=$((SECONDS + timeout))
until curl -fsS -o /dev/null "$issuer/.well-known/openid-configuration" 2>/dev/null; do
	if ! kill -0 "$pid" 2>/dev/null; then
		tail -n 20 "$dir/dex.log" >&2
		rm -f "$dir/dex.pid"
		die "Dex exited before serving discovery (log: $dir/dex.log)"
	fi
	if ((SECONDS >= deadline)); then
		tail -n 20 "$dir/dex.log" >&2
		kill "$pid" 2>/dev/null || true
		rm -f "$dir/dex.pid"
		die "Dex did not serve discovery within ${timeout}s (log: $dir/dex.log)"
	fi
	sleep 0.2
done

printf 'DEX_ISSUER=%q\nDEX_PID=%q\nDEX_CLIENT_ID=%q\nDEX_CLIENT_SECRET=%q\n' \
	"$issuer" "$pid" "$client_id" "$client_secret" >"$dir/env"
echo "dex-up: Dex $issuer running, pid $pid" >&2
echo "$dir"
