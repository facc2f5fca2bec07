import DTLS
import ICE
import Logging
import NIOConcurrencyHelpers
import NIOCore
import RTCBase
import SDP
import WebRTCSession

/// Why a WHEP request was refused; each maps to one HTTP status (draft-ietf-wish-whep, RFC 9725 §4).
enum WHEPError: Error, Equatable {
    case malformedOffer(String)
    case noCommonCodec(String)
    case viewerLimitReached(limit: Int)
    case unknownSession
    case preconditionFailed
    case internalFailure(String)
    /// The daemon is shutting down (its sessions were closed already).
    case stopping
}

/// What a PATCH did (RFC 9725 §4.3).
enum WHEPPatchResult: Equatable {
    /// Trickled candidates: nothing to do for an ICE-lite server.
    case trickled
    /// ICE restart: rtcam's new credentials, as a trickle-ice-sdpfrag, and the new ETag.
    case restarted(fragment: String, entityTag: String)
}

/// Settings of the hub that come from the configuration.
struct HubSettings: Sendable {
    var maximumViewers: Int
    var candidateAddresses: [TransportAddress.IP]
    var mediaPort: UInt16
    /// The one profile-level-id the shared encoder produces (every viewer gets the same stream).
    var h264ProfileLevelID: String
    var hasVideo: Bool
    var hasAudio: Bool
    /// Forced keyframes are merged: at most one request to the encoder per this interval.
    var keyframeRequestInterval: Duration = .milliseconds(300)
}

/// A viewer as /api/status shows it.
struct ViewerStatus: Sendable {
    var id: String
    var remoteAddress: String?
    var state: String
    var connectedForSeconds: Double
    var roundTripTimeMilliseconds: Double?
    var fractionLost: Double
    var packetsSent: Int
    var retransmittedPackets: Int
    var keyframeRequests: Int
}

/// Every viewer of the camera: the WHEP sessions, the shared packetizer and history (MediaFanout),
/// the one UDP socket, and one timer on `loop` at the earliest deadline of all sessions.
///
/// One lock guards all of it. The event loop takes it for WHEP requests, datagrams and timers; an
/// encoder's thread takes it to hand over a frame and sends the frame's packets to every viewer
/// itself, on the media socket, before it encodes the next. So a frame costs no event-loop wake-up,
/// no hop and no NIO write path (README "Performance": that was most of the stack's overhead), and
/// packets leave as soon as the encoder is done. Nothing under the lock waits for I/O (sends never
/// block); the longest holds are a viewer's DTLS handshake steps and WHEP offers on the loop.
final class StreamHub: @unchecked Sendable {
    let loop: EventLoop
    private let lock = NIOLock()
    private var settings: HubSettings
    private let certificate: DTLSCertificate
    private let logger: Logger
    private let ntpNanosecondsAtMonotonicZero: UInt64
    private var random = SystemRandomNumberGenerator()
    private var fanout: MediaFanout
    private var viewers: [String: Viewer] = [:]
    private var viewerIDByUfrag: [String: String] = [:]
    private var viewerIDByAddress: [TransportAddress: String] = [:]
    private var socket: MediaSocket?
    private var receiveChannel: Channel?
    /// One viewer's protected datagrams of one frame, refilled for every viewer and frame.
    private var mediaBatch = DatagramBatch()
    /// A session's other datagrams (ICE, DTLS, RTCP) to one address, gathered for one send (reused).
    private var controlBatch = DatagramBatch()
    private var timer: Scheduled<Void>?
    private var timerDeadline: MonotonicTime?
    /// Which scheduled timer is current: one replaced while it was already firing finds it changed.
    private var timerGeneration = 0
    private var lastKeyframeRequest: MonotonicTime?
    /// When the encoder was last asked for a keyframe that has not come out yet: asking again in
    /// the meantime would only schedule a second, spurious one (and delay the next joining viewer).
    private var keyframeOutstandingSince: MonotonicTime?
    private var keyframeRequestScheduled = false
    /// Called (with the lock held, on any thread) when the encoder should produce a keyframe soon.
    private let requestKeyframeFromEncoder: @Sendable () -> Void
    /// Called (with the lock held, on any thread) when the first viewer arrives (true) or the last
    /// one leaves (false).
    private let viewersPresentChanged: @Sendable (Bool) -> Void

