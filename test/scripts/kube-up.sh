#!/usr/bin/env bash
# kube-up.sh DIR: start a throwaway Kubernetes control plane (etcd +
# kube-apiserver, nothing else) for sekisho's Kubernetes-mode tests.
#
# DIR is created (it must not exist yet or be empty) and receives:
#   DIR/kubeconfig         server https://ADDR:PORT, the CA and an admin token
#   DIR/env                KUBECONFIG=, KUBE_SERVER=, KUBE_TOKEN=, KUBE_CA=,
#                          ETCD_ENDPOINT=, ETCD_PID=, APISERVER_PID=, WATCHDOG_PID=
#   DIR/etcd.pid DIR/kube-apiserver.pid (DIR/watchdog.pid)
#   DIR/etcd.log DIR/kube-apiserver.log
#   DIR/pki/               CA, serving certificate, service-account keys, token file
#   DIR/etcd/              etcd's data
# Stop everything with kube-down.sh DIR.
#
# The admin token belongs to user "sekisho-admin" in group system:masters.
# Authorization is RBAC; the ServiceAccount admission plugin is off (no
# controller-manager runs, so no default ServiceAccounts exist).
#
# Environment:
#   BIND_ADDRESS   address every component listens on and advertises
#                  (default 127.0.0.1). kube-apiserver refuses 127.0.0.0/8 in
#                  Endpoints/EndpointSlices, so tests that need routable pod
#                  addresses run this script inside a network namespace with a
#                  non-loopback address, e.g. as root:
#                    unshare -n bash -c 'ip link set lo up &&
#                      ip addr add 10.244.0.1/32 dev lo &&
#                      BIND_ADDRESS=10.244.0.1 test/scripts/kube-up.sh DIR'
#                  (or ip netns add sekisho && ip netns exec sekisho ...).
#                  Later commands that talk to the cluster must run in the
#                  same namespace.
#   KUBE_APISERVER kube-apiserver binary (default: bin/kube-apiserver of this repo)
#   ETCD           etcd binary (default: /usr/bin/etcd)
#   KUBE_UP_TIMEOUT seconds to wait for each component to be ready (default 90)
#   WATCH_PID      if set, a watchdog stops the cluster when this process exits
#                  (so a test binary killed on timeout leaves nothing behind)
#   KUBE_APISERVER_EXTRA_ARGS extra flags for kube-apiserver (word-split)
set -euo pipefail

