// swift-tools-version:6.0
// rtcam: layering as in ../shared/DESIGN.md. One system-library target per C library, imported by
// exactly one Swift target; sans-IO protocol targets with no clock, socket or thread; the session
// engine; media; the NIO server; the command line.
import PackageDescription

// Footprint (Tests/check-footprint.sh): modules whose code runs once per offer, start, STUN check,
// data-channel message or scrape, never per media packet or frame, are optimised for size: less
// inlining and fewer specialisations there, the same speed where it matters.
let coldCode: [SwiftSetting] = [.unsafeFlags(["-Osize"], .when(configuration: .release))]

let package = Package(
    name: "rtcam",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "rtcam", targets: ["rtcam"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // C libraries (Debian packages), one module each.
        .systemLibrary(name: "CMbedTLS", providers: [.apt(["libmbedtls-dev"])]),  // 2.28: no pkg-config file
        .systemLibrary(name: "CSRTP", pkgConfig: "libsrtp2", providers: [.apt(["libsrtp2-dev"])]),
        .systemLibrary(name: "CX264", pkgConfig: "x264", providers: [.apt(["libx264-dev"])]),
        .systemLibrary(name: "COpus", pkgConfig: "opus", providers: [.apt(["libopus-dev"])]),
        .systemLibrary(name: "CALSA", pkgConfig: "alsa", providers: [.apt(["libasound2-dev"])]),
        .systemLibrary(name: "CSpeexDSP", pkgConfig: "speexdsp", providers: [.apt(["libspeexdsp-dev"])]),  // talkback's echo canceller
        // Snapshots, MJPEG (issue 21): the header only; libturbojpeg.so.0 is opened (dlopen) when the
        // first still is asked for, so an idle camera maps none of it (CTurboJPEG/turbojpeg_loader.c).
        .target(name: "CTurboJPEG", linkerSettings: [.linkedLibrary("dl")]),  // needs libturbojpeg0-dev's turbojpeg.h
        .target(name: "CV4L2"),
        .systemLibrary(name: "CProcessMemory"),  // glibc's malloc.h (malloc_trim) and prctl's THP switch (issue 23)
        .target(name: "CCPUCrypto"),  // AES-128 and HMAC-SHA1 on AES-NI / SHA-NI (SRTP), our own C
        .target(name: "CUDPSocket"),  // the kernel's UDP_SEGMENT and sendmmsg, which Swift cannot spell

        // Sans-IO wire formats and protocol state machines.
        .target(name: "RTCBase"),
        .target(name: "STUN", dependencies: ["RTCBase"], swiftSettings: coldCode),
        .target(name: "ICE", dependencies: ["STUN", "RTCBase"], swiftSettings: coldCode),
        // A TURN client (RFC 8656) for one allocation: long-term and REST credentials, refreshes,
        // permissions, channels, ChannelData; sans-IO (issue 19).
        .target(name: "TURN", dependencies: ["STUN", "RTCBase"]),
        .target(name: "SDP", dependencies: ["RTCBase"], swiftSettings: coldCode),
        .target(name: "RTP", dependencies: ["RTCBase"]),
        // Per-viewer send-side bandwidth estimation (draft-ietf-rmcat-gcc-02 from transport-wide
        // feedback, loss, REMB), probing and the pacer; sans-IO (issue 24).
        .target(name: "CongestionControl", dependencies: ["RTCBase", "RTP"]),
        // SCTP over DTLS for data channels (RFC 8261, RFC 9260; issue 18).
        .target(name: "SCTP", dependencies: ["RTCBase"], swiftSettings: coldCode),
        // WebRTC data channels and DCEP on top (RFC 8831, RFC 8832).
        .target(name: "DataChannel", dependencies: ["SCTP", "RTCBase"], swiftSettings: coldCode),
        // The one owner of each crypto library's handles.
        .target(name: "DTLS", dependencies: ["CMbedTLS", "RTCBase"]),
        .target(name: "SRTP", dependencies: ["CSRTP", "CCPUCrypto", "RTCBase"]),
        // A viewer's whole session, and the receiving side for tests and the load generator.
        .target(name: "WebRTCSession", dependencies: ["RTCBase", "STUN", "ICE", "SDP", "RTP", "DTLS", "SRTP", "SCTP", "DataChannel", "CongestionControl"]),
        .target(name: "WebRTCViewer", dependencies: ["WebRTCSession", "RTCBase", "ICE", "RTP", "DTLS", "SRTP"]),

        // Media: synthetic sources and frame types, encoders, capture.
        .target(name: "MediaSources", dependencies: ["RTCBase"]),
        .target(name: "X264", dependencies: ["CX264", "RTCBase", "MediaSources"]),
        .target(name: "Opus", dependencies: ["COpus", "RTCBase", "MediaSources"]),
        .target(name: "V4L2", dependencies: ["CV4L2", "RTCBase"]),
        .target(name: "ALSA", dependencies: ["CALSA", "RTCBase"]),
        // Talkback (issue 17), sans-IO: the adaptive jitter buffer, the talk floor, the resampler.
        .target(name: "Talkback", dependencies: ["RTCBase"]),
        // Full-duplex talkback's acoustic echo canceller: the one owner of speexdsp's handles.
        .target(name: "EchoCanceller", dependencies: ["CSpeexDSP"]),
        // Stills (snapshot.jpg, stream.mjpg): raw frames to JPEG with libjpeg-turbo.
        .target(name: "JPEG", dependencies: ["CTurboJPEG", "MediaSources"]),
        // RTSP (RFC 2326) for NVRs: request parsing, sessions, Digest auth, RTP over TCP/UDP; sans-IO.
        .target(name: "RTSP", dependencies: ["RTCBase", "RTP"]),
        // Sans-IO output framings: multipart/x-mixed-replace (MJPEG), Prometheus text 0.0.4.
        .target(name: "OutputFormats", swiftSettings: coldCode),

        // What a program with I/O needs of the system and the sans-IO core must not touch: the clock
        // reads, named threads (the daemon's media threads, the load generator's workers).
        .target(name: "SystemSupport", dependencies: [
            "RTCBase", "RTP", .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),

        // The daemon.
        .target(name: "CameraServer", dependencies: [
            "RTCBase", "SystemSupport", "STUN", "ICE", "TURN", "SDP", "RTP", "DTLS", "WebRTCSession", "CongestionControl", "MediaSources", "X264", "Opus", "V4L2", "ALSA", "Talkback", "EchoCanceller", "CProcessMemory", "CUDPSocket", "JPEG", "RTSP", "OutputFormats",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The command line: rtcam's own small grammar (no swift-argument-parser: README.md, "Facts measured here").
        .target(name: "RTCamCommandLine", dependencies: [
            "CameraServer", "ICE",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: coldCode),
        .executableTarget(name: "rtcam", dependencies: [
            "RTCamCommandLine", "CameraServer",
            .product(name: "Logging", package: "swift-log"),
        ], exclude: ["symbol-order.txt", "static-libstdc++"], linkerSettings: [
            // Footprint (issue 6; README, Performance): the toolchain's lld packs the ~54,000
            // relative relocations of Swift metadata as DT_RELR (glibc >= 2.36: Debian 12, Raspberry
            // Pi OS bookworm) instead of 1.3 MB of RELA that the loader reads at every start, and
            // nothing is exported from the executable (the static stdlib's link arguments ask for
            // -export-dynamic: 1.3 MB of dynamic symbols no library looks up). 21.5 -> 18.8 MB stripped.
            // And the functions rtcam runs (start, idle, a viewer) are packed first in .text, so the
            // pages the kernel maps around them hold code that runs: idle RSS -1.9 MiB
            // (Tests/Benchmarks/symbol_order.py writes the list; names it no longer finds are skipped).
            // And libstdc++ (the Swift runtime's only C++ dependency) is linked in statically: the
            // toolchain's static-stdlib arguments ask for `-lstdc++`, which finds the linker script
            // Sources/rtcam/static-libstdc++/libstdc++.so first (`-L` directories are searched in
            // order, before the compiler's own): it names libstdc++.a. The shared library cost ~1 MiB
            // resident for the ~100 KiB of it rtcam uses (its symbol tables, which the dynamic loader
            // reads, and its relocated data): issue 23, idle RSS 12032 -> 11076 KiB on amd64.
            .unsafeFlags(["-use-ld=lld", "-Xlinker", "--no-export-dynamic", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                          "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Sources/rtcam/symbol-order.txt",
                          "-Xlinker", "--no-warn-symbol-ordering",
                          "-L\(Context.packageDirectory)/Sources/rtcam/static-libstdc++"]),
        ]),

        // Benchmarks: `rtcam-bench x264 | loadgen | srtp | mjpeg | floor`, driven by Tests/Benchmarks (`make bench`).
        .executableTarget(name: "rtcam-bench", dependencies: [
            "X264", "MediaSources", "Opus", "SRTP", "RTP", "STUN", "WebRTCSession", "WebRTCViewer", "JPEG",
            "SDP", "ICE", "DTLS", "RTCBase", "CUDPSocket", "SystemSupport",
        ]),

        .testTarget(name: "RTCBaseTests", dependencies: ["RTCBase"]),
        .testTarget(name: "RTCamCommandLineTests", dependencies: [
            "RTCamCommandLine", "CameraServer", "ICE",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "STUNTests", dependencies: ["STUN"]),
        .testTarget(name: "ICETests", dependencies: ["ICE", "STUN"]),
        .testTarget(name: "TURNTests", dependencies: ["TURN", "STUN", "RTCBase"]),
        .testTarget(name: "SDPTests", dependencies: ["SDP"]),
        .testTarget(name: "SCTPTests", dependencies: ["SCTP", "DataChannel", "RTCBase", "STUN"]),
        .testTarget(name: "RTPTests", dependencies: ["RTP"]),
        .testTarget(name: "CongestionControlTests", dependencies: ["CongestionControl", "RTP", "RTCBase"]),
        .testTarget(name: "DTLSTests", dependencies: ["DTLS"]),
        .testTarget(name: "SRTPTests", dependencies: ["SRTP", "RTP"]),
        .testTarget(name: "WebRTCSessionTests", dependencies: ["WebRTCSession", "WebRTCViewer", "SDP", "ICE", "DTLS", "RTCBase", "SCTP", "DataChannel", "CongestionControl", "RTP"]),
        .testTarget(name: "MediaTests", dependencies: ["X264", "Opus", "MediaSources"]),
        .testTarget(name: "CameraServerTests", dependencies: [
            "CameraServer", "RTCBase", "TURN", "STUN", "SystemSupport", "V4L2", "MediaSources", "DTLS", "SDP", "JPEG", .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        .testTarget(name: "EcosystemTests", dependencies: ["JPEG", "RTSP", "OutputFormats", "RTP", "MediaSources", "RTCBase"]),
        .testTarget(name: "V4L2Tests", dependencies: ["V4L2", "RTCBase"]),
        .testTarget(name: "ALSATests", dependencies: ["ALSA", "RTCBase"]),
        .testTarget(name: "TalkbackTests", dependencies: ["Talkback", "EchoCanceller", "RTCBase"]),
        // Real kernel drivers (vivid, vicodec, snd-aloop): these run inside board/qemu-x86_64's VM and
        // skip elsewhere (board/qemu-x86_64/test-kernel-drivers.sh).
        .testTarget(name: "KernelDriverTests", dependencies: ["V4L2", "ALSA", "RTCBase", "MediaSources"]),
    ],
    swiftLanguageModes: [.v6]
)