    private struct Viewer {
        var id: String
        var session: PeerSession
        var localUfrag: String
        var createdAt: MonotonicTime
    }

    init(loop: EventLoop, settings: HubSettings, certificate: DTLSCertificate, logger: Logger,
         requestKeyframeFromEncoder: @escaping @Sendable () -> Void,
         viewersPresentChanged: @escaping @Sendable (Bool) -> Void,
         bindReceiveChannel: @escaping @Sendable (MediaSocket, StreamHub) -> EventLoopFuture<Channel>) {
        self.loop = loop
        self.requestKeyframeFromEncoder = requestKeyframeFromEncoder
        self.viewersPresentChanged = viewersPresentChanged
        self.bindReceiveChannel = bindReceiveChannel
        self.settings = settings
        self.certificate = certificate
        self.logger = logger
        ntpNanosecondsAtMonotonicZero = MonotonicClock.ntpNanosecondsAtMonotonicZero()
        var random = SystemRandomNumberGenerator()
        fanout = MediaFanout(random: &random)
    }

    /// Starts serving on `socket`: NIO's channel reading it comes from `bindReceiveChannel` (and
    /// again from it whenever that channel closes while serving).
    func attach(socket: MediaSocket) throws {
        let channel = try bindReceiveChannel(socket, self).wait()
        lock.withLock {
            self.socket = socket
            attachLocked(receiveChannel: channel)
        }
    }

    private func attachLocked(receiveChannel channel: Channel) {
        receiveChannel = channel
        channel.closeFuture.whenComplete { [self] _ in
            loop.execute { self.receiveChannelClosed(channel) }
        }
    }

    /// Registers a new reading channel on the media socket when the current one closes while
    /// serving (NIO closes a datagram channel on a read error it does not know as per-datagram):
    /// viewers keep their sessions and lose only what arrived meanwhile.
    private let bindReceiveChannel: @Sendable (MediaSocket, StreamHub) -> EventLoopFuture<Channel>
    private var stopping = false
    private var mediaSocketRebinds = 0
    /// How many times the reading channel was replaced since start.
    var receiveChannelReopens: Int { lock.withLock { mediaSocketRebinds } }

    private func receiveChannelClosed(_ channel: Channel) {
        // The new channel's future may complete at once, on this thread: its callback takes the
        // lock again, so it is attached after the lock is released.
        let replacement: EventLoopFuture<Channel>? = lock.withLock {
            guard !stopping, receiveChannel === channel || receiveChannel == nil, let socket else { return nil }
            receiveChannel = nil
            logger.error("the media socket's reading channel closed while serving; opening it again (viewers stay connected)")
            return bindReceiveChannel(socket, self)
        }
        replacement?.hop(to: loop).whenComplete { [self] result in
            lock.withLock {
                switch result {
                case let .success(replacement):
                    guard !stopping else { replacement.close(promise: nil); return }
                    mediaSocketRebinds += 1
                    attachLocked(receiveChannel: replacement)
                    logger.notice("media socket read again (\(mediaSocketRebinds) times since start)")
                case let .failure(error):
                    logger.critical("could not read the media socket again: \(error); retrying in 1 s")
                    loop.scheduleTask(in: .seconds(1)) { [self] in
                        receiveChannelClosed(channel)
                    }
                }
            }
        }
    }

    /// Closes the media socket and its reading channel (shutdown, after `closeAll`).
    func closeMediaSocket() -> EventLoopFuture<Void> {
        lock.withLock {
            stopping = true
            socket?.close()
            socket = nil
            guard let receiveChannel else { return loop.makeSucceededVoidFuture() }
            return receiveChannel.close()
        }
    }

