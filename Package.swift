// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "rtcam",
    platforms: [.macOS(.v15)],
    dependencies: [],
    targets: [
        // Wire primitives shared by every protocol layer: byte reader/writer, time, addresses.
        .target(name: "RTCBase"),
        .testTarget(name: "RTCBaseTests", dependencies: ["RTCBase"]),
    ],
    swiftLanguageModes: [.v6]
)
