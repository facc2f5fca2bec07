import DTLS
import ICE
import Logging
import MediaSources
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RTCBase
import SDP
import STUN
import TURN
import WebRTCSession
import SystemSupport

/// Why a WHEP request was refused; each maps to one HTTP status (draft-ietf-wish-whep, RFC 9725 §4).
enum WHEPError: Error, Equatable {
    case malformedOffer(String)
    case noCommonCodec(String)
    case viewerLimitReached(limit: Int)
    /// The address already has this many sessions connecting (issue 20).
    case tooManyPending(limit: Int)
    case unknownSession
    case preconditionFailed
    case internalFailure(String)
    /// The daemon is shutting down (its sessions were closed already).
    case stopping
}

/// What a PATCH did (RFC 9725 §4.3).
enum WHEPPatchResult: Equatable {
    /// Trickled candidates: given to the session's full agent (an ICE-lite one learns from checks).
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
    /// Sessions still connecting beside the viewers, and per address (ViewerAdmission).
    var pendingSessionQuota = 4
    var pendingSessionsPerAddress = 2
    /// Talkback (issue 17): the camera has a speaker, and who may talk through it.
    var hasSpeaker = false
    var whoMayTalk = TalkPermission.viewers
    /// Forced keyframes are merged: at most one request to the encoder per this interval.
    var keyframeRequestInterval: Duration = .milliseconds(300)
    /// The configured video bitrate: the encoder's ceiling and each viewer's starting estimate
    /// (issue 24), and the floor the encoder is not pushed below for a slow viewer, as a share of it.
    var videoBitrateKbps = 2500
    var bitrateFloorShare = 0.4
    /// The video source follows the bitrate the viewers' links take (x264, a hardware encoder); a
    /// passthrough source does not, and a congested viewer's pacer never holds its video.
    var videoFollowsEstimate = true
    /// The ICE agent of new sessions (`--ice`; issue 19). Lite unless the daemon says otherwise.
    var iceMode = ICEMode.lite
    /// The ICE-TCP listener's port (`--ice-tcp-port`), offered as a passive candidate by full-ICE
    /// answers; nil: no ICE-TCP.
    var iceTCPPort: UInt16?
    /// The media socket as STUN servers see it (`--stun`), offered by full-ICE answers.
    var serverReflexiveAddresses: [TransportAddress] = []
    /// The TURN allocation's relayed address and the address the server saw rtcam at (`--turn`),
    /// offered by full-ICE answers as a relayed candidate while the allocation is live.
    var relayedCandidate: (relayed: TransportAddress, mapped: TransportAddress)?
    /// Where mDNS queries for browsers' `.local` candidates go (a test points it at loopback).
    var multicastDNSGroup = MulticastDNSResolver.multicastGroup
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
    /// NACKed packets not resent (repeated, resent too often, over the viewer's budget).
    var retransmissionsRefused: Int
    var keyframeRequests: Int
    /// For /metrics (issue 21): bytes sent (RTP and RTCP), and what SRTP/SRTCP refused.
    var bytesSent = 0
    var srtpProtectFailures = 0
    var srtcpFailures = 0
    var rejectedDatagrams = 0
    /// Extra copies of resends sent while the viewer reported heavy loss.
    var redundantRetransmissions = 0
    /// Copies the viewer's loss called for that its resend budget had no room for.
    var redundantRetransmissionsWithheld = 0
    /// Copies the viewer's loss called for, not sent while its estimator saw congestion.
    var redundantRetransmissionsHeldForCongestion = 0
    /// NACKs for packets whose resend was still on its way (less than a round trip ago).
    var retransmissionsInFlight = 0
    /// Full ICE: the selected pair (issue 19): candidate types both sides, the round trip of its checks.
    var icePair: ICESelectedPair?
    /// Issue 24: the send-side estimate of this viewer's link (nil: it sends no feedback), whether
    /// it is below the encoder's floor, what waits in its pacer, probes and dropped stale video.
    var estimateKbps: Int?
    var belowFloor = false
    /// The video layer it is on ("full", "reduced"; nil: no video yet) and switches so far.
    var layer: String?
    var layerSwitches = 0
    var pacerQueueBytes = 0
    var pacerQueueMilliseconds: Double?
    var probeClusters = 0
    var pacedVideoPacketsDropped = 0
    var delayBasedKbps: Int?
    var lossBasedKbps: Int?
    var rembKbps: Int?
}

/// The one encoder's bitrate and what decided it (issue 24), for /api/status.
struct BitrateControlStatus: Sendable {
    var configuredKbps: Int
    var floorKbps: Int
    /// The encoder's bitrate now: the configured one or the cap the weakest viewer set.
    var encoderTargetKbps: Int
    var capped: Bool
    var viewersBelowFloor: Int
    /// The reduced encoding's bitrate while it runs (issue 24; nil: it does not).
    var reducedLayerKbps: Int? = nil
}

/// What the hub asks of the encoders (MediaController; a recording double in the hub's tests).
protocol EncoderControl: AnyObject, Sendable {
    /// A viewer needs a keyframe soon (already merged by the hub: at most one per interval).
    func requestKeyframe()
    /// The same of the reduced encoding (issue 24), for a viewer moving to it or on it.
    func requestReducedKeyframe()
    /// The second, smaller encoding for viewers below the floor (issue 24): made (its first picture
    /// an IDR) or retargeted to this bitrate, or freed (nil). A source that cannot make it (a
    /// passthrough camera, a hardware encoder, a command's stream) ignores it.
    func setReducedLayer(kbps: Int?)
    /// The first viewer arrived (true) or the last one left (false): encoders run only while watched.
    func setViewersPresent(_ present: Bool)
    /// What the viewers' links take (issue 24): the encoder runs at no more than this (nil: the
    /// configured bitrate). A source that cannot retarget (a command's stream) keeps its rate.
    func setBitrateCap(kbps: Int?)
    /// Some viewer's link is in a congestion episode (issue 24), among the viewers of the full
    /// encoding and among those of the reduced one: an encoder that makes its own periodic IDRs
    /// (x264) holds that layer's next one until it is over. Keyframes asked for are not held.
    func setViewerLinksCongested(full: Bool, reduced: Bool)
}

/// Where the media threads hand their encoded frames: the one hand-off from an encoder's thread to the
/// viewers' sockets. A pipeline's frames carry its generation; after `beginGeneration(n)` frames of an
/// older pipeline are dropped (no stale P-frame follows the new pipeline's keyframe).
protocol EncodedFrameSink: AnyObject, Sendable {
    func beginGeneration(_ generation: Int)
    func deliver(_ frame: EncodedVideoFrame, generation: Int)
    func deliver(_ frame: EncodedAudioFrame, generation: Int)
}