    /// What the media socket did since start (GET /api/status).
    var mediaSocketCounters: MediaSocketCounters {
        lock.withLock { socket?.counters ?? MediaSocketCounters() }
    }

    var viewerCount: Int { lock.withLock { viewers.count } }
    func update(settings: HubSettings) {
        lock.withLock { self.settings = settings }
    }

    // MARK: - WHEP

    /// POST /whep: negotiate the offer and start a session (RFC 9725 §4.2).
    func createSession(offer text: String) throws(WHEPError) -> (id: String, answer: String) {
        lock.lock()
        defer { lock.unlock() }
        return try createSessionLocked(offer: text)
    }

    private func createSessionLocked(offer text: String) throws(WHEPError) -> (id: String, answer: String) {
        guard !stopping else { throw .stopping }
        guard viewers.count < settings.maximumViewers else {
            throw .viewerLimitReached(limit: settings.maximumViewers)
        }
        let offer: SessionDescription
        do {
            offer = try SessionDescription(parsing: text)
        } catch {
            throw .malformedOffer("\(error)")
        }
        let localICE = ICECredentials(ufrag: random.iceString(length: 8), password: random.iceString(length: 24))
        let candidates = settings.candidateAddresses.enumerated().map { index, ip in
            HostCandidate(address: TransportAddress(ip: ip, port: settings.mediaPort), foundation: String(index + 1),
                          localPreference: UInt16(clamping: 65_535 - index))
        }
        let local = LocalTransport(
            iceUfrag: localICE.ufrag, icePassword: localICE.password, fingerprintSHA256: certificate.fingerprintSDP,
            candidates: candidates, videoSSRC: fanout.videoSSRC, videoRTXSSRC: fanout.videoRTXSSRC,
            audioSSRC: fanout.audioSSRC, cname: "rtcam", streamID: "rtcam")
        let capabilities = LocalCapabilities(h264ProfileLevelIDs: [settings.h264ProfileLevelID],
                                             audio: settings.hasAudio, video: settings.hasVideo)
        let answer: SessionDescription
        let negotiated: NegotiatedSession
        do {
            (answer, negotiated) = try WHEPAnswerer.answer(offer: offer, capabilities: capabilities, local: local)
        } catch let error {
            if case .noCommonCodec = error { throw .noCommonCodec("\(error)") }
            throw .malformedOffer("\(error)")
        }
        let now = MonotonicClock.now()
        let configuration = PeerSessionConfiguration(
            negotiated: negotiated, localICE: localICE, certificate: certificate,
            ntpNanosecondsAtMonotonicZero: ntpNanosecondsAtMonotonicZero, cname: "rtcam")
        let session: PeerSession
        do {
            session = try PeerSession(configuration: configuration, now: now, random: &random)
        } catch {
            throw .internalFailure("DTLS setup failed: \(error)")
        }
        let id = random.bytes(12).map { String($0, radix: 16).leftPadded(2) }.joined()
        viewers[id] = Viewer(id: id, session: session, localUfrag: localICE.ufrag, createdAt: now)
        viewerIDByUfrag[localICE.ufrag] = id
        logger.info("viewer \(id) joined (\(viewers.count) watching)")
        if viewers.count == 1 { viewersPresentChanged(true) }
        rescheduleTimer(candidate: session.nextDeadline)
        return (id, answer.serialized())
    }

    /// The ETag of a session (RFC 9725 §4.3.1): it names the ICE session, so it changes on restart.
    func entityTag(of id: String) -> String? {
        lock.withLock { entityTagLocked(of: id) }
    }

    private func entityTagLocked(of id: String) -> String? {
        viewers[id].map { "\"\($0.localUfrag)\"" }
    }

