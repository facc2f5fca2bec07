import Logging
import MediaSources
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RTCBase
import RTP
import RTSP
import SystemSupport

/// Whether anyone watches, from both kinds of viewers: WebRTC (the hub) and RTSP clients. The
/// encoders run while either has someone (one encoder for all: README, Performance).
final class ViewerPresence: EncoderControl, @unchecked Sendable {  // state under `lock`
    private let media: EncoderControl
    private let lock = NIOLock()
    private var webRTC = false
    private var rtsp = false

    init(media: EncoderControl) { self.media = media }

    func requestKeyframe() { media.requestKeyframe() }

    /// The reduced encoding is the WebRTC hub's alone (RTSP clients get the full one).
    func requestReducedKeyframe() { media.requestReducedKeyframe() }

    func setReducedLayer(kbps: Int?) { media.setReducedLayer(kbps: kbps) }

    /// RTSP clients share the one encoder: they get what the weakest WebRTC viewer's link takes.
    func setBitrateCap(kbps: Int?) { media.setBitrateCap(kbps: kbps) }

    /// RTSP clients (over TCP) get no say; the WebRTC viewers' links do.
    func setViewerLinksCongested(full: Bool, reduced: Bool) { media.setViewerLinksCongested(full: full, reduced: reduced) }

    /// The hub's first viewer came or its last went.
    func setViewersPresent(_ present: Bool) { update { $0.webRTC = present } }

    func setRTSPClientsPresent(_ present: Bool) { update { $0.rtsp = present } }

    private func update(_ change: (ViewerPresence) -> Void) {
        let (before, after): (Bool, Bool) = lock.withLock {
            let before = webRTC || rtsp
            change(self)
            return (before, webRTC || rtsp)
        }
        if before != after { media.setViewersPresent(after) }
    }
}

/// The encoders' frames to both outputs: the WebRTC hub and the RTSP clients.
final class MediaFanout: EncodedFrameSink, @unchecked Sendable {
    let hub: StreamHub
    let rtsp: RTSPServer

    init(hub: StreamHub, rtsp: RTSPServer) {
        self.hub = hub
        self.rtsp = rtsp
    }

    func beginGeneration(_ generation: Int) {
        hub.beginGeneration(generation)
        rtsp.beginGeneration(generation)
    }

    func deliver(_ frame: EncodedVideoFrame, generation: Int) {
        hub.deliver(frame, generation: generation)
        // RTSP clients get the full encoding only (the reduced one is for WebRTC viewers on slow links).
        if frame.layer == .full { rtsp.deliver(frame, generation: generation) }
    }

    func deliver(_ frame: EncodedAudioFrame, generation: Int) {
        hub.deliver(frame, generation: generation)
        rtsp.deliver(frame, generation: generation)
    }
}

/// What the RTSP server asks of the rest of the daemon for each request.
struct RTSPServerContext: Sendable {
    /// nil: viewing is open; else the Digest HA1s that may view (viewing password, tokens).
    var acceptedHA1s: @Sendable () -> [String]?
    var profileLevelID: @Sendable () -> String
    var hasAudio: @Sendable () -> Bool
    var maximumClients: @Sendable () -> Int
}

/// RTSP (RFC 2326) on its own TCP port for NVRs, VLC, FFmpeg, go2rtc, Frigate: the sans-IO
/// RTSPConnection per connection (RTSP target), and here the sockets — the TCP listener, a UDP pair
/// for RTP/RTCP — and the clients that play. Frames come from the encoders' threads (MediaFanout),
/// are packetized once (RTSPMediaPacketizer) and written to each client: interleaved on its TCP
/// connection or to its UDP ports. A client that reads too slowly skips frames until the next
/// keyframe (freshest frame wins). Playing clients count as viewers (ViewerPresence).
final class RTSPServer: @unchecked Sendable {  // state under `lock`
    struct Client {
        var channel: Channel
        var tracks: [RTSPTrack: RTSPTransport]
        var remote: SocketAddress?
        var waitingForKeyframe = true
        var admittedBy: String?
    }

    let presence: ViewerPresence
    private let context: RTSPServerContext
    private let logger: Logger
    private let lock = NIOLock()
    private var packetizer: RTSPMediaPacketizer
    private var clients: [String: Client] = [:]
    private var generation = 0
    private var spropParameterSets: String?
    private var udpRTP: Channel?
    private var udpRTCP: Channel?
    private var listener: Channel?
    private var lastKeyframeRequest: MonotonicTime?
    /// When the last RTCP Sender Reports went out (every `senderReportInterval` while anyone plays).
    private var lastSenderReport: MonotonicTime?
    static let senderReportInterval: Duration = .seconds(2)
    private let ntpNanosecondsAtMonotonicZero = MonotonicClock.ntpNanosecondsAtMonotonicZero()
    /// Packets sent, and frames skipped for slow clients (for /metrics).
    private(set) var packetsSent = 0
    private(set) var framesSkipped = 0

