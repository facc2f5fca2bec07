#!/usr/bin/env bash
# Issue 21: what swift-prometheus would cost rtcam against its hand-written exposition
# (Sources/OutputFormats/PrometheusText.swift). Builds, in a temporary package, three programs that
# print the same 20 metric families (10 counters, 10 labelled gauges) — plain numbers (the floor),
# rtcam's PrometheusText, swift-prometheus 2.4.1's registry — as rtcam is built (release, static
# Swift runtime, stripped), and prints each one's size and resident memory.
#
#   bash Tests/Benchmarks/prometheus-footprint.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/rtcam-promfoot.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/Sources/{floor,hand,library}
cat > "$work/Package.swift" <<'EOF'
// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "promfoot",
    dependencies: [.package(url: "https://github.com/swift-server/swift-prometheus.git", exact: "2.4.1")],
    targets: [
        .executableTarget(name: "floor"),
        .executableTarget(name: "hand"),
        .executableTarget(name: "library", dependencies: [.product(name: "Prometheus", package: "swift-prometheus")]),
    ]
)
EOF
# Each program waits on stdin after printing, so its resident memory can be read.
cat > "$work/Sources/floor/main.swift" <<'EOF'
let seed = Double(CommandLine.arguments.count)
var out = ""
for index in 0..<20 { out += "m\(index) \(seed * Double(index))\n" }
print(out, terminator: "")
while readLine() != nil {}
EOF
sed 's/^public struct PrometheusText/struct PrometheusText/; s/^    public /    /' \
    "$repo/Sources/OutputFormats/PrometheusText.swift" > "$work/Sources/hand/PrometheusText.swift"
cat > "$work/Sources/hand/main.swift" <<'EOF'
let seed = Double(CommandLine.arguments.count)
var text = PrometheusText()
for index in 0..<10 {
    text.metric("rtcam_counter_\(index)_total", .counter, help: "Counter \(index).", seed * Double(index))
}
for index in 0..<10 {
    text.family("rtcam_gauge_\(index)", .gauge, help: "Gauge \(index) per viewer.")
    text.sample("rtcam_gauge_\(index)", [("viewer", "a\(index)")], seed + Double(index))
}
print(text.text, terminator: "")
while readLine() != nil {}
EOF
cat > "$work/Sources/library/main.swift" <<'EOF'
import Prometheus
let seed = Double(CommandLine.arguments.count)
let registry = PrometheusCollectorRegistry()
for index in 0..<10 {
    registry.makeCounter(name: "rtcam_counter_\(index)_total", help: "Counter \(index).")
        .increment(by: Int64(seed) * Int64(index))
}
for index in 0..<10 {
    registry.makeGauge(name: "rtcam_gauge_\(index)", labels: [("viewer", "a\(index)")], help: "Gauge \(index) per viewer.")
        .set(seed + Double(index))
}
var buffer: [UInt8] = []
registry.emit(into: &buffer)
print(String(decoding: buffer, as: UTF8.self), terminator: "")
while readLine() != nil {}
EOF
(cd "$work" && swift build -c release --static-swift-stdlib > build.log 2>&1) || { tail -n 30 "$work/build.log" >&2; exit 1; }
echo "program   stripped bytes   VmRSS (kB), 3 runs   families printed"
for program in floor hand library; do
    cp "$work/.build/release/$program" "$work/$program.stripped"
    strip "$work/$program.stripped"
    rss=()
    for _ in 1 2 3; do
        exec {feed}> >(sleep 0; "$work/$program.stripped" > "$work/$program.out")
        sleep 1
        pid=$(pgrep -n -f "^$work/$program.stripped") || true
        rss+=("$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")")
        exec {feed}>&-
        wait "$pid" 2>/dev/null || true
        sleep 0.2
    done
    printf '%-9s %14s   %-20s %s\n' "$program" "$(stat -c %s "$work/$program.stripped")" "${rss[*]}" \
        "$(grep -c '^# TYPE' "$work/$program.out" || true)"
done
echo "(bash Tests/Benchmarks/prometheus-footprint.sh; Swift $(swift --version 2>&1 | grep -o 'version [0-9.]*' | head -n 1))"
