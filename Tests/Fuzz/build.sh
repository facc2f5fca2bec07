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

# The http target reaches rtcam's request handling (CameraServer files, compiled into the target,
# instrumented) over NIOHTTP1's types (HTTPHeaders, HTTPMethod). Those come uninstrumented from
# SwiftPM's debug build (llhttp and NIO are fuzzed upstream): their modules, the module maps of NIO's
# C targets as SwiftPM passes them, and their objects gathered in libfuzznio.a.
http_sources=(RequestFront RequestPolicy HTTPMessages HTTPStreaming AccessControl ViewingTokens StateFiles SetupCode
              JSONValue JSONWriter CameraSettings MediaConfiguration Talkback/TalkbackSettings EncoderLoadAdaptation ServerSpelling)
http_files=()
for name in "${http_sources[@]}"; do http_files+=("Sources/CameraServer/$name.swift"); done
nio_flags=()
nio() {
    local debug="$repo/.build/debug"
    if [ ! -f "$debug/Modules/NIOHTTP1.swiftmodule" ]; then
        echo "fuzz: building NIOHTTP1 with SwiftPM"
        swift build --target NIOHTTP1 >/dev/null
    fi
    mkdir -p "$out/nio"
    # Every package dependency's module (NIO's imports reach into swift-collections), none of rtcam's own.
    local module name
    for module in "$debug"/Modules/*.swiftmodule; do
        name="$(basename "$module" .swiftmodule)"
        [ -d "Sources/$name" ] || ln -sf "$module" "$out/nio/"
    done
    # SwiftPM's own -Xcc flags for NIOHTTP1 (the module maps of CNIOLinux, CNIOLLHTTP, …).
    mapfile -t nio_flags < <(python3 - "$repo/.build/debug.yaml" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
for line in text.splitlines():
    line = line.strip()
    if line.startswith("args:") and '"-module-name","NIOHTTP1"' in line:
        args = json.loads(line[len("args:"):])
        for i, arg in enumerate(args):
            if arg == "-Xcc" and i + 1 < len(args):
                print("-Xcc"); print(args[i + 1])
        break
PY
)
    [ ${#nio_flags[@]} -gt 0 ] || { echo "fuzz: no NIOHTTP1 flags in .build/debug.yaml" >&2; exit 1; }
    local archive="$out/libfuzznio.a"
    if [ ! -f "$archive" ] || [ -n "$(find "$debug/NIOHTTP1.build" "$debug/NIOCore.build" -name '*.o' -newer "$archive" | head -n 1)" ]; then
        rm -f "$archive"
        local objects=()
        for name in NIOCore NIOHTTP1 NIOConcurrencyHelpers _NIODataStructures _NIOBase64 Atomics DequeModule \
                    InternalCollectionsUtilities CNIOAtomics CNIOLinux CNIOLLHTTP _AtomicsShims; do
            [ -d "$debug/$name.build" ] || continue
            while IFS= read -r object; do objects+=("$object"); done \
                < <(find "$debug/$name.build" -name '*.o' ! -name '*.swiftmodule.o')
        done
        ar rcs "$archive" "${objects[@]}"
    fi
}

link() {
    local target="$1"; shift
    echo "fuzz: linking fuzz-$target"
    swiftc "${flags[@]}" -module-name "Fuzz_$target" "$@" -o "$out/fuzz-$target" 2>&1 | grep -v "Cannot export local symbol" || true
    [ -x "$out/fuzz-$target" ]
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(stun sdp sdpfrag rtp h264 dtls sctp json icetcp turn http)
for target in "${targets[@]}"; do
    binary="$out/fuzz-$target"
    inputs=(Tests/Fuzz/targets/$target.swift "$out"/lib*.a)
    [ "$target" = json ] && inputs+=(Sources/CameraServer/JSONValue.swift)
    [ "$target" = http ] && inputs+=("${http_files[@]}")
    if [ -x "$binary" ] && [ -z "$(find "${inputs[@]}" -newer "$binary")" ]; then
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
        http)    nio
                 link http -I "$out/nio" "${nio_flags[@]}" -I Sources/CMbedTLS Tests/Fuzz/targets/http.swift \
                     "${http_files[@]}" \
                     -lDTLS -lRTCBase -lmbedtls -lmbedx509 -lmbedcrypto -lfuzznio ;;
        *) echo "unknown fuzz target $target" >&2; exit 2 ;;
    esac
done