    init(presence: ViewerPresence, context: RTSPServerContext, logger: Logger) {
        self.presence = presence
        self.context = context
        self.logger = logger
        var random = SystemRandomNumberGenerator()
        packetizer = RTSPMediaPacketizer(random: &random)
    }

    var playingClients: Int { lock.withLock { clients.count } }
    var counters: (packets: Int, skipped: Int) { lock.withLock { (packetsSent, framesSkipped) } }

    // MARK: - Sockets

    /// Listens on `port` (TCP) and opens the UDP pair for RTP/RTCP.
    func start(group: EventLoopGroup, host: String, port: Int) throws {
        let (rtp, rtcp) = try Self.bindUDPPair(group: group, host: host) { [weak self] envelope in
            self?.receivedRTCP(from: envelope.remoteAddress)
        }
        let channel: Channel
        do {
            channel = try listen(group: group, host: host, port: port)
        } catch {
            try? rtp.close().wait()
            try? rtcp.close().wait()
            throw error
        }
        lock.withLock {
            udpRTP = rtp
            udpRTCP = rtcp
            listener = channel
        }
        logger.info("RTSP on port \(channel.localAddress?.port ?? port) (RTP/UDP \(rtp.localAddress?.port ?? 0)-\(rtcp.localAddress?.port ?? 0))")
    }

