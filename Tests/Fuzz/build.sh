#!/usr/bin/env bash
# Builds the libFuzzer targets (Tests/Fuzz/targets/*.swift) with swiftc -sanitize=fuzzer,address:
# the sans-IO modules they reach are compiled here, instrumented, as static libraries (SwiftPM would
# instrument NIO and the encoders too). Output: .build/fuzz/fuzz-<target>.
#
#   bash Tests/Fuzz/build.sh [target…]       (default: every target)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
out="$repo/.build/fuzz"
mkdir -p "$out"
flags=(-O -g -sanitize=fuzzer,address -parse-as-library -I "$out" -L "$out")

# module name, extra flags, dependencies' libraries (in order)
module() {
    local name="$1"; shift
    local stamp="$out/lib$name.a"
    local newest
    newest="$(ls -t "Sources/$name"/*.swift | head -n 1)"
    if [ -f "$stamp" ] && [ "$stamp" -nt "$newest" ]; then return; fi
    echo "fuzz: compiling $name"
    swiftc "${flags[@]}" "$@" -emit-library -static -emit-module -module-name "$name" \
        -emit-module-path "$out/$name.swiftmodule" -o "$stamp" "Sources/$name"/*.swift
}

module RTCBase
module STUN
module ICE
module SDP
module RTP
module SCTP
module TURN
module DTLS -enable-testing -I Sources/CMbedTLS

link() {
    local target="$1"; shift
    echo "fuzz: linking fuzz-$target"
    swiftc "${flags[@]}" -module-name "Fuzz_$target" "$@" -o "$out/fuzz-$target" 2>&1 | grep -v "Cannot export local symbol" || true
    [ -x "$out/fuzz-$target" ]
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(stun sdp sdpfrag rtp h264 dtls sctp json icetcp turn)
for target in "${targets[@]}"; do
    binary="$out/fuzz-$target"
    if [ -x "$binary" ] && [ -z "$(find Tests/Fuzz/targets/$target.swift "$out"/lib*.a Sources/CameraServer/JSONValue.swift -newer "$binary")" ]; then
        continue
    fi
    rm -f "$binary"
    case "$target" in
        stun)    link stun Tests/Fuzz/targets/stun.swift -lICE -lSTUN -lRTCBase ;;
        sdp)     link sdp Tests/Fuzz/targets/sdp.swift -lSDP -lRTCBase ;;
        sdpfrag) link sdpfrag Tests/Fuzz/targets/sdpfrag.swift -lSDP -lRTCBase ;;
        rtp)     link rtp Tests/Fuzz/targets/rtp.swift -lRTP -lRTCBase ;;
        h264)    link h264 Tests/Fuzz/targets/h264.swift -lRTP -lRTCBase ;;
        dtls)    link dtls Tests/Fuzz/targets/dtls.swift -I Sources/CMbedTLS -lDTLS -lRTCBase -lmbedtls -lmbedx509 -lmbedcrypto ;;
        sctp)    link sctp Tests/Fuzz/targets/sctp.swift -lSCTP -lRTCBase ;;
        json)    link json Tests/Fuzz/targets/json.swift Sources/CameraServer/JSONValue.swift ;;
        icetcp)  link icetcp Tests/Fuzz/targets/icetcp.swift -lSTUN -lRTCBase ;;
        turn)    link turn Tests/Fuzz/targets/turn.swift -lTURN -lSTUN -lRTCBase ;;
        *) echo "unknown fuzz target $target" >&2; exit 2 ;;
    esac
done