    /// PATCH /whep/{id}: trickle (ignored: rtcam is ICE-lite and learns addresses from checks) or
    /// an ICE restart when the fragment carries new credentials (RFC 8840 §4.4, RFC 9725 §4.3.2).
    func patchSession(id: String, fragment: String, ifMatch: String?) throws(WHEPError) -> WHEPPatchResult {
        lock.lock()
        defer { lock.unlock() }
        return try patchSessionLocked(id: id, fragment: fragment, ifMatch: ifMatch)
    }

    private func patchSessionLocked(id: String, fragment: String, ifMatch: String?) throws(WHEPError) -> WHEPPatchResult {
        guard let viewer = viewers[id] else { throw .unknownSession }
        if let ifMatch, ifMatch != "*", ifMatch != entityTagLocked(of: id) { throw .preconditionFailed }
        var ufrag: String?
        var password: String?
        for rawLine in fragment.split(whereSeparator: \.isNewline) {  // "\r\n" is one Character
            let line = rawLine.trimmingSpaces
            if line.hasPrefix("a=ice-ufrag:") { ufrag = String(line.dropFirst("a=ice-ufrag:".count)) }
            if line.hasPrefix("a=ice-pwd:") { password = String(line.dropFirst("a=ice-pwd:".count)) }
        }
        guard let ufrag, let password else {
            if ufrag != nil || password != nil { throw .malformedOffer("an ICE restart needs both a=ice-ufrag and a=ice-pwd") }
            return .trickled
        }
        // RFC 8839 §5.4: ufrag 4-256 and password 22-256 ice-chars.
        let iceCharacters = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        guard (4...256).contains(ufrag.count), (22...256).contains(password.count),
              ufrag.allSatisfy(iceCharacters.contains), password.allSatisfy(iceCharacters.contains) else {
            throw .malformedOffer("a=ice-ufrag must be 4-256 and a=ice-pwd 22-256 ICE characters (RFC 8839 §5.4)")
        }
        let local = ICECredentials(ufrag: random.iceString(length: 8), password: random.iceString(length: 24))
        viewer.session.restartICE(local: local, remote: ICECredentials(ufrag: ufrag, password: password),
                                  now: MonotonicClock.now())
        viewerIDByUfrag[viewer.localUfrag] = nil
        viewerIDByUfrag[local.ufrag] = id
        viewers[id]?.localUfrag = local.ufrag
        logger.info("viewer \(id): ICE restart")
        rescheduleTimer(candidate: viewer.session.nextDeadline)
        return .restarted(fragment: "a=ice-ufrag:\(local.ufrag)\r\na=ice-pwd:\(local.password)\r\n",
                          entityTag: "\"\(local.ufrag)\"")
    }

    /// DELETE /whep/{id}: ends the session at once.
    func deleteSession(id: String) -> Bool {
        lock.withLock {
            guard let viewer = viewers[id] else { return false }
            viewer.session.close(now: MonotonicClock.now(), media: fanout)
            flushOutputs(of: viewer.id)
            removeViewer(id: id, reason: "ended by the viewer (DELETE)")
            return true
        }
    }

    func sessionExists(id: String) -> Bool { lock.withLock { viewers[id] != nil } }

    /// Closes every session (SIGTERM): BYE and close_notify go out before the socket closes.
    func closeAll() {
        lock.withLock {
            stopping = true
            let now = MonotonicClock.now()
            for id in Array(viewers.keys) {
                viewers[id]?.session.close(now: now, media: fanout)
                flushOutputs(of: id)
                removeViewer(id: id, reason: "daemon stopping")
            }
        }
    }

    // MARK: - Network input

    func receive(_ datagram: [UInt8], from address: TransportAddress) {
        lock.withLock { receiveLocked(datagram, from: address) }
    }