/// Every viewer of the camera: the WHEP registry, the shared packetizer and history (MediaPacketizer),
/// the sending side of the one UDP socket, and one timer on `loop` at the earliest deadline of all
/// sessions. Its decisions (keyframe merging, the session timer, admission) are value types in
/// HubPolicies.swift; building a session from an offer is WHEPSessionFactory's.
///
/// One lock guards all of it. The event loop takes it for WHEP requests, datagrams and timers; an
/// encoder's thread takes it to hand over a frame and sends the frame's packets to every viewer
/// itself, on the media socket, before it encodes the next. So a frame costs no event-loop wake-up,
/// no hop and no NIO write path (README "Performance"), and packets leave as soon as the encoder is
/// done. Nothing under the lock waits for I/O (sends never block); parsing an offer and making a
/// session's DTLS endpoint happen before the lock is taken.
final class StreamHub: EncodedFrameSink, @unchecked Sendable {
    let loop: EventLoop
    let lock = NIOLock()
    let logger: Logger
    private let encoders: EncoderControl
    private let factory: WHEPSessionFactory
    private var settings: HubSettings
    private var packetizer: MediaPacketizer
    private(set) var viewers: [String: Viewer] = [:]
    private var viewerIDByUfrag: [String: String] = [:]
    /// Which session each verified path (remote address, straight or via the relay) belongs to.
    private var viewerIDByPath: [TransportPath: String] = [:]
    /// Full ICE: the sessions' checks out, so that their responses find them.
    private var outstandingChecks = OutstandingChecks()
    /// `--stun`: asks the servers for the media socket's public address, offered in new answers.
    private var stunClient: STUNBindingClient?
    /// `--turn`: the allocation on the media socket whose relayed address new answers offer.
    private var relay: MediaRelay?
    /// How long after its answer a viewer's IPs get relay permissions whether or not rtcam checked
    /// through the relay yet (see createSession).
    static let relayPermissionDelay: Duration = .milliseconds(250)
    /// A session's datagrams on a relay path, each wrapped for the TURN server (reused).
    private var relayBatch = DatagramBatch()
    /// Full ICE: resolves the `.local` names of viewers' candidates (RFC 6762 one-shot queries).
    private var multicastDNS: MulticastDNSResolver?
    /// The candidates (a=candidate values) waiting for each name, and whose they are.
    private var waitingForName: [String: [(viewer: String, candidate: String)]] = [:]
    /// One timer for the STUN client, the TURN client and the mDNS resolver.
    private var serviceTimer: Scheduled<Void>?
    private(set) var serverReflexiveAddresses: [TransportAddress] = []
    private var socket: MediaSocket?
    /// ICE-TCP (RFC 6544): the passive candidate's connections (ICETCPListener).
    private var iceTCP: ICETCPListener?
    private var iceTCPPort: UInt16?
    private var stopping = false
    /// The media pipeline whose frames are sent; others' are dropped.
    private var mediaGeneration = 0
    private var framesPacketized = 0
    private var keyframes: KeyframeRequestPolicy
    private var timers = SessionTimerSchedule<String>()
    private var timer: Scheduled<Void>?
    /// Which scheduled timer is current: one replaced while it was already firing finds it changed.
    private var timerGeneration = 0
    /// One viewer's protected datagrams of one frame, refilled for every viewer and frame.
    private var mediaBatch = DatagramBatch()
    /// A session's other datagrams (ICE, DTLS, RTCP) to one address, gathered for one send (reused).
    private var controlBatch = DatagramBatch()
    /// A session's outputs, taken after each input (reused).
    private var outputs: [PeerSessionOutput] = []
    /// Where a talking viewer's audio goes (issue 17); nil: nobody's is played.
    var talkback: TalkbackController?   // under `lock` (StreamHub+DataChannels reads it)
    /// Data channels: the "rtcam" channels, the status timer, the camera controls (StreamHub+DataChannels.swift).
    var dataChannels = HubDataChannels()
    /// The encoder follows the weakest viewer's estimate down to a floor (issue 24).
    private var bitratePolicy: EncoderBitratePolicy
    private var bitrateRaiseScheduled = false
    /// The second, smaller encoding for viewers below the floor, and its own keyframe merging.
    private var reducedLayer = ReducedLayerPolicy<String>()
    private var reducedKeyframes: KeyframeRequestPolicy
    /// What the encoders were last told of the viewers' links, per layer (`EncoderControl.setViewerLinksCongested`).
    private var viewerLinksCongested = (full: false, reduced: false)
    private var reducedLayerStopScheduled = false
    /// The reduced encoding's frames have begun to arrive since it was asked for: viewers are moved
    /// to it only then. A source that cannot make it (passthrough, a hardware encoder, a file, a
    /// command's stream) never sends one, and its slow viewers stay on the one stream there is.
    private var reducedLayerArrived = false

    struct Viewer {
        var id: String
        var session: PeerSession
        var localUfrag: String
        var createdAt: MonotonicTime
        var credential: ViewerCredential
        /// The IP the WHEP POST came from (nil: an in-process caller).
        var client: TransportAddress.IP?
        /// The paths the session verified (bounded by the session), mapped to it in viewerIDByPath.
        var paths: Set<TransportPath> = []
    }

    /// The SRTP crypto the daemon chose, installed when the first viewer comes: installing runs
    /// libsrtp's initialisation, which loads NSS (about 1 MB of an idle camera's RSS otherwise).
    private let srtpCrypto: SRTPCrypto.Choice
    private var srtpCryptoInstalled = false

    init(loop: EventLoop, settings: HubSettings, certificate: DTLSCertificate, logger: Logger, encoders: EncoderControl,
         srtpCrypto: SRTPCrypto.Choice = .cpuInstructions) {
        self.loop = loop
        self.srtpCrypto = srtpCrypto
        self.settings = settings
        self.logger = logger
        self.encoders = encoders
        var random = SystemRandomNumberGenerator()
        packetizer = MediaPacketizer(random: &random)
        factory = WHEPSessionFactory(certificate: certificate, packetizer: packetizer,
                                     ntpNanosecondsAtMonotonicZero: MonotonicClock.ntpNanosecondsAtMonotonicZero())
        keyframes = KeyframeRequestPolicy(minimumInterval: settings.keyframeRequestInterval)
        reducedKeyframes = KeyframeRequestPolicy(minimumInterval: settings.keyframeRequestInterval)
        bitratePolicy = EncoderBitratePolicy(configuredKbps: settings.videoBitrateKbps)
        bitratePolicy.floorShare = settings.bitrateFloorShare
    }

    /// Plays the talk floor holder's audio from now on (issue 17).
    func attach(talkback: TalkbackController) {
        lock.withLock { self.talkback = talkback }
    }

    /// Sends on `socket` from now on (its reading side is MediaSocketReader's).
    func attach(socket: MediaSocket) {
        lock.withLock { self.socket = socket }
    }

    /// Sends on the ICE-TCP listener's connections from now on (paths `.tcp(remote)`); full-ICE
    /// answers offer its `port` as a passive candidate.
    func attach(iceTCP listener: ICETCPListener, port: UInt16) {
        lock.withLock {
            iceTCP = listener
            iceTCPPort = port
        }
    }

    /// A datagram read from the ICE-TCP connection with `remote` at its other end.
    func receive(_ datagram: [UInt8], on path: TransportPath) {
        lock.withLock { demultiplex(datagram, on: path) }
    }

    /// The ICE-TCP connection on `path` closed: its session's pair on it failed.
    func transportClosed(_ path: TransportPath) {
        lock.withLock {
            guard let id = viewerIDByPath[path], let viewer = viewers[id] else { return }
            viewer.session.transportClosed(path)
        }
    }

    /// Whether a session verified `path` and still uses it (the ICE-TCP listener closes connections
    /// nobody does).
    func holdsPath(_ path: TransportPath) -> Bool {
        lock.withLock { viewerIDByPath[path] != nil }
    }

    /// What the media socket did since start (GET /api/status).
    var mediaSocketCounters: MediaSocketCounters {
        lock.withLock { socket?.counters ?? MediaSocketCounters() }
    }

    var viewerCount: Int { lock.withLock { viewers.count } }

    /// Video frames packetized for the viewers since start.
    var videoFramesPacketized: Int { lock.withLock { framesPacketized } }

    func update(settings: HubSettings) {
        lock.withLock {
            self.settings = settings
            keyframes.minimumInterval = settings.keyframeRequestInterval
            reducedKeyframes.minimumInterval = settings.keyframeRequestInterval
            bitratePolicy.floorShare = settings.bitrateFloorShare
            for viewer in viewers.values { viewer.session.videoSourceFollowsEstimate = settings.videoFollowsEstimate }
            if bitratePolicy.configuredKbps != settings.videoBitrateKbps {
                applyBitrateCap(bitratePolicy.configure(kbps: settings.videoBitrateKbps), reason: "the configured bitrate changed")
            }
        }
    }

    // MARK: - WHEP