if [[ $# -ne 1 ]]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=$1
addr=${BIND_ADDRESS:-127.0.0.1}
apiserver_bin=${KUBE_APISERVER:-$root/bin/kube-apiserver}
etcd_bin=${ETCD:-/usr/bin/etcd}
timeout=${KUBE_UP_TIMEOUT:-90}

die() {
	echo "kube-up: $*" >&2
	exit 1
}

[[ -x $apiserver_bin ]] || die "$apiserver_bin is missing: run 'make tools'"
[[ -x $etcd_bin ]] || die "$etcd_bin is missing: run 'make etcd' (apt-get install etcd-server)"
for c in openssl curl; do
	command -v "$c" >/dev/null || die "$c is required"
done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[[ -z $(ls -A "$dir") ]] || die "$dir is not empty: give a fresh directory"
mkdir -p "$dir/pki" "$dir/etcd"
chmod 700 "$dir/etcd" "$dir/pki"

# Until the cluster is up, a failure stops whatever was started and keeps DIR
# (with its logs) for inspection.
started=0
fail() {
	echo "kube-up: $*" >&2
	for log in "$dir"/*.log; do
		[[ -f $log ]] || continue
		echo "---- last lines of $log" >&2
		tail -n 30 "$log" >&2
	done
	KEEP=1 "$here/kube-down.sh" "$dir" >&2 || true
	exit 1
}
trap '[[ $started == 1 ]] || fail "failed (line $LINENO)"' ERR

# --- certificates and keys ------------------------------------------------
pki=$dir/pki
openssl_quiet() { openssl "$@" 2>>"$pki/openssl.log"; }

openssl_quiet req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$pki/ca.key" -out "$pki/ca.crt" -days 2 \
	-subj "/CN=sekisho-test-ca"

openssl_quiet req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" \
	-subj "/CN=kube-apiserver"
cat >"$pki/apiserver.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$addr,IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EXT
openssl_quiet x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
	-CAcreateserial -out "$pki/apiserver.crt" -days 2 -extfile "$pki/apiserver.ext"

# Service-account token signing key (RS256 is what kube-apiserver signs with).
openssl_quiet genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key"
openssl_quiet pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

token=$(openssl rand -hex 24)
printf '%s,sekisho-admin,sekisho-admin,"system:masters"\n' "$token" >"$pki/tokens.csv"
chmod 600 "$pki"/*.key "$pki/tokens.csv"

# --- ports -------------------------------------------------------------------
# Free ports below the ephemeral range, so outgoing connections never take
# them between the check and the bind. A port counts as free when nothing
# accepts a connection on it and it was not picked already in this run.
picked=" "
port_free() {
	[[ $picked != *" $1 "* ]] || return 1
	! (exec 3<>"/dev/tcp/$addr/$1") 2>/dev/null
}
pick_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 12000))
		if port_free "$p"; then
			picked+="$p "
			echo "$p"
			return 0
		fi
	done
	return 1
}

# host:port for URLs (IPv6 addresses need brackets).
hostport() {
	if [[ $addr == *:* ]]; then echo "[$addr]:$1"; else echo "$addr:$1"; fi
}

# wait_for NAME PID CHECK...: run CHECK until it succeeds, the process dies
# or the timeout passes.
wait_for() {
	local name=$1 pid=$2
	shift 2
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		if ((SECONDS >= deadline)); then
			echo "kube-up: $name not ready after ${timeout}s" >&2
			return 1
		fi
		sleep 0.2
	done
}

# --- etcd ------------------------------------------------------------------------
# A port can still be taken by another process between the check and etcd's
# bind (parallel test runs): retry with new ports.
etcd_up=0
for attempt in 1 2 3; do
	etcd_port=$(pick_port)
	etcd_peer_port=$(pick_port)
	etcd_url=http://$(hostport "$etcd_port")
	etcd_peer_url=http://$(hostport "$etcd_peer_port")
	rm -rf "$dir/etcd" && mkdir -m 700 "$dir/etcd"
	setsid "$etcd_bin" \
		--name sekisho-test \
		--data-dir "$dir/etcd" \
		--listen-client-urls "$etcd_url" \
		--advertise-client-urls "$etcd_url" \
		--listen-peer-urls "$etcd_peer_url" \
		--initial-advertise-peer-urls "$etcd_peer_url" \
		--initial-cluster "sekisho-test=$etcd_peer_url" \
		--initial-cluster-state new \
		--listen-metrics-urls "" \
		--quota-backend-bytes $((1 << 30)) \
		--log-outputs stderr \
		</dev/null >>"$dir/etcd.log" 2>&1 &
	etcd_pid=$!
	echo "$etcd_pid" >"$dir/etcd.pid"
	if wait_for etcd "$etcd_pid" curl -fsS --max-time 2 "$etcd_url/health"; then
		etcd_up=1
		break
	fi
	echo "kube-up: etcd attempt $attempt failed" >&2
	kill -KILL "$etcd_pid" 2>/dev/null || true
	rm -f "$dir/etcd.pid"
done
((etcd_up)) || fail "etcd did not start (see $dir/etcd.log)"

# --- kube-apiserver ----------------------------------------------------------------
# Inside a network namespace with a routable address the apiserver keeps the
# "kubernetes" Service's endpoints itself; on loopback it cannot (loopback
# endpoints are refused), so that reconciler is off.
if [[ $addr == 127.* || $addr == ::1 ]]; then
	reconciler=none
else
	reconciler=lease
fi
apiserver_up=0
for attempt in 1 2 3; do
	api_port=$(pick_port)
	server=https://$(hostport "$api_port")
	# shellcheck disable=SC2086 # KUBE_APISERVER_EXTRA_ARGS is word-split on purpose
	setsid "$apiserver_bin" \
		--bind-address "$addr" \
		--advertise-address "$addr" \
		--secure-port "$api_port" \
		--etcd-servers "$etcd_url" \
		--cert-dir "$pki" \
		--tls-cert-file "$pki/apiserver.crt" \
		--tls-private-key-file "$pki/apiserver.key" \
		--client-ca-file "$pki/ca.crt" \
		--token-auth-file "$pki/tokens.csv" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$pki/sa.pub" \
		--service-account-signing-key-file "$pki/sa.key" \
		--authorization-mode RBAC \
		--service-cluster-ip-range 10.96.0.0/16 \
		--disable-admission-plugins ServiceAccount \
		--endpoint-reconciler-type "$reconciler" \
		--profiling=false \
		${KUBE_APISERVER_EXTRA_ARGS:-} \
		</dev/null >>"$dir/kube-apiserver.log" 2>&1 &
	apiserver_pid=$!
	echo "$apiserver_pid" >"$dir/kube-apiserver.pid"
	if wait_for kube-apiserver "$apiserver_pid" curl -fsS --max-time 5 \
		--cacert "$pki/ca.crt" -H "Authorization: Bearer $token" "$server/readyz"; then
		apiserver_up=1
		break
	fi
	kill -0 "$apiserver_pid" 2>/dev/null && break # alive but not ready: no retry
	echo "kube-up: kube-apiserver attempt $attempt failed" >&2
	rm -f "$dir/kube-apiserver.pid"
done
((apiserver_up)) || fail "kube-apiserver did not become ready (see $dir/kube-apiserver.log)"

# --- kubeconfig and env ----------------------------------------------------------
ca_b64=$(base64 -w0 <"$pki/ca.crt")
cat >"$dir/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: sekisho-test
  cluster:
    server: $server
    certificate-authority-data: $ca_b64
users:
- name: sekisho-admin
  user:
    token: $token
contexts:
- name: sekisho-test
  context:
    cluster: sekisho-test
    user: sekisho-admin
    namespace: default
current-context: sekisho-test
KUBECONFIG
chmod 600 "$dir/kubeconfig"

watchdog_pid=
if [[ -n ${WATCH_PID:-} ]]; then
	# Stops the cluster once WATCH_PID is gone. kube-down stops the watchdog.
	setsid bash -c '
		while kill -0 "$1" 2>/dev/null; do sleep 1; done
		KEEP=${KEEP:-0} "$2" "$3"
	' sekisho-kube-watchdog "$WATCH_PID" "$here/kube-down.sh" "$dir" \
		</dev/null >>"$dir/watchdog.log" 2>&1 &
	watchdog_pid=$!
	echo "$watchdog_pid" >"$dir/watchdog.pid"
fi

cat >"$dir/env" <<ENV
KUBECONFIG=$dir/kubeconfig
KUBE_SERVER=$server
KUBE_TOKEN=$token
KUBE_CA=$pki/ca.crt
ETCD_ENDPOINT=$etcd_url
ETCD_PID=$etcd_pid
APISERVER_PID=$apiserver_pid
WATCHDOG_PID=$watchdog_pid
ENV
started=1
echo "kube-up: $server ready (etcd $etcd_url); KUBECONFIG=$dir/kubeconfig"
