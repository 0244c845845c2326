#!/usr/bin/env bash
# dex-down.sh [DIR]: stop the Dex that dex-up.sh started with state directory
# DIR (default: $DEX_DIR), by the PID in DIR/dex.pid: SIGTERM, then SIGKILL
# after DEX_DOWN_TIMEOUT seconds (default 10). Then removes the files
# dex-up.sh wrote there (config.yaml, dex.log, env) unless KEEP=1, and DIR
# itself when that leaves it empty. Safe to run twice.
set -euo pipefail

dir=${1:-${DEX_DIR:-}}
if [[ -z $dir || $# -gt 1 ]]; then
	echo "usage: $0 DIR (or DEX_DIR=DIR $0)" >&2
	exit 2
fi
timeout=${DEX_DOWN_TIMEOUT:-10}

[[ -d $dir ]] || exit 0
dir=$(cd "$dir" && pwd)

# alive PID: the process exists and is not a zombie.
alive() {
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z && $state != X ]]
}

pidfile=$dir/dex.pid
if [[ -f $pidfile ]]; then
	pid=$(<"$pidfile")
	# Only while it is still the Dex dex-up.sh started: a stale PID may have
	# been reused by an unrelated process.
	if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" &&
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "serve $dir/config.yaml"; then
		kill -TERM "$pid" 2>/dev/null || true
		deadline=$((SECONDS + timeout))
		while alive "$pid" && ((SECONDS < deadline)); do
			sleep 0.1
		done
		if alive "$pid"; then
			echo "dex-down: Dex (pid $pid) did not stop in ${timeout}s: SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
			while alive "$pid"; do sleep 0.1; done
		fi
	fi
	rm -f "$pidfile"
fi

if [[ ${KEEP:-0} != 1 ]]; then
	rm -f "$dir/config.yaml" "$dir/dex.log" "$dir/env"
	rmdir "$dir" 2>/dev/null || true
fi
