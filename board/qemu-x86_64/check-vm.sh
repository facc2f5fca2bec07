#!/bin/bash
# The qemu-x86_64 board's own check: boots the VM and runs guest-check.sh inside (device nodes,
# vivid / vicodec / Loopback present, and — with v4l-utils and alsa-utils on the host — vivid's
# streaming rates, a vicodec encode and sound through snd-aloop). Then, for each --xctest given,
# runs that Swift test bundle in a second boot.
#
#   board/qemu-x86_64/check-vm.sh [--xctest PATH/TO/Foo.xctest [--filter REGEX]]...
#
# A test bundle runs as `Foo.xctest --testing-library swift-testing [--filter REGEX]` with its
# directory as /share; its Swift runtime and C libraries come from the host (ldd).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
runner=$here/run-in-vm.sh

bundles=()
filters=()
while (($#)); do
  case $1 in
    --xctest) bundles+=("$2"); filters+=(""); shift 2 ;;
    --filter) ((${#bundles[@]})) || { echo "--filter follows an --xctest" >&2; exit 2; }
              filters[${#filters[@]}-1]=$2; shift 2 ;;
    *) echo "usage: $0 [--xctest PATH [--filter REGEX]]..." >&2; exit 2 ;;
  esac
done

tools=()
for t in v4l2-ctl arecord aplay; do
  p=$(command -v "$t" || true)
  if [ -n "$p" ]; then tools+=(--bin "$p"); else echo "check-vm: $t not on the host: its checks are skipped" >&2; fi
done

mkdir -p "$repo/.build-vm"
share=$(mktemp -d "$repo/.build-vm/check.XXXXXX")
trap 'rm -rf "$share"' EXIT
cp "$here/guest-check.sh" "$share/"

status=0
started=$SECONDS
"$runner" "${tools[@]}" "$share" sh ./guest-check.sh || status=$?
echo "check-vm: board check exit $status in $((SECONDS - started)) s"

for i in "${!bundles[@]}"; do
  bundle=${bundles[$i]}
  [ -x "$bundle" ] || { echo "check-vm: no test bundle $bundle" >&2; status=1; continue; }
  args=(--testing-library swift-testing)
  [ -n "${filters[$i]}" ] && args+=(--filter "${filters[$i]}")
  started=$SECONDS
  bundle_status=0
  "$runner" "$(dirname "$bundle")" "./$(basename "$bundle")" "${args[@]}" || bundle_status=$?
  echo "check-vm: $(basename "$bundle") ${args[*]} exit $bundle_status in $((SECONDS - started)) s"
  ((bundle_status == 0)) || status=$bundle_status
done
exit "$status"