    private func receiveLocked(_ datagram: [UInt8], from address: TransportAddress) {
        let id: String?
        if DatagramKind(classifying: datagram) == .stun, let ufrag = ICELiteAgent.localUfrag(inBindingRequest: datagram) {
            id = viewerIDByUfrag[ufrag]
            if let id { viewerIDByAddress[address] = id }
        } else {
            id = viewerIDByAddress[address]
        }
        guard let id, let viewer = viewers[id] else { return }
        viewer.session.handle(.receive(datagram, from: address, now: MonotonicClock.now()), media: fanout)
        flushOutputs(of: id)
    }

    // MARK: - Media input (on the encoders' threads)

    /// Packetizes an encoded frame and sends it to every connected viewer, on the caller's thread.
    func deliverVideo(accessUnit: [UInt8], isKeyframe: Bool, captureTime: MonotonicTime) {
        lock.withLock { deliverVideoLocked(accessUnit: accessUnit, isKeyframe: isKeyframe, captureTime: captureTime) }
    }

    private func deliverVideoLocked(accessUnit: [UInt8], isKeyframe: Bool, captureTime: MonotonicTime) {
        guard !viewers.isEmpty, !stopping else { return }
        let packets = fanout.packetizeVideo(accessUnit: accessUnit, isKeyframe: isKeyframe, captureTime: captureTime)
        broadcast(packets)
        if isKeyframe {
            keyframeOutstandingSince = nil
        } else if viewers.values.contains(where: { $0.session.state == .connected && !$0.session.hasReceivedKeyframe }),
                  keyframeOutstandingSince.map({ MonotonicClock.now() - $0 > .seconds(1) }) ?? true {
            // A connected viewer still waits for its first keyframe and none is on its way.
            requestKeyframeLocked()
        }
    }

    func deliverAudio(opusFrame: [UInt8], captureTime: MonotonicTime) {
        lock.withLock {
            guard !viewers.isEmpty, !stopping else { return }
            broadcast([fanout.packetizeAudio(opusFrame: opusFrame, captureTime: captureTime)])
        }
    }

    private func broadcast(_ packets: [OutgoingPacket]) {
        guard let socket else { return }
        for viewer in viewers.values where viewer.session.state == .connected {
            mediaBatch.removeAll()
            guard let address = viewer.session.protectMedia(packets, into: &mediaBatch) else { continue }
            socket.send(mediaBatch, to: address)
        }
    }

    // MARK: - Keyframes

    /// Merges keyframe requests (PLI, FIR, joining viewers) and passes at most one per interval on.
    func requestKeyframe() {
        lock.withLock { requestKeyframeLocked() }
    }

    private func requestKeyframeLocked() {
        let now = MonotonicClock.now()
        if let last = lastKeyframeRequest, now - last < settings.keyframeRequestInterval {
            guard !keyframeRequestScheduled else { return }
            keyframeRequestScheduled = true
            let delay = settings.keyframeRequestInterval - (now - last)
            loop.scheduleTask(in: .nanoseconds(delay.nanosecondsClamped)) { [self] in
                lock.withLock {
                    keyframeRequestScheduled = false
                    lastKeyframeRequest = MonotonicClock.now()
                    keyframeOutstandingSince = lastKeyframeRequest
                    requestKeyframeFromEncoder()
                }
            }
            return
        }
        lastKeyframeRequest = now
        keyframeOutstandingSince = now
        requestKeyframeFromEncoder()
    }

    // MARK: - Session outputs and timers

    /// Sends what a session produced, in order (a run of datagrams to one address in one call), and
    /// acts on its events.
    private func flushOutputs(of id: String) {
        guard let viewer = viewers[id] else { return }
        let outputs = viewer.session.drainOutputs()
        var index = 0
        while index < outputs.count {
            switch outputs[index] {
            case let .transmit(bytes, to):
                controlBatch.removeAll()
                controlBatch.append(bytes)
                index += 1
                while index < outputs.count, case let .transmit(next, nextTo) = outputs[index], nextTo == to {
                    controlBatch.append(next)
                    index += 1
                }
                socket?.send(controlBatch, to: to)
            case let .event(event):
                handle(event, of: id)
                index += 1
            case .timeout:
                index += 1
            }
        }
        controlBatch.removeAll()
        rescheduleTimer(candidate: viewers[id]?.session.nextDeadline)
    }