    /// POST /whep: negotiate the offer and start a session (RFC 9725 §4.2). The offer is parsed and
    /// the session made outside the lock; admission is checked before and again when it is added.
    /// `client`: the IP the POST came from; checks are answered from it and the offer's candidates only.
    func createSession(offer text: String, credential: ViewerCredential = .none,
                       from client: TransportAddress.IP? = nil) throws(WHEPError) -> (id: String, answer: String) {
        var settings: HubSettings = try locked { () throws(WHEPError) in
            try admit(client: client)
            if !srtpCryptoInstalled {
                srtpCryptoInstalled = true
                let replaced = SRTPCrypto.install(srtpCrypto)
                logger.info("SRTP crypto: \(srtpCrypto.rawValue): \(replaced ? SRTPCrypto.installedDescription : "libsrtp's own")")
            }
            return self.settings
        }
        // Whatever the STUN and TURN servers said by now: an answer never waits for them.
        lock.withLock {
            settings.serverReflexiveAddresses = serverReflexiveAddresses
            settings.relayedCandidate = relay?.relayedCandidate
            settings.iceTCPPort = iceTCPPort
        }
        // Talkback: only a viewer who may talk gets its sendrecv audio answered sendrecv.
        if settings.whoMayTalk == .owner, !credential.isOwnerSession { settings.hasSpeaker = false }
        var random = SystemRandomNumberGenerator()
        let made = try factory.makeSession(offer: text, settings: settings, client: client, now: MonotonicClock.now(),
                                           random: &random)
        let id = random.bytes(12).hexadecimal
        lock.lock()
        defer { lock.unlock() }
        try admit(client: client)
        viewers[id] = Viewer(id: id, session: made.session, localUfrag: made.localICE.ufrag, createdAt: MonotonicClock.now(),
                             credential: credential, client: client)
        viewerIDByUfrag[made.localICE.ufrag] = id
        logger.info("viewer \(id) joined (\(viewers.count) watching)")
        if settings.relayedCandidate != nil, let allowed = made.session.configuration.allowedRemoteIPs {
            // The viewer's checks to the relayed address get through only from IPs with a
            // permission (RFC 8656 §9). One is made when rtcam's first check straight to a public
            // address of the viewer has left (takeOutputs) and when rtcam checks through the relay;
            // the WHEP client's IP and its candidates' get one a little later in any case (a viewer
            // that offered only private addresses is checked through the relay never). Not at once:
            // a viewer that nominates the first pair that works (aiortc) would otherwise take the
            // relay before the direct checks, which need both sides' first packets to open the
            // routers, have had their chance.
            loop.scheduleTask(in: .nanoseconds(Self.relayPermissionDelay.nanosecondsClamped)) { [self] in
                lock.withLock {
                    guard let viewer = viewers[id], viewer.session.remotePath?.base != .host else { return }
                    for ip in allowed { permitThroughRelay(ip, for: id) }
                }
            }
        }
        resolveMulticastDNS(made.multicastDNSCandidates, of: id)
        if viewers.count == 1 { encoders.setViewersPresent(true) }
        takeOutputs(of: id)
        return (id, made.answer)
    }

    /// `lock.withLock` for a body with a typed error (NIOLock's rethrows would widen it to any Error).
    private func locked<Result>(_ body: () throws(WHEPError) -> Result) throws(WHEPError) -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    private var admission: ViewerAdmission {
        ViewerAdmission(maximumViewers: settings.maximumViewers, pendingQuota: settings.pendingSessionQuota,
                        pendingPerAddress: settings.pendingSessionsPerAddress)
    }

    private func admit(client: TransportAddress.IP?) throws(WHEPError) {
        var connected = 0, pending = 0, pendingFromClient = 0
        let clientHost = client?.hostLimitKey
        for viewer in viewers.values {
            if viewer.session.state == .connected {
                connected += 1
            } else {
                pending += 1
                if let clientHost, viewer.client?.hostLimitKey == clientHost { pendingFromClient += 1 }
            }
        }
        switch admission.decide(connected: connected, pending: pending, pendingFromAddress: client == nil ? nil : pendingFromClient,
                                stopping: stopping) {
        case .admit: return
        case let .full(limit): throw .viewerLimitReached(limit: limit)
        case let .tooManyPending(limit): throw .tooManyPending(limit: limit)
        case .stopping: throw .stopping
        }
    }

    /// The ETag of a session (RFC 9725 §4.3.1): it names the ICE session, so it changes on restart.
    func entityTag(of id: String) -> String? {
        lock.withLock { entityTagLocked(of: id) }
    }

    private func entityTagLocked(of id: String) -> String? {
        viewers[id].map { "\"\($0.localUfrag)\"" }
    }

    /// PATCH /whep/{id}: trickle (checked by a full agent; a lite one learns addresses from checks) or
    /// an ICE restart when the fragment carries new credentials (RFC 8840 §4.4, RFC 9725 §4.3.2).
    func patchSession(id: String, fragment text: String, ifMatch: String?) throws(WHEPError) -> WHEPPatchResult {
        let remote: ICECredentials
        let fragment: TrickleICEFragment
        do {
            fragment = try TrickleICEFragment(parsing: text)
            guard let credentials = try fragment.restartCredentials() else {
                return try locked { () throws(WHEPError) in
                    guard let viewer = viewers[id] else { throw .unknownSession }
                    // Full ICE checks the trickled candidates (RFC 8838); lite learns from checks.
                    viewer.session.addRemoteCandidates(fragment.candidates, endOfCandidates: fragment.endOfCandidates,
                                                       now: MonotonicClock.now())
                    takeOutputs(of: id)
                    if settings.iceMode == .full {
                        resolveMulticastDNS(WHEPSessionFactory.multicastDNSCandidates(in: fragment.candidates), of: id)
                    }
                    return .trickled
                }
            }
            guard let valid = ICECredentials(validatingUfrag: credentials.ufrag, password: credentials.password) else {
                throw WHEPError.malformedOffer("a=ice-ufrag must be 4-256 and a=ice-pwd 22-256 ICE characters (RFC 8839 §5.4)")
            }
            remote = valid
        } catch let error as WHEPError {
            throw error
        } catch {
            throw .malformedOffer("an ICE restart needs both a=ice-ufrag and a=ice-pwd (\(error))")
        }
        var random = SystemRandomNumberGenerator()
        let local = ICECredentials.random(using: &random)
        lock.lock()
        defer { lock.unlock() }
        guard let viewer = viewers[id] else { throw .unknownSession }
        if let ifMatch, ifMatch != "*", ifMatch != entityTagLocked(of: id) { throw .preconditionFailed }
        viewer.session.restartICE(local: local, remote: remote, now: MonotonicClock.now())
        // A restart fragment may carry the new generation's candidates already (RFC 8840 §4.4).
        viewer.session.addRemoteCandidates(fragment.candidates, endOfCandidates: fragment.endOfCandidates,
                                           now: MonotonicClock.now())
        viewerIDByUfrag[viewer.localUfrag] = nil
        viewerIDByUfrag[local.ufrag] = id
        viewers[id]?.localUfrag = local.ufrag
        logger.info("viewer \(id): ICE restart")
        takeOutputs(of: id)
        return .restarted(fragment: "a=ice-ufrag:\(local.ufrag)\r\na=ice-pwd:\(local.password)\r\n",
                          entityTag: "\"\(local.ufrag)\"")
    }

    /// DELETE /whep/{id}: ends the session at once.
    func deleteSession(id: String) -> Bool {
        lock.withLock {
            guard let viewer = viewers[id] else { return false }
            viewer.session.close(now: MonotonicClock.now(), media: packetizer)
            takeOutputs(of: viewer.id)
            removeViewer(id: id, reason: "ended by the viewer (DELETE)")
            return true
        }
    }

    func sessionExists(id: String) -> Bool { lock.withLock { viewers[id] != nil } }

    /// Ends at once (BYE, close_notify) every session whose credential `shouldEnd` picks: protection
    /// turned on, a password change, a logout, a revoked token. `shouldEnd` runs under the hub's lock:
    /// it must not block or call back into the hub. Returns how many ended.
    @discardableResult
    func closeSessions(where shouldEnd: (ViewerCredential) -> Bool, reason: String) -> Int {
        lock.withLock {
            let now = MonotonicClock.now()
            let doomed = viewers.values.filter { shouldEnd($0.credential) }.map(\.id)
            for id in doomed {
                viewers[id]?.session.close(now: now, media: packetizer)
                takeOutputs(of: id)
                removeViewer(id: id, reason: reason)
            }
            return doomed.count
        }
    }

    /// Closes every session (SIGTERM): BYE and close_notify go out before the socket closes.
    func closeAll() {
        lock.withLock {
            stopping = true
            let now = MonotonicClock.now()
            for id in Array(viewers.keys) {
                viewers[id]?.session.close(now: now, media: packetizer)
                takeOutputs(of: id)
                removeViewer(id: id, reason: "daemon stopping")
            }
            timer?.cancel()
        }
    }

    /// Stops sending (shutdown, after `closeAll`); the socket is closed by its owner. The TURN
    /// allocation is given back first (a Refresh with lifetime 0, not waited for).
    func detachSocket() {
        lock.withLock {
            if var old = relay {
                performTURN(old.client.release(now: MonotonicClock.now()))
                relay = nil
                closeRelayStream(old.stream)
            }
            stopping = true
            socket = nil
            iceTCP = nil
            serviceTimer?.cancel()
        }
    }

    // MARK: - Network input (on the event loop)

    func receive(_ datagram: [UInt8], from address: TransportAddress) {
        lock.withLock {
            receiveLocked(datagram, from: address)
        }
    }

    private func receiveLocked(_ datagram: [UInt8], from address: TransportAddress) {
        if let server = relay?.configuration.server, address == server, relay?.stream == nil,
           relay?.client.isFromServer(datagram) == true {
            // The TURN server: responses, and peers' data in Data indications or ChannelData.
            let actions = relay!.client.receive(datagram, now: MonotonicClock.now())
            performTURN(actions)
            armServiceTimer()
            return
        }
        let isSTUN = DatagramKind(classifying: datagram) == .stun
        if isSTUN, var client = stunClient, client.isResponse(datagram) {
            let actions = client.receive(datagram, from: address, now: MonotonicClock.now())
            stunClient = client
            performSTUN(actions)
            armServiceTimer()
            return
        }
        if !isSTUN, var resolver = multicastDNS, resolver.isResponse(datagram, from: address) {
            let actions = resolver.receive(datagram, from: address)
            multicastDNS = resolver
            performMulticastDNS(actions)
            armServiceTimer()
            return
        }
        demultiplex(datagram, on: .host(address))
    }

    /// A peer's datagram, straight to the socket or unwrapped from the relay, to its session.
    private func demultiplex(_ datagram: [UInt8], on path: TransportPath) {
        // A Binding request names its session by our ufrag; its path is taken for the session only
        // once the session's ICE agent found the check valid (.addressVerified), so a spoofed request
        // cannot reroute a viewer's DTLS and RTCP. A Binding response (to a full agent's check) names
        // it by its transaction ID. Everything else goes by path.
        let isSTUN = DatagramKind(classifying: datagram) == .stun
        let id: String?
        if isSTUN, let ufrag = ICELiteAgent.localUfrag(inBindingRequest: datagram) {
            id = viewerIDByUfrag[ufrag]
        } else if isSTUN, let session = outstandingChecks.session(answeredBy: datagram) {
            id = session
        } else {
            id = viewerIDByPath[path]
        }
        guard let id, let viewer = viewers[id] else { return }
        viewer.session.handle(.receive(datagram, on: path, now: MonotonicClock.now()), media: packetizer)
        takeOutputs(of: id)
    }

    // MARK: - Server-reflexive address (--stun)

    /// Starts asking `servers` (RFC 8489 Binding from the media socket, after `attach(socket:)`):
    /// at once, then every minute, sooner after a failure. Other servers than before (the settings
    /// changed) start afresh; none stops asking.
    func startServerReflexiveDiscovery(servers: [TransportAddress]) {
        lock.withLock {
            guard stunClient?.serverAddresses != servers else { return }
            guard !servers.isEmpty else {
                stunClient = nil
                serverReflexiveAddresses = []
                return
            }
            stunClient = STUNBindingClient(servers: servers, now: MonotonicClock.now(), random: SystemRandomNumberGenerator())
            serviceTimerFired()
        }
    }

    // MARK: - Relayed address (--turn)

    /// Keeps an allocation on `server` (RFC 8656; after `attach(socket:)`): asked for at once,
    /// refreshed, asked for again with a backoff when it fails or is lost. Another server or other
    /// credentials than before give the old allocation back first; nil gives it back.
    /// Over TCP or TLS (`?transport=tcp`, `turns:`) the hub connects to the server first;
    /// `tlsContext` holds the CAs a `turns:` server's certificate must chain to (nil: `tlsProblem`
    /// says why there are none, shown in the log and /api/status).
    func configureRelay(_ configuration: RelayServerConfiguration?, tlsContext: TLSClientContext? = nil,
                        tlsProblem: String? = nil) {
        lock.withLock {
            guard relay?.configuration != configuration else { return }
            if var old = relay {
                performTURN(old.client.release(now: MonotonicClock.now()))
                relay = nil
                closeRelayStream(old.stream)
                logger.info("TURN: gave back the allocation on \(old.configuration.spelled)")
            }
            guard let configuration, !stopping else { return }
            relay = MediaRelay(configuration: configuration, tlsContext: tlsContext, tlsProblem: tlsProblem,
                               now: MonotonicClock.now())
            logger.info("TURN: asking \(configuration.spelled) (\(configuration.server) over \(configuration.transport.rawValue.uppercased())) for a relayed address")
            if relay?.stream != nil {
                connectRelayStream()
            } else {
                serviceTimerFired()
            }
        }
    }

    /// The relay as /api/status shows it: the server, whether an allocation is live and its address.
    var relayStatus: RelayStatus? {
        lock.withLock {
            relay.map {
                RelayStatus(server: $0.configuration.spelled, transport: $0.configuration.transport.rawValue,
                            relayed: $0.client.relayedAddress, mapped: $0.client.mappedAddress,
                            permissions: $0.client.permissionCount, connection: $0.stream?.phase.rawValue,
                            error: $0.stream?.problem, connections: $0.stream?.connectionsMade,
                            bytesDropped: $0.stream?.bytesDropped)
            }
        }
    }

    struct RelayStatus {
        var server: String
        /// "udp", "tcp" or "tls": how rtcam reaches the server.
        var transport: String
        var relayed: TransportAddress?
        var mapped: TransportAddress?
        var permissions: Int
        /// Over TCP and TLS: connecting, handshaking, ready or waiting (to connect again).
        var connection: String?
        /// Over TCP and TLS: why the last connection or allocation failed (e.g. an untrusted certificate).
        var error: String?
        var connections: Int?
        /// Over TCP and TLS: bytes not sent because the connection's queue was full.
        var bytesDropped: Int?
    }

    private func performTURN(_ actions: [TURNClient.Action]) {
        guard let server = relay?.configuration.server else { return }
        for action in actions {
            switch action {
            case let .send(bytes):
                if let stream = relay?.stream {
                    if stream.enqueue(bytes) { scheduleRelayFlush(stream) }
                } else {
                    sendOne(bytes, to: server)
                }
            case let .allocated(relayed, mapped, lifetime):
                relay?.stream?.failuresInARow = 0
                relay?.stream?.problem = nil
                logger.info("TURN: relayed address \(relayed) (the server sees rtcam at \(mapped.map(\.description) ?? "?"), \(lifetime))")
            case let .allocationFailed(failure):
                relay?.stream?.problem = "no allocation: \(failure)"
                logger.warning("TURN: no allocation from \(relay?.configuration.spelled ?? "?"): \(failure); asking again later")
                relay?.renewCredentialsIfTimeLimited()
            case let .allocationLost(failure):
                logger.warning("TURN: the allocation was lost (\(failure)); asking for a new one")
                relay?.renewCredentialsIfTimeLimited()
            case let .permissionFailed(ip, failure):
                logger.debug("TURN: no permission for \(ip): \(failure)")
            case let .channelBound(number, peer):
                logger.debug("TURN: channel \(number) bound to \(peer)")
            case let .channelFailed(number, peer, failure):
                logger.debug("TURN: channel \(number) to \(peer) not bound: \(failure)")
            case let .received(payload, peer):
                // A peer's datagram to the relayed address: demultiplexed like one to the socket.
                demultiplex(payload, on: .relay(peer))
            case .released:
                logger.debug("TURN: allocation released")
            }
        }
    }

    /// A permission for `ip` on behalf of viewer `id` (the relay forwards nothing from other IPs).
    private func permitThroughRelay(_ ip: TransportAddress.IP, for id: String) {
        guard relay != nil else { return }
        // Called for every relayed send: a permission already asked for costs no timer.
        let actions = relay!.permit(ip, for: id, now: MonotonicClock.now())
        guard !actions.isEmpty else { return }
        performTURN(actions)
        armServiceTimer()
    }

    /// Datagrams of a session on a relay path: each wrapped for the TURN server (ChannelData once
    /// the path's channel is bound, a Send indication before), with the permission asked for first.
    private func sendThroughRelay(_ batch: DatagramBatch, to peer: TransportAddress, of id: String, through socket: MediaSocket) {
        guard relay != nil else { return }
        permitThroughRelay(peer.ip, for: id)
        guard let server = relay?.configuration.server else { return }
        if let stream = relay?.stream {
            // Over TCP or TLS: ChannelData padded to 4 bytes (RFC 8656 §12.5), dropped when the
            // connection is not up or its queue is full.
            var queued = false
            for index in 0 ..< batch.count {
                if let wrapped = relay!.client.wrap(Array(batch[index]), to: peer), stream.enqueue(wrapped) { queued = true }
            }
            if queued { scheduleRelayFlush(stream) }
            return
        }
        relayBatch.removeAll()
        for index in 0 ..< batch.count {
            if let wrapped = relay!.client.wrap(Array(batch[index]), to: peer) { relayBatch.append(wrapped) }
        }
        socket.send(relayBatch, to: server)
    }

    // MARK: - The connection to a TURN server over TCP or TLS (under the lock unless said)

    /// Connects to the server (a new generation); the TURN client is driven once it is up.
    private func connectRelayStream() {
        guard let relay, let stream = relay.stream, !stopping else { return }
        stream.generation += 1
        stream.reset()
        stream.phase = .connecting
        let generation = stream.generation
        let server = relay.configuration.server
        guard let address = try? SocketAddress(ipAddress: server.ip.description, port: Int(server.port)) else { return }
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(10))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TURNStreamHandler(generation: generation, hub: self))
                }
            }
            .connect(to: address)
            .whenComplete { [self] result in
                // Later on the loop: a connect that fails at once completes here, under the lock.
                loop.execute { [self] in
                    switch result {
                    case let .success(channel):
                        lock.withLock { relayStreamConnected(channel, generation: generation) }
                    case let .failure(error):
                        relayStreamClosed(generation: generation, reason: "cannot connect: \(error)")
                    }
                }
            }
    }

    private func relayStreamConnected(_ channel: Channel, generation: Int) {
        guard let relay, let stream = relay.stream, stream.generation == generation, !stopping else {
            channel.close(promise: nil)
            return
        }
        stream.channel = channel
        stream.connectionsMade += 1
        guard relay.configuration.transport == .tls else { return relayStreamReady(stream) }
        guard let context = stream.tlsContext else {
            stream.problem = stream.problem ?? "no trusted CA certificates"
            channel.close(promise: nil)
            return
        }
        do {
            let tls = try TLSConnection(.client(context, serverName: relay.configuration.serverName))
            stream.tls = tls
            stream.phase = .handshaking
            stream.queueCiphertext(tls.takeTransmit())
            scheduleRelayFlush(stream)
        } catch {
            stream.problem = "TLS: \(error)"
            channel.close(promise: nil)
        }
    }

    private func relayStreamReady(_ stream: TURNStreamLink) {
        stream.phase = .ready
        logger.info("TURN: connected to \(relay?.configuration.spelled ?? "?") over \(stream.transport.rawValue.uppercased())")
        guard relay != nil else { return }
        performTURN(relay!.restartClient(now: MonotonicClock.now()))
        armServiceTimer()
    }

    /// Bytes the connection read (on the event loop).
    func relayStreamRead(_ bytes: [UInt8], generation: Int) {
        lock.withLock {
            guard let stream = relay?.stream, stream.generation == generation, stream.channel != nil else { return }
            var plaintext = bytes
            if let tls = stream.tls {
                tls.receive(bytes)
                for event in tls.takeEvents() {
                    switch event {
                    case let .established(version, suite):
                        logger.info("TURN: TLS with \(relay?.configuration.serverName ?? "?"): \(version) \(suite)")
                    case .closed:
                        break
                    case let .failed(failure):
                        stream.problem = "TLS: \(failure)"
                        logger.error("TURN: TLS with \(relay?.configuration.spelled ?? "?") failed: \(failure)")
                    }
                }
                let transmit = tls.takeTransmit()
                if !transmit.isEmpty {
                    stream.queueCiphertext(transmit)
                    scheduleRelayFlush(stream)
                }
                if tls.isFinished {
                    stream.channel?.close(promise: nil)
                    return
                }
                if stream.phase == .handshaking, tls.isEstablished { relayStreamReady(stream) }
                plaintext = tls.takePlaintext()
            }
            guard stream.phase == .ready, !plaintext.isEmpty else { return }
            let messages = stream.framer.append(plaintext)
            if stream.framer.isBroken {
                stream.problem = "the server sent something that is not STUN or ChannelData"
                stream.channel?.close(promise: nil)
            }
            let now = MonotonicClock.now()
            for message in messages where relay != nil {
                performTURN(relay!.client.receive(message, now: now))
            }
            armServiceTimer()
        }
    }

    /// The connection closed or could not be made (on the event loop, without the lock): the
    /// allocation went with it; a new connection after the backoff.
    func relayStreamClosed(generation: Int, reason: String) {
        lock.withLock {
            guard let stream = relay?.stream, stream.generation == generation, stream.phase != .waiting else { return }
            stream.generation += 1   // this connection's late reads and writes are ignored
            stream.channel?.close(promise: nil)
            stream.reset()
            stream.phase = .waiting
            stream.failuresInARow += 1
            if stream.problem == nil || reason.hasPrefix("cannot connect") { stream.problem = reason }
            let delay = stream.reconnectDelay
            logger.warning("TURN: connection to \(relay?.configuration.spelled ?? "?") lost (\(stream.problem ?? reason)); connecting again in \(delay)")
            // Viewers on the relay lose it (the allocation goes with the connection); answers offer
            // no relayed address until the next connection's allocation is made.
            guard relay != nil else { return }
            relay!.client = TURNClient(server: relay!.configuration.server, transport: .tcp,
                                       credentials: TURNCredentials(username: "", password: ""),
                                       now: MonotonicClock.now(), random: SystemRandomNumberGenerator())
            let waited = generation + 1
            _ = loop.scheduleTask(in: .nanoseconds(delay.nanosecondsClamped)) { [self] in
                lock.withLock {
                    guard let stream = relay?.stream, stream.generation == waited, stream.phase == .waiting else { return }
                    connectRelayStream()
                }
            }
        }
    }

    /// Hands the queued bytes to the channel on the event loop, in order (only the loop writes).
    private func scheduleRelayFlush(_ stream: TURNStreamLink) {
        guard !stream.flushScheduled, stream.channel != nil else { return }
        stream.flushScheduled = true
        let generation = stream.generation
        loop.execute { [self] in flushRelayStream(generation: generation) }
    }

    private func flushRelayStream(generation: Int) {
        let taken = lock.withLock { () -> (Channel, [UInt8], TURNStreamLink)? in
            guard let stream = relay?.stream, stream.generation == generation, let channel = stream.channel else { return nil }
            stream.flushScheduled = false
            defer { stream.outbound = [] }
            return (channel, stream.outbound, stream)
        }
        guard let (channel, bytes, stream) = taken, !bytes.isEmpty else { return }
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenComplete { [self] _ in
            lock.withLock { if stream.generation == generation { stream.queuedBytes -= bytes.count } }
        }
        channel.writeAndFlush(channel.allocator.buffer(bytes: bytes), promise: written)
    }

    /// The relay was given up: what is queued (the Refresh with lifetime 0) goes, then the connection closes.
    private func closeRelayStream(_ stream: TURNStreamLink?) {
        guard let stream, let channel = stream.channel else { return }
        let bytes = stream.outbound
        stream.generation += 1
        stream.reset()
        loop.execute {
            if bytes.isEmpty { return channel.close(promise: nil) }
            channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    private func serviceTimerFired() {
        guard !stopping else { return }
        let now = MonotonicClock.now()
        if let due = relay?.nextDeadline, due <= now {
            performTURN(relay!.client.handleTimeout(now: now))
        }
        if var client = stunClient, let due = client.nextDeadline, due <= now {
            let actions = client.handleTimeout(now: now)
            stunClient = client
            performSTUN(actions)
        }
        if var resolver = multicastDNS, let due = resolver.nextDeadline, due <= now {
            let actions = resolver.handleTimeout(now: now)
            multicastDNS = resolver
            performMulticastDNS(actions)
        }
        armServiceTimer()
    }

    private func performSTUN(_ actions: [STUNBindingClient.Action]) {
        for action in actions {
            switch action {
            case let .send(bytes, to):
                sendOne(bytes, to: to)
            case let .addressesChanged(addresses):
                serverReflexiveAddresses = addresses
                logger.info("server-reflexive address: \(addresses.isEmpty ? "none" : addresses.map(\.description).joined(separator: ", "))")
            }
        }
    }

    /// One datagram of the hub's own (STUN, mDNS) from the media socket.
    private func sendOne(_ bytes: [UInt8], to address: TransportAddress) {
        var batch = DatagramBatch()
        batch.append(bytes)
        socket?.send(batch, to: address)
    }

    private func armServiceTimer() {
        serviceTimer?.cancel()
        guard let deadline = earliest(stunClient?.nextDeadline, multicastDNS?.nextDeadline, relay?.nextDeadline),
              !stopping else { return }
        let delay = deadline - MonotonicClock.now()
        serviceTimer = loop.scheduleTask(in: .nanoseconds(max(0, delay.nanosecondsClamped))) { [self] in
            lock.withLock { serviceTimerFired() }
        }
    }

    // MARK: - mDNS names of viewers' candidates

    /// Most candidates waiting for names at once (a peer cannot make the hub keep more).
    static let maximumWaitingForNames = 64

    /// Asks for the `.local` names of these candidates of viewer `id`; each resolved one is then
    /// given to the viewer's session with the address in place of the name.
    private func resolveMulticastDNS(_ candidates: [String], of id: String) {
        guard !candidates.isEmpty, socket != nil else { return }
        if multicastDNS == nil {
            multicastDNS = MulticastDNSResolver(group: settings.multicastDNSGroup, random: SystemRandomNumberGenerator())
        }
        var actions: [MulticastDNSResolver.Action] = []
        for candidate in candidates {
            guard waitingForName.values.reduce(0, { $0 + $1.count }) < Self.maximumWaitingForNames,
                  case let .multicastDNSName(name, _, _, _, _) = ICECandidate.parse(sdpValue: candidate) else { continue }
            waitingForName[name.lowercased(), default: []].append((id, candidate))
            actions += multicastDNS!.resolve(name, now: MonotonicClock.now())
        }
        performMulticastDNS(actions)
        armServiceTimer()
    }

    private func performMulticastDNS(_ actions: [MulticastDNSResolver.Action]) {
        for action in actions {
            switch action {
            case let .send(bytes, to):
                sendOne(bytes, to: to)
            case let .resolved(name, ip):
                for (id, candidate) in waitingForName.removeValue(forKey: name) ?? [] {
                    guard let viewer = viewers[id] else { continue }
                    let fields = candidate.split(separator: " ", omittingEmptySubsequences: true)
                    let resolved = fields.enumerated().map { index, field in
                        index == 4 && field.lowercased() == name ? "\(ip)" : String(field)
                    }.joined(separator: " ")
                    logger.debug("viewer \(id): \(name) is \(ip)")
                    viewer.session.addRemoteCandidates([resolved], endOfCandidates: false, now: MonotonicClock.now())
                    takeOutputs(of: id)
                }
            case let .failed(name):
                waitingForName[name] = nil
                logger.debug("mDNS: no answer for \(name)")
            }
        }
    }

    // MARK: - Media input (on the encoders' threads)

    func beginGeneration(_ generation: Int) {
        lock.withLock { mediaGeneration = generation }
    }

    /// Packetizes an encoded frame and sends it to every connected viewer, on the caller's thread.
    func deliver(_ frame: EncodedVideoFrame, generation: Int) {
        lock.withLock {
            guard generation == mediaGeneration, !viewers.isEmpty, !stopping else { return }
            // The reduced encoding's last frames after it was stopped go nowhere.
            guard frame.layer == .full || reducedLayer.isRunning else { return }
            if frame.layer == .reduced, !reducedLayerArrived {
                // Its first frame (an IDR): the slow viewers move to it now, and switch at this frame.
                reducedLayerArrived = true
                assignLayers()
            }
            let packets = packetizer.packetizeVideo(accessUnit: frame.accessUnit, isKeyframe: frame.isKeyframe,
                                                captureTime: frame.captureTime, layer: frame.layer)
            if frame.layer == .full { framesPacketized += 1 }
            broadcast(packets)
            // A viewer still waiting for a keyframe of this layer (its first, or one to switch at).
            let waiting = viewers.values.contains {
                $0.session.state == .connected && $0.session.wantedVideoLayer == frame.layer
                    && $0.session.waitsForKeyframeOfWantedLayer
            }
            let now = MonotonicClock.now()
            switch frame.layer {
            case .full:
                perform(keyframes.frameSent(isKeyframe: frame.isKeyframe, viewerStillWaitsForKeyframe: waiting, now: now),
                        layer: .full)
            case .reduced:
                perform(reducedKeyframes.frameSent(isKeyframe: frame.isKeyframe, viewerStillWaitsForKeyframe: waiting, now: now),
                        layer: .reduced)
            }
        }
    }

    func deliver(_ frame: EncodedAudioFrame, generation: Int) {
        lock.withLock {
            guard generation == mediaGeneration, !viewers.isEmpty, !stopping else { return }
            broadcast([packetizer.packetizeAudio(opusFrame: frame.packet, captureTime: frame.captureTime)])
        }
    }

    private func broadcast(_ packets: [OutgoingPacket]) {
        guard let socket else { return }
        let now = MonotonicClock.now()
        for viewer in viewers.values where viewer.session.state == .connected {
            mediaBatch.removeAll()
            guard let path = viewer.session.protectMedia(packets, now: now, into: &mediaBatch) else { continue }
            if !mediaBatch.isEmpty { send(mediaBatch, on: path, of: viewer.id, through: socket) }
            // What the pacer holds back leaves at the session's next deadline.
            if let arm = timers.setDeadline(viewer.session.nextDeadline, of: viewer.id) { armTimer(for: arm) }
        }
    }

    // MARK: - Keyframes

    /// A keyframe for every viewer soon (settings changed); merged with the viewers' own requests.
    func requestKeyframe() {
        lock.withLock {
            requestKeyframe(of: .full)
            if reducedLayer.isRunning { requestKeyframe(of: .reduced) }
        }
    }

    /// A keyframe of one layer, merged per layer (each layer's encoder has its own).
    private func requestKeyframe(of layer: VideoLayer) {
        let now = MonotonicClock.now()
        switch layer {
        case .full: perform(keyframes.request(now: now), layer: .full)
        case .reduced: perform(reducedKeyframes.request(now: now), layer: .reduced)
        }
    }

    private func perform(_ action: KeyframeRequestPolicy.Action, layer: VideoLayer) {
        switch action {
        case .none:
            break
        case .askEncoder:
            switch layer {
            case .full: encoders.requestKeyframe()
            case .reduced: encoders.requestReducedKeyframe()
            }
        case let .retry(at):
            loop.scheduleTask(in: .nanoseconds(max(0, (at - MonotonicClock.now()).nanosecondsClamped))) { [self] in
                lock.withLock {
                    let now = MonotonicClock.now()
                    switch layer {
                    case .full: perform(keyframes.retryDue(now: now), layer: .full)
                    case .reduced: perform(reducedKeyframes.retryDue(now: now), layer: .reduced)
                    }
                }
            }
        }
    }

    // MARK: - Session outputs and timers

    /// Takes a session's outputs after an input: sends its datagrams in order (a run of datagrams to
    /// one address in one call), acts on its events, and files its next deadline with the timer.
    func takeOutputs(of id: String) {
        guard let viewer = viewers[id] else { return }
        outputs.removeAll(keepingCapacity: true)
        viewer.session.drainOutputs(into: &outputs)
        var index = 0
        while index < outputs.count {
            switch outputs[index] {
            case let .transmit(bytes, path):
                if path.base == .host, relay != nil, bytes.count >= 2, bytes[0] == 0x00, bytes[1] == 0x01,
                   !path.remote.ip.isPrivate {
                    // rtcam's first check straight to a public address has left (it opens the
                    // camera's router toward it): the relay may now let that address's checks in.
                    permitThroughRelay(path.remote.ip, for: id)
                }
                controlBatch.removeAll()
                controlBatch.append(bytes)
                outstandingChecks.recordRequest(bytes, of: id)
                index += 1
                while index < outputs.count, case let .transmit(next, nextPath) = outputs[index], nextPath == path {
                    controlBatch.append(next)
                    outstandingChecks.recordRequest(next, of: id)
                    index += 1
                }
                if let socket { send(controlBatch, on: path, of: id, through: socket) }
            case let .event(event):
                handle(event, of: id)
                index += 1
            case let .timeout(deadline):
                // An event above may have removed the viewer; its deadline goes with it.
                if viewers[id] != nil, let arm = timers.setDeadline(deadline, of: id) { armTimer(for: arm) }
                index += 1
            }
        }
        controlBatch.removeAll()
        // Acting on an event may have made more (a data channel message answered): take those too.
        if let viewer = viewers[id], viewer.session.hasPendingOutputs { takeOutputs(of: id) }
    }

    private func handle(_ event: PeerSessionEvent, of id: String) {
        switch event {
        case let .iceSelected(path):
            logger.debug("viewer \(id): ICE selected \(path)")
            if path.base == .relay, relay != nil {
                // Media goes this way now: ChannelData (4 bytes a packet) instead of Send
                // indications (36 and more) once the channel is bound (RFC 8656 §12).
                permitThroughRelay(path.remote.ip, for: id)
                performTURN(relay!.client.bindChannel(to: path.remote, now: MonotonicClock.now()))
                armServiceTimer()
            }
        case let .addressVerified(path):
            // A session removed by an earlier event of the same batch maps nothing any more.
            guard viewers[id] != nil else { break }
            // Another session's path before (a NAT reusing a port): it is this one's now.
            if let previous = viewerIDByPath[path], previous != id { viewers[previous]?.paths.remove(path) }
            viewerIDByPath[path] = id
            viewers[id]?.paths.insert(path)
        case let .addressForgotten(path):
            if viewerIDByPath[path] == id { viewerIDByPath[path] = nil }
            viewers[id]?.paths.remove(path)
        case let .connected(profile):
            let others = viewers.values.filter { $0.id != id && $0.session.state == .connected }.count
            guard admission.keepsConnected(connectedOthers: others) else {
                // Admitted on the pending quota, but the places filled while it connected.
                viewers[id]?.session.close(now: MonotonicClock.now(), media: packetizer)
                removeViewer(id: id, reason: "the camera already has \(settings.maximumViewers) viewers")
                return
            }
            logger.info("viewer \(id): connected (SRTP \(profile))")
            // A joining viewer gets a keyframe at once (of the full layer: it has no estimate yet).
            requestKeyframe(of: viewers[id]?.session.wantedVideoLayer ?? .full)
        case .keyframeRequested:
            // PLI, FIR or stale video: a keyframe of the layer the viewer is on or going to.
            requestKeyframe(of: viewers[id]?.session.wantedVideoLayer ?? .full)
        case let .bitrateEstimate(bitsPerSecond):
            if logger.logLevel <= .debug, let diagnostics = viewers[id]?.session.bandwidthDiagnostics {
                logger.debug("viewer \(id): estimate \(bitsPerSecond / 1000) kb/s (delay-based \(diagnostics.delayBasedBitsPerSecond.map { "\($0 / 1000)" } ?? "-"), loss-based \(diagnostics.lossBasedBitsPerSecond.map { "\($0 / 1000)" } ?? "-"), acknowledged \(diagnostics.acknowledgedBitsPerSecond.map { "\($0 / 1000)" } ?? "-"), \(diagnostics.usage), \(diagnostics.rateControlState), loss \(diagnostics.lossFraction ?? 0) (inherent \(diagnostics.inherentLossFraction ?? 0))\(diagnostics.congested ? ", congested: pacing at the link's rate" : ""); pacer \(viewers[id].map { debugPacer($0.session) } ?? ""))")
            }
            updateBitrateCap()
        case let .audioReceived(packet):
            talkback?.receive(packet, from: id)
        case let .disconnected(reason), let .failed(reason):
            removeViewer(id: id, reason: reason)
        case .closed:
            removeViewer(id: id, reason: "closed by the viewer")
        case let .dataChannel(event):
            dataChannelEvent(event, of: id)
        }
    }

    /// The pacer's queue and rate, for the estimate's debug line.
    private func debugPacer(_ session: PeerSession) -> String {
        let queue = session.pacerQueue(now: MonotonicClock.now())
        let pacing = session.pacing
        return "\(queue.bytes) B, oldest \(queue.oldest.map { "\(Int($0.millisecondsDouble))" } ?? "-") ms, "
            + "\(pacing.bitsPerSecond / 1000) kb/s, link queue \(pacing.linkQueue.map { "\(Int($0.millisecondsDouble))" } ?? "-") ms"
            + ", video in \((pacing.videoInBitsPerSecond ?? 0) / 1000) kb/s"
            + (session.isInCongestionEpisode ? ", draining (surplus \(pacing.inflowSurplusBitsPerSecond / 1000) kb/s)" : "")
    }

    /// Media a viewer's pacer lets go now (its deadline came).
    private func sendPacedMedia(of id: String, session: PeerSession, now: MonotonicTime) {
        guard let socket, session.state == .connected else { return }
        mediaBatch.removeAll()
        guard let path = session.protectDueMedia(now: now, into: &mediaBatch), !mediaBatch.isEmpty else { return }
        send(mediaBatch, on: path, of: id, through: socket)
    }

    /// A session's datagrams on `path`: straight from the socket, or each wrapped for the TURN server.
    private func send(_ batch: DatagramBatch, on path: TransportPath, of id: String, through socket: MediaSocket) {
        switch path.base {
        case .host:
            socket.send(batch, to: path.remote)
        case .relay:
            sendThroughRelay(batch, to: path.remote, of: id, through: socket)
        case .tcp:
            iceTCP?.send(batch, to: path.remote)
        }
    }

    // MARK: - Bitrate (issue 24)

    /// A viewer's estimate moved, or a viewer came or went: the reduced encoding starts, follows its
    /// viewers or stops, viewers move between the layers, and the full encoder's cap follows the
    /// weakest viewer on it.
    private func updateBitrateCap() {
        let now = MonotonicClock.now()
        updateReducedLayer(now: now)
        let connected = viewers.values.map(\.session).filter { $0.state == .connected }
        let fullLayer = connected.filter { $0.wantedVideoLayer == .full }
        applyBitrateCap(bitratePolicy.update(estimates: fullLayer.compactMap(\.estimatedBitsPerSecond), now: now),
                        reason: "the weakest viewer's link")
        // PeerSession surfaces an episode's start and end with an estimate event. Each layer's
        // periodic IDR waits for its own viewers' links.
        let congested = (full: fullLayer.contains { $0.isInCongestionEpisode },
                         reduced: connected.contains { $0.wantedVideoLayer == .reduced && $0.isInCongestionEpisode })
        if congested != viewerLinksCongested {
            viewerLinksCongested = congested
            encoders.setViewerLinksCongested(full: congested.full, reduced: congested.reduced)
            logger.debug("viewers' links congested: full layer \(congested.full), reduced layer \(congested.reduced) (a congested layer's periodic IDR waits)")
        }
        // A raise waits for the policy's interval; the estimates may not move again to prompt it.
        if let due = bitratePolicy.deferredRaise, !bitrateRaiseScheduled {
            bitrateRaiseScheduled = true
            loop.scheduleTask(in: .nanoseconds(max(0, (due - now).nanosecondsClamped))) { [self] in
                lock.withLock {
                    bitrateRaiseScheduled = false
                    if !stopping { updateBitrateCap() }
                }
            }
        }
    }

    /// The reduced encoding (ReducedLayerPolicy) and which viewer is on which layer. A viewer to
    /// move gets a keyframe of its new layer asked for; it switches at that keyframe (PeerSession).
    private func updateReducedLayer(now: MonotonicTime) {
        var videoKbps: [String: Int] = [:]
        var connected = 0
        for viewer in viewers.values where viewer.session.state == .connected {
            connected += 1
            if let estimate = viewer.session.estimatedBitsPerSecond {
                videoKbps[viewer.id] = bitratePolicy.videoKbps(forEstimate: estimate)
            }
        }
        let ceiling = ReducedLayerPolicy<String>.ceilingKbps(configuredKbps: bitratePolicy.configuredKbps,
                                                             floorKbps: bitratePolicy.floorKbps)
        let changes = reducedLayer.update(videoKbps: videoKbps, connectedViewers: connected,
                                          floorKbps: bitratePolicy.floorKbps, ceilingKbps: ceiling, now: now)
        applyReducedLayer(changes)
        assignLayers()
        // The stop waits for its linger; nothing else may come to prompt it.
        if let due = reducedLayer.stopDue, !reducedLayerStopScheduled {
            reducedLayerStopScheduled = true
            loop.scheduleTask(in: .nanoseconds(max(0, (due - now).nanosecondsClamped) + 1_000_000)) { [self] in
                lock.withLock {
                    reducedLayerStopScheduled = false
                    if !stopping { updateBitrateCap() }
                }
            }
        }
    }

    /// Each connected viewer on the layer the policy says, once the reduced encoding's frames come.
    private func assignLayers() {
        for viewer in viewers.values where viewer.session.state == .connected {
            let wanted = reducedLayerArrived ? reducedLayer.layer(of: viewer.id) : .full
            guard viewer.session.wantedVideoLayer != wanted else { continue }
            viewer.session.wantedVideoLayer = wanted
            logger.info("viewer \(viewer.id): to the \(wanted.rawValue) video layer (estimate \((viewer.session.estimatedBitsPerSecond ?? 0) / 1000) kb/s, floor \(bitratePolicy.floorKbps) kb/s of video)")
            requestKeyframe(of: wanted)
        }
    }

    private func applyReducedLayer(_ changes: [ReducedLayerPolicy<String>.Change],
                                   stopReason: @autoclosure () -> String = "") {
        for change in changes {
            switch change {
            case let .start(kbps):
                logger.info("reduced video layer started at \(kbps) kb/s (a viewer's link is below the floor of \(bitratePolicy.floorKbps) kb/s)")
                encoders.setReducedLayer(kbps: kbps)
            case let .retarget(kbps):
                logger.debug("reduced video layer now \(kbps) kb/s")
                encoders.setReducedLayer(kbps: kbps)
            case .stop:
                let reason = stopReason()
                logger.info("reduced video layer stopped (\(reason.isEmpty ? "no viewer below the floor for \(reducedLayer.lingerAfterLastViewer)" : reason))")
                encoders.setReducedLayer(kbps: nil)
                packetizer.forgetReducedLayer()
                reducedLayerArrived = false
            }
        }
    }

    private func applyBitrateCap(_ change: Int??, reason: String) {
        guard let cap = change else { return }
        encoders.setBitrateCap(kbps: cap)
        if let cap {
            logger.info("video bitrate \(cap) kb/s (\(reason); configured \(bitratePolicy.configuredKbps) kb/s)")
        } else {
            logger.info("video bitrate back to the configured \(bitratePolicy.configuredKbps) kb/s")
        }
    }

    var bitrateControlStatus: BitrateControlStatus {
        lock.withLock {
            let below = viewers.values.filter {
                $0.session.estimatedBitsPerSecond.map(bitratePolicy.isBelowFloor(estimate:)) ?? false
            }.count
            return BitrateControlStatus(configuredKbps: bitratePolicy.configuredKbps, floorKbps: bitratePolicy.floorKbps,
                                        encoderTargetKbps: bitratePolicy.capKbps ?? bitratePolicy.configuredKbps,
                                        capped: bitratePolicy.capKbps != nil, viewersBelowFloor: below,
                                        reducedLayerKbps: reducedLayerArrived ? reducedLayer.runningKbps : nil)
        }
    }

    private func removeViewer(id: String, reason: String) {
        guard let viewer = viewers.removeValue(forKey: id) else { return }
        viewerIDByUfrag[viewer.localUfrag] = nil
        outstandingChecks.removeSession(id)
        for path in viewer.paths where viewerIDByPath[path] == id { viewerIDByPath[path] = nil }
        timers.remove(id)
        relay?.viewerLeft(id)
        talkback?.viewerLeft(id)
        dataChannelsViewerLeft(id)
        logger.info("viewer \(id) left: \(reason) (\(viewers.count) watching)")
        if viewers.isEmpty {
            // The batches keep the memory of the largest frame they held (a keyframe: up to a few
            // hundred kB); with nobody watching it goes back, like the encoders' (idle RSS).
            mediaBatch = DatagramBatch()
            controlBatch = DatagramBatch()
            relayBatch = DatagramBatch()
            outputs = []
            encoders.setViewersPresent(false)
            applyBitrateCap(bitratePolicy.reset(), reason: "nobody watches")
            applyReducedLayer(reducedLayer.reset(), stopReason: "nobody watches")
        } else {
            updateBitrateCap()
        }
    }

    private func armTimer(for deadline: MonotonicTime) {
        timer?.cancel()
        timerGeneration &+= 1
        let generation = timerGeneration
        let delay = deadline - MonotonicClock.now()
        timer = loop.scheduleTask(in: .nanoseconds(max(0, delay.nanosecondsClamped))) { [self] in
            lock.withLock { timerFired(generation: generation) }
        }
    }

    private func timerFired(generation: Int) {
        // Replaced (by an encoder's thread) after it began to fire: the replacement is scheduled.
        guard generation == timerGeneration, !stopping else { return }
        timer = nil
        let now = MonotonicClock.now()
        for id in timers.fire(now: now) {
            guard let session = viewers[id]?.session else { continue }
            session.handle(.timeout(now: now), media: packetizer)
            sendPacedMedia(of: id, session: session, now: now)
            takeOutputs(of: id)
        }
        if let next = timers.rearm() { armTimer(for: next) }
    }

    // MARK: - Status

    func viewerStatuses() -> [ViewerStatus] {
        lock.withLock {
            let now = MonotonicClock.now()
            return viewers.values.sorted { $0.createdAt < $1.createdAt }.map { viewer in
                let statistics = viewer.session.statistics
                return ViewerStatus(
                    id: viewer.id, remoteAddress: viewer.session.remotePath?.description,
                    state: "\(viewer.session.state)", connectedForSeconds: (now - viewer.createdAt).millisecondsDouble / 1000,
                    roundTripTimeMilliseconds: statistics.roundTripTime.map { $0.millisecondsDouble },
                    fractionLost: statistics.fractionLost,
                    packetsSent: statistics.videoPacketsSent + statistics.audioPacketsSent,
                    retransmittedPackets: statistics.retransmittedPackets,
                    retransmissionsRefused: statistics.retransmissionsRefused, keyframeRequests: statistics.keyframeRequests,
                    bytesSent: statistics.bytesSent, srtpProtectFailures: statistics.srtpProtectFailures,
                    srtcpFailures: statistics.srtcpFailures, rejectedDatagrams: statistics.rejectedDatagrams,
                    redundantRetransmissions: statistics.redundantRetransmissions,
                    redundantRetransmissionsWithheld: statistics.redundantRetransmissionsWithheld,
                    redundantRetransmissionsHeldForCongestion: statistics.redundantRetransmissionsHeldForCongestion,
                    retransmissionsInFlight: statistics.retransmissionsInFlight,
                    icePair: viewer.session.selectedICEPair,
                    estimateKbps: viewer.session.estimatedBitsPerSecond.map { $0 / 1000 },
                    belowFloor: viewer.session.estimatedBitsPerSecond.map(bitratePolicy.isBelowFloor(estimate:)) ?? false,
                    layer: viewer.session.videoLayer?.rawValue, layerSwitches: viewer.session.videoLayerSwitches,
                    pacerQueueBytes: viewer.session.pacerQueue(now: now).bytes,
                    pacerQueueMilliseconds: viewer.session.pacerQueue(now: now).oldest.map(\.millisecondsDouble),
                    probeClusters: statistics.probeClusters, pacedVideoPacketsDropped: statistics.pacedVideoPacketsDropped,
                    delayBasedKbps: viewer.session.bandwidthDiagnostics?.delayBasedBitsPerSecond.map { $0 / 1000 },
                    lossBasedKbps: viewer.session.bandwidthDiagnostics?.lossBasedBitsPerSecond.map { $0 / 1000 },
                    rembKbps: viewer.session.bandwidthDiagnostics?.rembBitsPerSecond.map { $0 / 1000 })
            }
        }
    }
}
