#!/usr/bin/env bash
# Fails when a tracked file is an executable binary (ELF, Mach-O, PE, WebAssembly)
# or larger than 1 MiB. Build outputs belong in the git-ignored bin/. A file that
# must be large lists its path, with the reason, in large-files.allow beside this script.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
limit=$((1024 * 1024))
allow="test/scripts/large-files.allow"
declare -A allowed=()
if [ -f "$allow" ]; then
  while read -r path _; do
    case "$path" in ''|'#'*) continue ;; esac
    allowed["$path"]=1
  done <"$allow"
fi
bad=0
while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue
  magic=$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')
  case "$magic" in
    7f454c46) kind="an ELF executable" ;;
    cffaedfe|cefaedfe|feedface|feedfacf|cafebabe) kind="a Mach-O executable" ;;
    0061736d) kind="a WebAssembly module" ;;
    4d5a*) kind="a Windows executable" ;;
    *) kind="" ;;
  esac
  if [ -n "$kind" ]; then
    echo "$f: tracked file is $kind; build outputs belong in the git-ignored bin/" >&2
    bad=1
    continue
  fi
  size=$(stat -c %s "$f")
  if [ "$size" -gt "$limit" ] && [ -z "${allowed[$f]:-}" ]; then
    echo "$f: tracked file is $size bytes, over 1 MiB; list it with a reason in $allow if it must be this large" >&2
    bad=1
  fi
done < <(git ls-files -z)
exit $bad