    private func handle(_ event: PeerSessionEvent, of id: String) {
        switch event {
        case let .iceSelected(address):
            viewerIDByAddress[address] = id
            logger.debug("viewer \(id): ICE selected \(address)")
        case let .connected(profile):
            logger.info("viewer \(id): connected (SRTP \(profile))")
            requestKeyframeLocked()  // a joining viewer gets a keyframe at once
        case .keyframeRequested:
            requestKeyframeLocked()
        case .bitrateEstimate, .transportFeedback:
            break  // surfaced for rate control (later)
        case let .disconnected(reason), let .failed(reason):
            removeViewer(id: id, reason: reason)
        case .closed:
            removeViewer(id: id, reason: "closed by the viewer")
        }
    }

    private func removeViewer(id: String, reason: String) {
        guard let viewer = viewers.removeValue(forKey: id) else { return }
        viewerIDByUfrag[viewer.localUfrag] = nil
        viewerIDByAddress = viewerIDByAddress.filter { $0.value != id }
        logger.info("viewer \(id) left: \(reason) (\(viewers.count) watching)")
        if viewers.isEmpty {
            // The batches keep the memory of the largest frame they held (a keyframe: up to a few
            // hundred kB); with nobody watching it goes back, like the encoders' (idle RSS).
            mediaBatch = DatagramBatch()
            controlBatch = DatagramBatch()
            viewersPresentChanged(false)
        }
    }

    private func rescheduleTimer(candidate: MonotonicTime?) {
        guard let candidate else { return }
        if let current = timerDeadline, current <= candidate { return }
        timer?.cancel()
        timerDeadline = candidate
        timerGeneration &+= 1
        let generation = timerGeneration
        let delay = candidate - MonotonicClock.now()
        timer = loop.scheduleTask(in: .nanoseconds(max(0, delay.nanosecondsClamped))) { [self] in
            lock.withLock { timerFired(generation: generation) }
        }
    }

    private func timerFired(generation: Int) {
        // Replaced (by an encoder's thread) after it began to fire: the replacement is scheduled.
        guard generation == timerGeneration else { return }
        timerDeadline = nil
        timer = nil
        let now = MonotonicClock.now()
        var earliestNext: MonotonicTime?
        for id in Array(viewers.keys) {
            guard let session = viewers[id]?.session else { continue }
            if let deadline = session.nextDeadline, deadline <= now {
                session.handle(.timeout(now: now), media: fanout)
                flushOutputs(of: id)
            }
            earliestNext = earliest(earliestNext, viewers[id]?.session.nextDeadline)
        }
        rescheduleTimer(candidate: earliestNext)
    }

    // MARK: - Status

    func viewerStatuses() -> [ViewerStatus] {
        lock.withLock { viewerStatusesLocked() }
    }

    private func viewerStatusesLocked() -> [ViewerStatus] {
        let now = MonotonicClock.now()
        return viewers.values.sorted { $0.createdAt < $1.createdAt }.map { viewer in
            let statistics = viewer.session.statistics
            return ViewerStatus(
                id: viewer.id, remoteAddress: viewer.session.remoteAddress?.description,
                state: "\(viewer.session.state)", connectedForSeconds: (now - viewer.createdAt).millisecondsDouble / 1000,
                roundTripTimeMilliseconds: statistics.roundTripTime.map { $0.millisecondsDouble },
                fractionLost: statistics.fractionLost,
                packetsSent: statistics.videoPacketsSent + statistics.audioPacketsSent,
                retransmittedPackets: statistics.retransmittedPackets, keyframeRequests: statistics.keyframeRequests)
        }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
