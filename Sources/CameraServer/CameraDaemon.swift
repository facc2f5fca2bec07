import DTLS
import Dispatch
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import RTCBase

#if canImport(Glibc)
import Glibc
#endif

/// Everything the daemon is started with (the CLI fills it; the settings page changes parts later).
public struct DaemonConfiguration: Sendable {
    public var httpAddress = "0.0.0.0"
    public var httpPort = 8080
    public var mediaPort = 8189
    public var stateDirectory = "/var/lib/rtcam"
    /// Addresses put in the SDP answer as host candidates; empty: every usable interface address.
    public var candidateAddresses: [String] = []
    public var maximumViewers = 10
    public var media = MediaConfiguration()

    public init() {}
}

public enum DaemonError: Error, CustomStringConvertible {
    case invalidCandidateAddress(String)
    case stateDirectory(String)
    case certificate(String)

    public var description: String {
        switch self {
        case let .invalidCandidateAddress(text): return "not an IP address: \(text)"
        case let .stateDirectory(reason): return "state directory: \(reason)"
        case let .certificate(reason): return "DTLS certificate: \(reason)"
        }
    }
}

/// The running daemon: one event loop for HTTP, UDP and every session; encoders on their own threads.
public final class CameraDaemon: @unchecked Sendable {
    private let configuration: DaemonConfiguration
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let startedAt = MonotonicClock.now()

    public init(configuration: DaemonConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    /// Serves until SIGTERM or SIGINT, then closes every session cleanly.
    public func run() throws {
        let loop = group.next()
        let certificate = try loadOrCreateCertificate()
        let candidates = try candidateAddresses()
        let media = try MediaPipeline(configuration: configuration.media, logger: logger)
        let settings = HubSettings(
            maximumViewers: configuration.maximumViewers, candidateAddresses: candidates,
            mediaPort: UInt16(configuration.mediaPort), h264ProfileLevelID: media.h264ProfileLevelID,
            hasVideo: true, hasAudio: media.hasAudio)
        let hub = StreamHub(loop: loop, settings: settings, certificate: certificate, logger: logger)
        hub.requestKeyframeFromEncoder = { media.requestKeyframe() }

        let udp = try DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.socketOption(.so_rcvbuf), value: 1 << 20)
            .channelOption(.socketOption(.so_sndbuf), value: 1 << 21)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UDPHandler(hub: hub))
                }
            }
            .bind(host: "0.0.0.0", port: configuration.mediaPort).wait()
        try loop.submit { hub.attach(udpChannel: udp) }.wait()

        let router = CameraRouter(hub: hub, status: { [self] in statusJSON(hub: hub, media: media) })
        let http = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(HTTPHandler(router: router))
                }
            }
            .bind(host: configuration.httpAddress, port: configuration.httpPort).wait()

        media.start(
            video: { frame in loop.execute { hub.deliverVideo(accessUnit: frame.accessUnit, isKeyframe: frame.isKeyframe, captureTime: frame.captureTime) } },
            audio: { frame in loop.execute { hub.deliverAudio(opusFrame: frame.packet, captureTime: frame.captureTime) } })

        let candidateList = candidates.map { "\($0)" }.joined(separator: ", ")
        logger.info("rtcam serving http://\(configuration.httpAddress):\(configuration.httpPort)/ — media on UDP \(configuration.mediaPort), candidates \(candidateList), \(media.summary)")

        waitForTerminationSignal()
        logger.info("stopping: closing every session")
        media.stop()
        try? loop.submit { hub.closeAll() }.wait()
        try? http.close().wait()
        try? udp.close().wait()
        try? group.syncShutdownGracefully()
        logger.info("stopped")
    }

    private func waitForTerminationSignal() {
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let stop = DispatchSemaphore(value: 0)
        let queue = DispatchQueue(label: "rtcam.signals")
        let sources = [SIGTERM, SIGINT].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { stop.signal() }
            source.resume()
            return source
        }
        stop.wait()
        sources.forEach { $0.cancel() }
    }

    private func candidateAddresses() throws -> [TransportAddress.IP] {
        if !configuration.candidateAddresses.isEmpty {
            return try configuration.candidateAddresses.map { text in
                guard let ip = TransportAddress.IP(parsing: text) else { throw DaemonError.invalidCandidateAddress(text) }
                return ip
            }
        }
        var found: [TransportAddress.IP] = []
        for device in (try? System.enumerateDevices()) ?? [] {
            guard let address = device.address, case .v4 = address,
                  let transport = TransportAddress(address), !transport.ip.isLoopback,
                  !found.contains(transport.ip) else { continue }
            found.append(transport.ip)
        }
        // A network namespace holding only `lo` (how tests isolate themselves) still works.
        return found.isEmpty ? [.v4(127, 0, 0, 1)] : found
    }

    /// The DTLS certificate is made once and kept in the state directory, so a browser sees the same
    /// fingerprint across restarts.
    private func loadOrCreateCertificate() throws -> DTLSCertificate {
        let path = configuration.stateDirectory + "/dtls-certificate.pem"
        try StateFiles.ensureDirectory(configuration.stateDirectory)
        if let pem = StateFiles.read(path) {
            do {
                return try DTLSCertificate(pem: pem)
            } catch {
                logger.warning("\(path) is unreadable (\(error)); making a new certificate")
            }
        }
        var random = SystemRandomNumberGenerator()
        let certificate: DTLSCertificate
        do {
            certificate = try DTLSCertificate.generate(commonName: "rtcam", random: &random)
        } catch {
            throw DaemonError.certificate("\(error)")
        }
        do {
            try StateFiles.writeAtomically(path, contents: certificate.pem, mode: 0o600)
        } catch {
            logger.warning("could not save the DTLS certificate to \(path): \(error)")
        }
        return certificate
    }

    private func statusJSON(hub: StreamHub, media: MediaPipeline) -> String {
        let mediaStatus = media.status()
        var json = JSONWriter()
        json.beginObject()
        json.field("uptimeSeconds", (MonotonicClock.now() - startedAt).millisecondsDouble / 1000)
        json.field("source", mediaStatus.source)
        json.field("audio", mediaStatus.audio)
        json.field("encoder", mediaStatus.encoder)
        json.field("width", mediaStatus.width)
        json.field("height", mediaStatus.height)
        json.field("framesPerSecond", mediaStatus.framesPerSecond)
        json.field("bitrateKbps", mediaStatus.bitrateKbps)
        json.field("framesEncoded", mediaStatus.framesEncoded)
        json.field("keyframesForced", mediaStatus.keyframesForced)
        json.key("viewers")
        json.beginArray()
        for viewer in hub.viewerStatuses() {
            json.beginObject()
            json.field("id", viewer.id)
            json.field("address", viewer.remoteAddress)
            json.field("state", viewer.state)
            json.field("connectedSeconds", viewer.connectedForSeconds)
            json.field("rttMs", viewer.roundTripTimeMilliseconds)
            json.field("fractionLost", viewer.fractionLost)
            json.field("packetsSent", viewer.packetsSent)
            json.field("retransmittedPackets", viewer.retransmittedPackets)
            json.field("keyframeRequests", viewer.keyframeRequests)
            json.endObject()
        }
        json.endArray()
        json.endObject()
        return json.text
    }
}