    private func listen(group: EventLoopGroup, host: String, port: Int) throws -> Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 16)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RTSPConnectionHandler(server: self))
                }
            }
            .bind(host: host, port: port).wait()
    }

    var localPort: Int? { lock.withLock { listener?.localAddress?.port } }

    /// An even RTP port and the next one for RTCP (RFC 3550 §11), both picked by the kernel.
    private static func bindUDPPair(group: EventLoopGroup, host: String,
                                    rtcp: @escaping @Sendable (AddressedEnvelope<ByteBuffer>) -> Void) throws -> (Channel, Channel) {
        for _ in 0..<20 {
            let rtp = try DatagramBootstrap(group: group).bind(host: host, port: 0).wait()
            guard let port = rtp.localAddress?.port, port % 2 == 0, port < 65535 else {
                try? rtp.close().wait()
                continue
            }
            do {
                let control = try DatagramBootstrap(group: group)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(RTCPReceiver(received: rtcp))
                        }
                    }
                    .bind(host: host, port: port + 1).wait()
                return (rtp, control)
            } catch {
                try? rtp.close().wait()
            }
        }
        throw RTSPServerError.noUDPPorts
    }

    func stop() {
        let (channels, playing): ([Channel], [Client]) = lock.withLock {
            defer { clients = [:] }
            return ([listener, udpRTP, udpRTCP].compactMap { $0 }, Array(clients.values))
        }
        for client in playing { client.channel.close(promise: nil) }
        for channel in channels { try? channel.close().wait() }
    }

    // MARK: - For the connections (event loop)

    func settings() -> RTSPServerSettings {
        var settings = RTSPServerSettings()
        settings.acceptedHA1s = context.acceptedHA1s()
        settings.profileLevelID = context.profileLevelID()
        settings.hasAudio = context.hasAudio()
        lock.withLock {
            settings.spropParameterSets = spropParameterSets
            settings.videoSSRC = packetizer.videoSSRC
            settings.audioSSRC = packetizer.audioSSRC
            if let rtp = udpRTP?.localAddress?.port, let rtcp = udpRTCP?.localAddress?.port {
                settings.serverPorts = (UInt16(rtp), UInt16(rtcp))
            }
            if clients.count >= context.maximumClients() {
                settings.refusal = "the camera already has \(clients.count) RTSP clients"
            }
        }
        return settings
    }

    func play(sessionID: String, tracks: [RTSPTrack: RTSPTransport], channel: Channel, admittedBy: String?) {
        let first: Bool = lock.withLock {
            clients[sessionID] = Client(channel: channel, tracks: tracks, remote: channel.remoteAddress, admittedBy: admittedBy)
            return clients.count == 1
        }
        logger.info("RTSP client \(channel.remoteAddress?.description ?? "?") playing (\(tracks.values.map { "\($0)" }.sorted().joined(separator: ", ")))")
        if first { presence.setRTSPClientsPresent(true) }
        requestKeyframe(now: MonotonicClock.now(), force: true)
    }

    func stop(sessionID: String) {
        let (removed, last): (Bool, Bool) = lock.withLock {
            let removed = clients.removeValue(forKey: sessionID) != nil
            return (removed, removed && clients.isEmpty)
        }
        if removed { logger.info("RTSP session \(sessionID) ended") }
        if last { presence.setRTSPClientsPresent(false) }
    }

    /// Ends the clients whose credential is no longer accepted (password changed, token revoked,
    /// protection turned on). Returns how many.
    @discardableResult
    func endClientsNoLongerAllowed() -> Int {
        let accepted = context.acceptedHA1s()
        let doomed: [Channel] = lock.withLock {
            guard let accepted else { return [] }
            return clients.values.filter { client in client.admittedBy.map { !accepted.contains($0) } ?? true }.map(\.channel)
        }
        for channel in doomed { channel.close(promise: nil) }
        return doomed.count
    }

    private func receivedRTCP(from address: SocketAddress) {
        // A UDP client's receiver reports keep its session alive (its connection may be idle).
        let channels: [Channel] = lock.withLock {
            clients.values.filter { client in
                client.remote?.ipAddress == address.ipAddress && client.tracks.values.contains { transport in
                    if case let .udp(_, rtcp) = transport { return Int(rtcp) == address.port }
                    return false
                }
            }.map(\.channel)
        }
        for channel in channels { channel.pipeline.fireUserInboundEventTriggered(RTSPConnectionHandler.RTCPSeen()) }
    }

    // MARK: - Media (the encoders' threads)

    func beginGeneration(_ generation: Int) {
        lock.withLock { self.generation = generation }
    }

    func deliver(_ frame: EncodedVideoFrame, generation: Int) {
        var wantKeyframe = false
        lock.withLock {
            guard generation == self.generation else { return }
            if frame.isKeyframe { noteParameterSets(frame.accessUnit) }
            guard !clients.isEmpty else { return }
            let packets = packetizer.packetizeVideo(accessUnit: frame.accessUnit, captureTime: frame.captureTime)
            sendSenderReportsIfDue(now: MonotonicClock.now())
            for (id, client) in clients {
                guard let transport = client.tracks[.video] else { continue }
                if client.waitingForKeyframe {
                    guard frame.isKeyframe else { wantKeyframe = true; continue }
                    clients[id]?.waitingForKeyframe = false
                }
                if !send(packets, over: transport, to: client) {
                    clients[id]?.waitingForKeyframe = true   // behind: the rest of this GOP is useless to it
                    framesSkipped += 1
                    wantKeyframe = true
                }
            }
        }
        if wantKeyframe { requestKeyframe(now: MonotonicClock.now(), force: false) }
    }

    func deliver(_ frame: EncodedAudioFrame, generation: Int) {
        lock.withLock {
            guard generation == self.generation, !clients.isEmpty else { return }
            let packet = packetizer.packetizeAudio(opusFrame: frame.packet, captureTime: frame.captureTime)
            for client in clients.values {
                guard let transport = client.tracks[.audio] else { continue }
                _ = send([packet], over: transport, to: client)
            }
        }
    }

    /// Under the lock: RTCP Sender Reports (SR + SDES CNAME) for each stream to every playing client,
    /// on its RTCP channel or port, so receivers map both streams' RTP timestamps to one wall clock.
    private func sendSenderReportsIfDue(now: MonotonicTime) {
        if let last = lastSenderReport, now - last < Self.senderReportInterval { return }
        lastSenderReport = now
        let ntp = NTPTime(monotonic: now, ntpNanosecondsAtMonotonicZero: ntpNanosecondsAtMonotonicZero).value
        for client in clients.values {
            for (track, transport) in client.tracks {
                let report = packetizer.senderReport(for: track, now: now, ntp: ntp)
                switch transport {
                case let .tcp(_, rtcpChannel):
                    guard client.channel.isActive, client.channel.isWritable else { continue }
                    var buffer = client.channel.allocator.buffer(capacity: report.count + 4)
                    buffer.writeBytes(RTSPMediaPacketizer.interleaved(channel: rtcpChannel, packet: report))
                    client.channel.writeAndFlush(buffer, promise: nil)
                case let .udp(_, rtcpPort):
                    guard let udp = udpRTCP, let ip = client.remote?.ipAddress,
                          let address = try? SocketAddress(ipAddress: ip, port: Int(rtcpPort)) else { continue }
                    var buffer = udp.allocator.buffer(capacity: report.count)
                    buffer.writeBytes(report)
                    udp.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: buffer), promise: nil)
                }
            }
        }
    }

    /// Under the lock. One write per frame and client on TCP; false when the client is behind.
    private func send(_ packets: [[UInt8]], over transport: RTSPTransport, to client: Client) -> Bool {
        switch transport {
        case let .tcp(channel, _):
            guard client.channel.isActive else { return true }
            guard client.channel.isWritable else { return false }
            var buffer = client.channel.allocator.buffer(capacity: packets.reduce(0) { $0 + $1.count + 4 })
            for packet in packets {
                buffer.writeBytes([0x24, channel, UInt8(truncatingIfNeeded: packet.count >> 8), UInt8(truncatingIfNeeded: packet.count)])
                buffer.writeBytes(packet)
            }
            client.channel.writeAndFlush(buffer, promise: nil)
        case let .udp(port, _):
            guard let udp = udpRTP, let remote = client.remote, let address = try? SocketAddress(ipAddress: remote.ipAddress ?? "", port: Int(port)) else {
                return true
            }
            for packet in packets {
                var buffer = udp.allocator.buffer(capacity: packet.count)
                buffer.writeBytes(packet)
                udp.write(AddressedEnvelope(remoteAddress: address, data: buffer), promise: nil)
            }
            udp.flush()
        }
        packetsSent += packets.count
        return true
    }

    /// Under the lock: the SPS and PPS of a keyframe, for DESCRIBE's sprop-parameter-sets.
    private func noteParameterSets(_ accessUnit: [UInt8]) {
        let units = AnnexB.nalUnits(in: accessUnit)
        guard let sps = units.first(where: { $0.type == H264NALType.sequenceParameterSet }),
              let pps = units.first(where: { $0.type == H264NALType.pictureParameterSet }) else { return }
        spropParameterSets = Base64.encode(Array(accessUnit[sps.range])) + "," + Base64.encode(Array(accessUnit[pps.range]))
    }

    /// At most one keyframe request a second on behalf of RTSP clients (a PLAY asks at once).
    private func requestKeyframe(now: MonotonicTime, force: Bool) {
        let ask: Bool = lock.withLock {
            if !force, let last = lastKeyframeRequest, now - last < .seconds(1) { return false }
            lastKeyframeRequest = now
            return true
        }
        if ask { presence.requestKeyframe() }
    }
}

