#!/usr/bin/env bash
# kube-down.sh DIR: stop the control plane kube-up.sh started in DIR
# (kube-apiserver, then etcd, each SIGTERM and then SIGKILL after
# KUBE_DOWN_TIMEOUT seconds, default 10) and remove DIR unless KEEP=1.
# Safe to run twice, and on a DIR whose kube-up failed half way.
set -euo pipefail

if [[ $# -ne 1 ]]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
timeout=${KUBE_DOWN_TIMEOUT:-10}

if [[ ! -d $dir ]]; then
	exit 0
fi

# alive PID: the process exists and is not a zombie.
alive() {
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z && $state != X ]]
}

# stop NAME: stop the process in DIR/NAME.pid if it is still the one
# kube-up started (its command line names NAME's binary), then drop the file.
stop() {
	local name=$1 want=$2 pidfile=$dir/$1.pid pid
	[[ -f $pidfile ]] || return 0
	pid=$(<"$pidfile")
	if [[ $pid =~ ^[0-9]+$ ]] && [[ $pid != "$$" && $pid != "$PPID" ]] && alive "$pid" &&
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$want"; then
		kill -TERM "$pid" 2>/dev/null || true
		local deadline=$((SECONDS + timeout))
		while alive "$pid" && ((SECONDS < deadline)); do
			sleep 0.1
		done
		if alive "$pid"; then
			echo "kube-down: $name (pid $pid) did not stop in ${timeout}s: SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
			while alive "$pid"; do sleep 0.1; done
		fi
	fi
	rm -f "$pidfile"
}

stop watchdog sekisho-kube-watchdog
stop kube-apiserver kube-apiserver
stop etcd etcd

if [[ ${KEEP:-0} != 1 ]]; then
	rm -rf "$dir"
fi
