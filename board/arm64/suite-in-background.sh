#!/usr/bin/env bash
# `make test`'s whole aarch64 Swift suite, run beside the other stages so that it costs CI little
# wall time: `start` (after the roots are ready) cross-builds the release binary, the arm64 .deb and
# the optimized test bundle (build-arm64.sh --tests), then runs the suite under qemu-user
# (test-arm64.sh --skip-build --suite-only), all as SCHED_IDLE processes: they get a core only when
# the interop tests, the VMs and the amd64 release build leave it idle, so those keep their timing.
# `wait` waits for it, prints its step times and fails if it failed. test-arm64.sh --skip-build
# --quick then installs the .deb it built and streams from it.
#
#   bash board/arm64/suite-in-background.sh start|wait
source "$(dirname "$0")/common.sh"

state=$cache/logs/suite-in-background
mkdir -p "$cache/logs"
case ${1:-} in
    start)
        rm -f "$state.status"
        echo "aarch64 suite: building and running it in the background as SCHED_IDLE (log: $state.log)" >&2
        (
            set +e
            start=$SECONDS
            chrt --idle 0 bash "$arm64_here/build-arm64.sh" --tests &&
                chrt --idle 0 bash "$arm64_here/test-arm64.sh" --skip-build --suite-only
            status=$?
            echo "aarch64 suite in the background: exit $status after $((SECONDS - start)) s" >&2
            echo $status > "$state.status"
        ) < /dev/null > "$state.log" 2>&1 &
        echo $! > "$state.pid"
        ;;
    wait)
        [ -e "$state.pid" ] || fail "suite-in-background.sh wait: it was not started"
        start=$SECONDS
        pid=$(cat "$state.pid")
        while [ ! -e "$state.status" ]; do
            kill -0 "$pid" 2>/dev/null || { sleep 1; [ -e "$state.status" ] || fail "the background aarch64 suite died (log: $state.log)"; }
            sleep 2
        done
        rm -f "$state.pid"
        status=$(cat "$state.status")
        echo "aarch64 suite: done (waited $((SECONDS - start)) s for it here); its steps:" >&2
        grep -E '^(== |process [12]:|ARMv8 path:|fallback path:|aarch64 suite in the background:)' "$state.log" >&2 || true
        cp "$state.log" "$repo/out/arm64-suite-in-background.log" 2>/dev/null || true
        [ "$status" = 0 ] || { tail -n 60 "$state.log" >&2; fail "the aarch64 build or Swift suite failed (log: $state.log)"; }
        ;;
    *) fail "usage: suite-in-background.sh start|wait" ;;
esac