enum RTSPServerError: Error, CustomStringConvertible {
    case noUDPPorts
    var description: String { "no free even/odd UDP port pair for RTP/RTCP" }
}

/// One RTSP control connection: bytes to the sans-IO RTSPConnection, its outputs to the socket and
/// the server. A timer checks the session's expiry.
final class RTSPConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct RTCPSeen {}

    private let server: RTSPServer
    private var connection: RTSPConnection
    private var expiry: RepeatedTask?

    init(server: RTSPServer) {
        self.server = server
        var random = SystemRandomNumberGenerator()
        connection = RTSPConnection(sessionID: random.bytes(8).hexadecimal.uppercased(), nonce: random.bytes(16).hexadecimal,
                                    now: MonotonicClock.now())
    }

    func channelActive(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        expiry = context.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(5), delay: .seconds(5)) { _ in
            let (handler, context) = loopBound.value
            handler.perform(handler.connection.timeout(now: MonotonicClock.now(), settings: handler.server.settings()), context: context)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        let settings = server.settings()
        perform(connection.received(bytes, now: MonotonicClock.now(), settings: settings), context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is RTCPSeen { connection.activity(now: MonotonicClock.now()) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        expiry?.cancel()
        perform(connection.connectionClosed(), context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func perform(_ outputs: [RTSPConnectionOutput], context: ChannelHandlerContext) {
        for output in outputs {
            switch output {
            case let .send(bytes):
                var buffer = context.channel.allocator.buffer(capacity: bytes.count)
                buffer.writeBytes(bytes)
                context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            case let .play(sessionID, tracks):
                server.play(sessionID: sessionID, tracks: tracks, channel: context.channel, admittedBy: connection.admittedBy)
            case let .stop(sessionID):
                server.stop(sessionID: sessionID)
            case .close:
                context.close(promise: nil)
            }
        }
    }
}

/// RTCP from UDP clients (receiver reports): only their arrival is used, to keep sessions alive.
private final class RTCPReceiver: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    private let received: @Sendable (AddressedEnvelope<ByteBuffer>) -> Void

    init(received: @escaping @Sendable (AddressedEnvelope<ByteBuffer>) -> Void) { self.received = received }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received(unwrapInboundIn(data))
    }
}
