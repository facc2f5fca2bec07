import DTLS
import Dispatch
import ICE
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import RTCBase
import WebRTCSession

#if canImport(Glibc)
import Glibc
import SystemSupport
#endif

/// Everything the daemon is started with (the CLI fills it; the settings page changes parts later).
public struct DaemonConfiguration: Sendable {
    /// "::" (the default) listens on IPv6 and IPv4 alike (IPV6_V6ONLY off), or on 0.0.0.0 where the
    /// kernel has no IPv6.
    public var httpAddress = "::"
    public var httpPort = 8080
    /// HTTPS (TLS by mbedTLS) on its own port; nil: off (then the settings and the API are served on
    /// plain HTTP too).
    public var httpsPort: Int? = 8443
    /// The user's own certificate chain and key (PEM); nil: a self-signed one in the state directory.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// Names the camera answers to in `Host`, besides its host name, `<host name>.local`, `localhost`
    /// and literal IP addresses (DNS rebinding protection, RequestPolicy).
    public var hostNames: [String] = []
    public var mediaPort = 8189
    /// RTSP for NVRs (issue 21); nil: off.
    public var rtspPort: Int? = 8554
    public var stateDirectory = "/var/lib/rtcam"
    /// Addresses put in the SDP answer as host candidates; empty: every usable interface address.
    public var candidateAddresses: [String] = []
    /// Full ICE (checks both ways, through NATs) or ICE-lite (answers checks only; issue 19).
    public var iceMode = ICEMode.full
    /// ICE-TCP (RFC 6544, full ICE only): a TCP listener offered as a passive candidate, for viewers
    /// whose networks block UDP; on the media port's number unless `iceTCPPort` says otherwise.
    public var iceTCP = true
    public var iceTCPPort: Int?
    /// `--turn-ca`: the CA certificate(s) (PEM) a `turns:` server's certificate must chain to;
    /// nil: the system's CA bundle.
    public var turnCAPath: String?
    /// Explicit command-line settings: they win over the saved ones for this run.
    public var overrides = SettingsOverrides()

    public init() {}
}

/// Settings given on the command line. Unset ones come from config.json, else the defaults.
public struct SettingsOverrides: Sendable {
    public var video: VideoSourceSetting?
    public var audio: AudioSourceSetting?
    public var width: Int?
    public var height: Int?
    public var framesPerSecond: Int?
    public var bitrateKbps: Int?
    public var encoder: EncoderPreference?
    public var degradation: DegradationPreference?
    public var cameraFormat: CameraFormatPreference?
    public var intraRefresh: Bool?
    public var maximumViewers: Int?
    public var speaker: SpeakerSetting?
    public var echo: EchoHandling?
    /// `--stun` (all of them replace the saved list), `--turn`, `--turn-user`, `--turn-password`,
    /// `--turn-secret` (issue 19).
    public var stunServers: [String]?
    public var turnServer: String?
    public var turnUser: String?
    public var turnPassword: String?
    public var turnSecret: String?

    public init() {}

    public func applied(to settings: CameraSettings) -> CameraSettings {
        var result = settings
        if let video { result.media.video = video }
        if let audio { result.media.audio = audio }
        if let width { result.media.width = width }
        if let height { result.media.height = height }
        if let encoder { result.media.encoder = encoder }
        if let degradation { result.media.degradation = degradation }
        if let cameraFormat { result.media.cameraFormat = cameraFormat }
        if let intraRefresh { result.media.intraRefresh = intraRefresh }
        if let framesPerSecond { result.media.framesPerSecond = framesPerSecond }
        if let bitrateKbps { result.media.bitrateKbps = bitrateKbps }
        if let maximumViewers { result.maximumViewers = maximumViewers }
        if let speaker { result.talkback.speaker = speaker }
        if let echo { result.talkback.echo = echo }
        if let stunServers { result.traversal.stunServers = stunServers }
        if let turnServer { result.traversal.turnServer = turnServer }
        if let turnUser { result.traversal.turnUser = turnUser }
        if let turnPassword { result.traversal.turnPassword = turnPassword }
        if let turnSecret { result.traversal.turnSecret = turnSecret }
        return result
    }
}

public enum DaemonError: Error, CustomStringConvertible {
    case invalidCandidateAddress(String)
    case invalidSTUNServer(String)
    case invalidTURNServer(String)
    case stateDirectory(String)
    case certificate(String)

    public var description: String {
        switch self {
        case let .invalidCandidateAddress(text):
            if let ip = TransportAddress.IP(parsing: text), ip.isIPv6LinkLocal {
                return "--candidate-address \(text): an IPv6 link-local address needs an interface scope, which rtcam's one socket and a candidate line cannot carry; give a global or unique-local address"
            }
            return "not an IP address: \(text)"
        case let .invalidSTUNServer(text): return "--stun wants HOST:PORT: \(text)"
        case let .invalidTURNServer(reason): return reason
        case let .stateDirectory(reason): return "state directory: \(reason)"
        case let .certificate(reason): return "DTLS certificate: \(reason)"
        }
    }
}

/// The running daemon: one event loop for HTTP, received datagrams and session timers; encoders on
/// their own threads, which also send each frame to the viewers (StreamHub).
public final class CameraDaemon: @unchecked Sendable {
    private let configuration: DaemonConfiguration
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let termination: TerminationSignals
    private let startedAt = MonotonicClock.now()
    /// The HTTP listeners' admission and counters, once they run (/api/status).
    private let httpLimiter = NIOLockedValueBox<HTTPConnectionLimiter?>(nil)
    /// The ICE-TCP listener, once it runs (/api/status).
    private let iceTCPStatus = NIOLockedValueBox<ICETCPListener?>(nil)
    /// Set in `run` before the hub's settings are first made.
    private var talkback: TalkbackController?
    /// Set in `run` once made (the settings change the viewer page's STUN servers).
    private var router: CameraRouter?

    public init(configuration: DaemonConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        termination = TerminationSignals()   // before the first thread (see TerminationSignals)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    /// Serves until SIGTERM or SIGINT, then closes every session cleanly.
    public func run() throws {
        let loop = group.next()
        try StateFiles.ensureDirectory(configuration.stateDirectory)
        let unfinished = StateFiles.removeUnfinishedWrites(in: configuration.stateDirectory)
        if unfinished > 0 { logger.notice("removed \(unfinished) unfinished write(s) of a previous run from the state directory") }
        let certificate = try loadOrCreateCertificate()
        let candidates = try candidateAddresses()
        let store = ConfigStore(directory: configuration.stateDirectory, defaults: CameraSettings())
        if let problem = store.loadProblem { logger.warning("\(problem)") }
        let settings = configuration.overrides.applied(to: store.settings)
        let access = AccessControl(stateDirectory: configuration.stateDirectory, setupCodeCopyDirectory: "/boot/firmware")
        if let problem = access.loadProblem { logger.error("\(problem)") }
        if let setup = access.prepareSetupCode() {
            logger.notice("no settings password yet: choose one at /settings with the setup code \(setup.code)")
            for message in setup.messages { logger.notice("\(message)") }
        }
        let tokens = ViewingTokens(stateDirectory: configuration.stateDirectory)
        if let problem = tokens.loadProblem { logger.error("\(problem)") }

        // SRTP's AES and HMAC-SHA1 on the CPU's instructions (RTCAM_SRTP_CRYPTO=mbedtls or libsrtp
        // for comparisons): installed by the hub before the first session exists.
        let srtpCrypto = Environment.value("RTCAM_SRTP_CRYPTO").flatMap(SRTPCrypto.Choice.init(rawValue:)) ?? .cpuInstructions
        let media = try MediaController(configuration: settings.media, logger: logger)
        let talkback = TalkbackController(settings: settings.talkback, logger: logger)
        self.talkback = talkback
        // WebRTC viewers and RTSP clients share the encoders: they run while either kind watches.
        let presence = ViewerPresence(media: media)
        let hub = StreamHub(loop: loop, settings: hubSettings(settings, candidates: candidates, media: media.current),
                            certificate: certificate, logger: logger, encoders: presence, srtpCrypto: srtpCrypto)
        hub.attach(talkback: talkback)

        // One pool thread for what must not run on the event loop: PBKDF2 (login, password) and
        // building a new media pipeline (camera open, device discovery, passthrough probe).
        let threadPool = NIOThreadPool(numberOfThreads: 1)
        threadPool.start()
        // The "rtcam" data channel's status and commands (controls set on the pool).
        hub.setCameraChannelSource(CameraChannelControls(media: media, threadPool: threadPool))
        let settingsController = SettingsController(store: store, effective: settings, loop: loop) { [self] old, new in
            let applied: EventLoopFuture<String?>
            if old.media != new.media {
                applied = threadPool.runIfActive(eventLoop: loop) { () -> String? in
                    do {
                        try media.apply(new.media)
                        return nil
                    } catch {
                        return "\(error)"
                    }
                }.recover { error in "\(error)" }
            } else {
                applied = loop.makeSucceededFuture(nil)
            }
            return applied.map { [self] reason in
                guard reason == nil else { return reason }
                if old.talkback != new.talkback { talkback.apply(new.talkback) }
                if old.traversal != new.traversal, configuration.iceMode == .full {
                    // Names are resolved off the event loop; the hub takes the servers when they are.
                    threadPool.submit { _ in self.configureTraversal(new.traversal, hub: hub) }
                    self.router?.viewerPageHTML = ViewerPage.html(stunServers: new.traversal.stunServers)
                }
                hub.update(settings: hubSettings(new, candidates: candidates, media: media.current))
                hub.requestKeyframe()
                logger.info("settings changed: \(new.json(revealingSecrets: false))")
                return nil
            }
        }

        // The media socket is rtcam's: the hub sends on it from whichever thread made the datagrams
        // (encoded frames from the encoders' own threads: no event-loop hop per frame), and NIO reads
        // it on the loop (MediaSocketReader). UDP GSO (Linux 4.18+, UDP_SEGMENT): on unless the kernel
        // lacks it or RTCAM_UDP_GSO=0.
        let mediaSocket = try MediaSocket(port: UInt16(configuration.mediaPort),
                                          segmentationOffload: System.supportsUDPSegmentationOffload
                                              && Environment.value("RTCAM_UDP_GSO") != "0",
                                          logger: logger)
        hub.attach(socket: mediaSocket)
        if configuration.iceMode == .full {
            try validateTraversal(settings.traversal)
            configureTraversal(settings.traversal, hub: hub)
        } else if !settings.traversal.stunServers.isEmpty || !settings.traversal.turnServer.isEmpty {
            logger.warning("STUN and TURN servers are not used with --ice lite (an ICE-lite answer offers host candidates only)")
        }
        let reader = MediaSocketReader(socket: mediaSocket, group: group, logger: logger,
                                       receive: { datagram, from in hub.receive(datagram, from: from) })
        try reader.start()
        let iceTCP = startICETCP(hub: hub)

        let router = CameraRouter(
            hub: hub, access: access, tokens: tokens, talkback: talkback,
            policy: RequestPolicy(hostName: RequestPolicy.machineHostName(), extraNames: configuration.hostNames, httpsPort: configuration.httpsPort),
            settings: settingsController, threadPool: threadPool,
            status: { [self] in statusJSON(hub: hub, media: media.current) },
            devices: { DeviceListing.json() })
        if configuration.iceMode == .full {
            // The page's browser asks the same STUN servers, so that a viewer behind a NAT offers its
            // public address too (issue 19).
            router.viewerPageHTML = ViewerPage.html(stunServers: settings.traversal.stunServers.filter { STUNServerSpelling.hostAndPort($0) != nil })
        }
        self.router = router
        let startedAt = self.startedAt
        let reportsHeap = Environment.value("RTCAM_DEBUG_HEAP") == "1"
        router.outputs = OutputEndpoints(
            loop: loop, stills: media.stills,
            frameInterval: { .nanoseconds(1_000_000_000 / Int64(max(1, media.current.configuration.framesPerSecond))) },
            sourceFramesPerSecond: { media.current.configuration.framesPerSecond },
            metrics: { [weak router] in
                MetricsText.render(hub: hub, media: media.current, stills: media.stills,
                                   streams: router?.outputs?.activeStreams ?? 0, rtspSessions: router?.rtsp?.playingClients ?? 0,
                                   uptimeSeconds: (MonotonicClock.now() - startedAt).millisecondsDouble / 1000) { text in
                    if reportsHeap { MetricsText.heap(ProcessMemory.heapStatistics(), into: &text) }
                    guard let rtsp = router?.rtsp else { return }
                    let counters = rtsp.counters
                    text.metric("rtcam_rtsp_packets_sent_total", .counter, help: "RTP packets sent to RTSP clients.", counters.packets)
                    text.metric("rtcam_rtsp_frames_skipped_total", .counter,
                                help: "Video frames not sent to a slow RTSP client (it waits for the next keyframe).", counters.skipped)
                }
            })
        // RTSP for NVRs (issue 21): the same encoders' frames, Digest with the viewing password or a token.
        var rtsp: RTSPServer?
        if let rtspPort = configuration.rtspPort {
            let credentials = RTSPCredentials(stateDirectory: configuration.stateDirectory)
            let server = RTSPServer(presence: presence, context: RTSPServerContext(
                acceptedHA1s: { [weak router] in
                    guard let router, router.viewingIsLocked else { return nil }
                    return credentials.accepted(tokenIDs: tokens.ids, includePassword: true)
                },
                profileLevelID: { media.current.h264ProfileLevelID },
                hasAudio: { media.current.hasAudio },
                maximumClients: { settingsController.current.maximumViewers }), logger: logger)
            do {
                try server.start(group: group, host: listenAddress, port: rtspPort)
                router.rtspCredentials = credentials
                router.rtsp = server
                rtsp = server
            } catch {
                // Another RTSP server (go2rtc, MediaMTX) may hold 8554 on the same board: the camera
                // still serves its pages and WebRTC; RTSP stays off until the port is free or changed.
                server.stop()
                logger.error("RTSP is off: cannot listen on port \(rtspPort) (\(error)); free it or choose another with --rtsp-port")
            }
        }
        // HTTPS first: once plain HTTP answers (what tests and health checks wait for), both serve.
        // Both listeners share one admission: connections per address and in all, request and idle
        // timeouts (HTTPConnectionGuard).
        let httpLimiter = HTTPConnectionLimiter()
        self.httpLimiter.withLockedValue { $0 = httpLimiter }
        let https = try startHTTPS(group: group, router: router, limiter: httpLimiter)
        let http = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .dualStack(listenAddress == "::")
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try HTTPServerPipeline.configure(channel, router: router, limiter: httpLimiter)
                }
            }
            .bind(host: listenAddress, port: configuration.httpPort).wait()

        media.start(delivering: rtsp.map { MediaFanout(hub: hub, rtsp: $0) } ?? hub)
        talkback.start()
        let candidateList = candidates.map { "\($0)" }.joined(separator: ", ")
        logger.info("rtcam serving http://\(listenAddress.contains(":") ? "[\(listenAddress)]" : listenAddress):\(configuration.httpPort)/ — media on UDP \(configuration.mediaPort), candidates \(candidateList), \(media.current.summary)")

        // systemd (Type=notify): READY once serving, STATUS every few seconds, and WATCHDOG=1 from
        // the event loop itself, so a hung loop stops the pings and gets the service restarted.
        let notifier = SystemdNotifier()
        let statusLine: @Sendable () -> String = { "\(hub.viewerCount) viewer(s); \(media.current.summary)" }
        notifier.ready(status: try loop.submit(statusLine).wait())
        let statusTask = loop.scheduleRepeatedTask(initialDelay: .seconds(5), delay: .seconds(5)) { _ in
            notifier.status(statusLine())
        }
        let watchdogTask = notifier.watchdogInterval.map { interval in
            loop.scheduleRepeatedTask(initialDelay: .zero, delay: .nanoseconds(interval.nanosecondsClamped)) { _ in
                notifier.watchdogPing()
            }
        }
        if notifier.isEnabled {
            logger.info("systemd notification on; watchdog \(notifier.watchdogInterval.map { "every \($0)" } ?? "off")")
        }

        termination.wait()
        notifier.stopping()
        statusTask.cancel()
        watchdogTask?.cancel()
        logger.info("stopping: closing every session")
        media.stop()
        hub.closeAll()
        talkback.stop()
        try? http.close().wait()
        rtsp?.stop()
        try? https?.close().wait()
        hub.detachSocket()
        try? reader.close().wait()
        iceTCP?.close()
        try? threadPool.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
        logger.info("stopped")
    }

    /// HTTPS on its own port: the same router under TLS (TLSHandler, mbedTLS). The certificate's
    /// SHA-256 fingerprint is logged so a user can compare it with what the browser's warning shows.
    private func startHTTPS(group: MultiThreadedEventLoopGroup, router: CameraRouter, limiter: HTTPConnectionLimiter) throws -> Channel? {
        guard let httpsPort = configuration.httpsPort else { return nil }
        let names = HTTPSIdentity.names(hostName: HTTPSIdentity.hostName(), addresses: interfaceAddresses())
        let identity = try HTTPSIdentity.load(stateDirectory: configuration.stateDirectory,
                                              certificatePath: configuration.tlsCertificatePath,
                                              keyPath: configuration.tlsKeyPath, names: names, logger: logger)
        // mbedTLS's state is made and used on one event loop only (it is built without threading);
        // the settings page switches the certificate there too (HTTPSCertificateSwitch).
        let loop = group.next()
        let pem = identity.pem
        let stateDirectory = configuration.stateDirectory
        let fixedByCommandLine = configuration.tlsCertificatePath != nil
        let logger = self.logger
        let certificates: NIOLoopBound<HTTPSCertificateSwitch>
        do {
            certificates = try loop.submit {
                var random = SystemRandomNumberGenerator()
                let context = NIOLoopBoundBox(try TLSServerContext(pem: pem, random: &random), eventLoop: loop)
                return NIOLoopBound(HTTPSCertificateSwitch(context: context, stateDirectory: stateDirectory, names: names,
                                                           fixedByCommandLine: fixedByCommandLine, logger: logger),
                                    eventLoop: loop)
            }.wait()
        } catch {
            throw DaemonError.certificate("HTTPS (\(identity.origin)): \(error)")
        }
        let fingerprint = try loop.submit { certificates.value.fingerprint }.wait()
        let channel = try ServerBootstrap(group: loop)
            .serverChannelOption(.backlog, value: 256)
            .dualStack(listenAddress == "::")
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try HTTPServerPipeline.configure(channel, router: router, limiter: limiter) {
                        try TLSHandler(context: certificates.value.context.value, logger: logger)
                    }
                }
            }
            .bind(host: listenAddress, port: httpsPort).wait()
        logger.info("HTTPS on port \(httpsPort): \(identity.origin); certificate SHA-256 \(fingerprint)")
        router.httpsFingerprint.withLockedValue { $0 = fingerprint }
        router.httpsCertificates.withLockedValue { $0 = certificates }
        return channel
    }

    /// The ICE-TCP listener (full ICE, unless `--ice-tcp off`); nil when off or its port is taken
    /// (rtcam then serves UDP only, and says so).
    private func startICETCP(hub: StreamHub) -> ICETCPListener? {
        guard configuration.iceMode == .full, configuration.iceTCP else { return nil }
        let listener = ICETCPListener(logger: logger, receive: { datagram, path in hub.receive(datagram, on: path) },
                                      inUse: { hub.holdsPath($0) }, closed: { hub.transportClosed($0) })
        let port = configuration.iceTCPPort ?? configuration.mediaPort
        do {
            let bound = try listener.start(group: group, host: listenAddress, port: port)
            hub.attach(iceTCP: listener, port: UInt16(bound))
            iceTCPStatus.withLockedValue { $0 = listener }
            logger.info("ICE-TCP: passive candidates on TCP port \(bound)")
            return listener
        } catch {
            logger.warning("ICE-TCP is off: cannot listen on TCP port \(port): \(error)")
            return nil
        }
    }

    private func hubSettings(_ settings: CameraSettings, candidates: [TransportAddress.IP], media: MediaPipeline) -> HubSettings {
        HubSettings(maximumViewers: settings.maximumViewers, candidateAddresses: candidates,
                    mediaPort: UInt16(configuration.mediaPort), h264ProfileLevelID: media.h264ProfileLevelID,
                    hasVideo: true, hasAudio: media.hasAudio,
                    hasSpeaker: talkback?.hasSpeaker ?? false, whoMayTalk: settings.talkback.whoMayTalk,
                    videoBitrateKbps: settings.media.bitrateKbps, videoFollowsEstimate: media.encoderPlan != .passthrough,
                    iceMode: configuration.iceMode)
    }

    /// SIGTERM and SIGINT for the whole life of the daemon. They are blocked in the creating thread
    /// before any other thread exists (every later thread, NIO's and the media threads, inherits the
    /// mask), so the only way they arrive is libdispatch's signalfd: one that comes while rtcam is
    /// still starting (HTTP already answering, the encoders or systemd's READY not yet) waits there
    /// and ends the start in the same clean stop. A signal caught by SIG_IGN or the default action
    /// instead could be lost or kill the process before its sessions are closed. Children get an
    /// empty mask (ChildProcess).
    private final class TerminationSignals {
        private let stop = DispatchSemaphore(value: 0)
        private let sources: [any DispatchSourceSignal]

        init() {
            var blocked = sigset_t()
            sigemptyset(&blocked)
            sigaddset(&blocked, SIGTERM)
            sigaddset(&blocked, SIGINT)
            pthread_sigmask(SIG_BLOCK, &blocked, nil)
            let queue = DispatchQueue(label: "rtcam.signals")
            let stop = self.stop
            sources = [SIGTERM, SIGINT].map { number in
                let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
                source.setEventHandler { stop.signal() }
                source.resume()
                return source
            }
        }

        func wait() {
            stop.wait()
            sources.forEach { $0.cancel() }
        }
    }

    /// A malformed STUN or TURN server on the command line (or in an old config.json) stops the
    /// start with a message; the settings page refuses them field by field.
    private func validateTraversal(_ traversal: TraversalSettings) throws {
        if let server = traversal.stunServers.first(where: { STUNServerSpelling.hostAndPort($0) == nil }) {
            throw DaemonError.invalidSTUNServer(server)
        }
        if let problem = traversal.validationErrors().first {
            throw DaemonError.invalidTURNServer("\(problem.field): \(problem.message)")
        }
    }

    /// The STUN servers and the TURN server resolved (IPv4: the media socket's family reaches them)
    /// and given to the hub, which asks them from the media socket. A name that does not resolve
    /// now is left out with a warning (the camera still serves its LAN). May block on DNS.
    private func configureTraversal(_ traversal: TraversalSettings, hub: StreamHub) {
        let stun = traversal.stunServers.compactMap { text -> TransportAddress? in
            guard let (host, port) = STUNServerSpelling.hostAndPort(text), let address = resolveIPv4(host, port: port) else {
                logger.warning("STUN server \(text): no IPv4 address found; not used")
                return nil
            }
            return address
        }
        hub.startServerReflexiveDiscovery(servers: stun)
        var relay: RelayServerConfiguration?
        var tlsContext: TLSClientContext?
        var tlsProblem: String?
        if !traversal.turnServer.isEmpty, let spelled = try? TURNServerSpelling.parse(traversal.turnServer) {
            if let server = resolveIPv4(spelled.host, port: spelled.port) {
                let credentials: RelayServerConfiguration.Credentials = traversal.turnSecret.isEmpty
                    ? .longTerm(user: traversal.turnUser, password: traversal.turnPassword)
                    : .sharedSecret(traversal.turnSecret, user: traversal.turnUser)
                relay = RelayServerConfiguration(server: server, spelled: traversal.turnServer, credentials: credentials,
                                                 transport: spelled.transport, serverName: spelled.host,
                                                 trustedCAFile: spelled.transport == .tls ? configuration.turnCAPath : nil)
                if spelled.transport == .tls {
                    (tlsContext, tlsProblem) = Self.trustedCAs(file: configuration.turnCAPath)
                    if let tlsProblem { logger.error("TURN server \(traversal.turnServer): \(tlsProblem)") }
                }
            } else {
                logger.warning("TURN server \(traversal.turnServer): no IPv4 address found; no relayed candidates")
            }
        }
        hub.configureRelay(relay, tlsContext: tlsContext, tlsProblem: tlsProblem)
    }

    /// The CAs a `turns:` server's certificate must chain to: `--turn-ca`'s file, else the system's
    /// bundle; nil and the reason when neither can be read.
    static func trustedCAs(file: String?) -> (TLSClientContext?, String?) {
        let path = file ?? TLSClientContext.systemCABundlePath
        guard let pem = StateFiles.readBytes(path, maximumSize: 8 << 20) else {
            return (nil, "cannot read the CA certificates in \(path)\(file == nil ? " (install ca-certificates or give --turn-ca)" : "")")
        }
        var random = SystemRandomNumberGenerator()
        do {
            return (try TLSClientContext(trustedPEM: pem, random: &random), nil)
        } catch {
            return (nil, "\(path): \(error)")
        }
    }

    private func resolveIPv4(_ host: String, port: UInt16) -> TransportAddress? {
        if let ip = TransportAddress.IP(parsing: host) { return TransportAddress(ip: ip, port: port) }
        guard let resolved = try? SocketAddress.makeAddressResolvingHost(host, port: Int(port)),
              let address = TransportAddress(resolved), case .v4 = address.ip else { return nil }
        return address
    }

    /// `--candidate-address` as given (IPv6 literals too, temporary ones included: asked for is
    /// asked for), else this machine's addresses as HostCandidateAddresses chooses them; in both
    /// cases the families interleaved, IPv6 first (RFC 8421).
    /// What HTTP, HTTPS and RTSP listen on: --http-address, except that "::" becomes 0.0.0.0 where
    /// the kernel has no IPv6 (ipv6.disable=1), or where getaddrinfo will not take "::" (no IPv6
    /// address on any interface, net.ipv6.conf.all.disable_ipv6=1: EAI_ADDRFAMILY, seen in the
    /// test VM), so the default works there too.
    private var listenAddress: String {
        guard configuration.httpAddress == "::" else { return configuration.httpAddress }
        let probe = socket(AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { return "0.0.0.0" }
        _ = close(probe)
        guard (try? SocketAddress.makeAddressResolvingHost("::", port: 0)) != nil else { return "0.0.0.0" }
        return "::"
    }

    private func candidateAddresses() throws -> [TransportAddress.IP] {
        if !configuration.candidateAddresses.isEmpty {
            let given = try configuration.candidateAddresses.map { text in
                guard let ip = TransportAddress.IP(parsing: text)?.unmappingIPv4, !ip.isIPv6LinkLocal else {
                    throw DaemonError.invalidCandidateAddress(text)
                }
                return ip
            }
            return HostCandidateAddresses.interleaved(given)
        }
        let listing = StateFiles.read(HostCandidateAddresses.ipv6ListingPath).map(HostCandidateAddresses.parseIPv6Listing)
        let found = HostCandidateAddresses.defaults(interfaceIPs: interfaceAddresses(), ipv6Listing: listing)
        // A network namespace holding only `lo` (how tests isolate themselves) still works.
        return found.isEmpty ? [.v4(127, 0, 0, 1)] : found
    }

    /// The DTLS certificate is made once and kept in the state directory, so a browser sees the same
    /// fingerprint across restarts.
    private func loadOrCreateCertificate() throws -> DTLSCertificate {
        let path = configuration.stateDirectory + "/dtls-certificate.pem"
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

    /// /api/status's `adaptation`: what x264 was configured to encode and what it encodes now.
    static func write(_ adaptation: EncoderAdaptationStatus, to json: inout JSONWriter) {
        func format(_ name: String, _ format: EncodedFormat) {
            json.key(name)
            json.beginObject()
            json.field("width", format.width)
            json.field("height", format.height)
            json.field("fps", format.framesPerSecond)
            json.endObject()
        }
        json.beginObject()
        json.field("degradation", adaptation.preference.rawValue)
        format("configured", adaptation.configured)
        format("current", adaptation.current)
        json.field("adapted", adaptation.configured != adaptation.current)
        json.field("reason", adaptation.reason)
        json.field("changes", adaptation.changes)
        json.field("encodeUsagePercent", adaptation.encodeUsage.map { ($0 * 1000).rounded() / 10 })
        json.field("framesSkipped", adaptation.framesSkipped)
        json.field("cpuLimitCores", adaptation.cpuLimitCores)
        json.field("cpuLimitUsedPercent", adaptation.cpuLimitUsed.map { ($0 * 1000).rounded() / 10 })
        json.field("captureToEncodedMilliseconds", adaptation.captureToEncoded.map { ($0.millisecondsDouble * 10).rounded() / 10 })
        json.endObject()
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
        json.field("encoderCPUSeconds", mediaStatus.encoderCPUSeconds)
        json.field("reducedLayerFrames", mediaStatus.reducedLayerFrames)
        json.field("reducedLayerCPUSeconds", mediaStatus.reducedLayerCPUSeconds)
        json.field("testPatternCPUSeconds", mediaStatus.testPatternCPUSeconds)
        json.field("audioEncoderCPUSeconds", mediaStatus.audioEncoderCPUSeconds)
        json.field("framesDropped", mediaStatus.framesDropped)
        json.field("pixelFormat", mediaStatus.cameraPixelFormat)
        json.field("pixelFormatReason", mediaStatus.cameraFormatReason)
        if let jpeg = mediaStatus.cameraJPEG {
            // The camera's own JPEGs (MJPEG): stills pass them through, x264 gets them decoded.
            json.key("cameraJPEG")
            json.beginObject()
            json.field("decoded", jpeg.decoded)
            json.field("decodedWithWarnings", jpeg.decodedWithWarnings)
            json.field("badFrames", jpeg.badFrames)
            json.field("lastProblem", jpeg.lastProblem)
            json.field("subsampling", jpeg.subsampling)
            json.field("decodeCPUSeconds", mediaStatus.jpegDecodeCPUSeconds)
            json.endObject()
        }
        json.field("sourceProblem", mediaStatus.sourceProblem)
        json.field("sourceRestarts", mediaStatus.sourceRestarts)
        json.key("camera")
        json.beginObject()
        json.field("state", mediaStatus.camera.state)
        json.field("lostSeconds", mediaStatus.camera.lostSeconds)
        json.field("losses", mediaStatus.camera.losses)
        json.field("failedReopens", mediaStatus.camera.failedReopens)
        json.field("lastOutageSeconds", mediaStatus.camera.lastOutageSeconds)
        json.field("reason", mediaStatus.camera.reason)
        json.endObject()
        if let adaptation = mediaStatus.adaptation {
            json.key("adaptation")
            Self.write(adaptation, to: &json)
        }
        if let talkback {
            let talk = talkback.status()
            json.key("talkback")
            json.beginObject()
            json.field("speaker", talk.speaker)
            json.field("talker", talk.talker)
            json.field("volumePercent", talk.volumePercent)
            json.field("whoMayTalk", talk.whoMayTalk.rawValue)
            json.field("deviceRate", talk.deviceRate.map(Double.init))
            json.field("targetDelayMs", talk.targetDelayMilliseconds)
            json.field("packetsAccepted", talk.jitter.packetsAccepted)
            json.field("packetsWithoutFloor", talk.packetsWithoutFloor)
            json.field("late", talk.jitter.late)
            json.field("framesPlayed", talk.jitter.framesPlayed)
            json.field("framesRecoveredByFEC", talk.jitter.framesRecoveredByFEC)
            json.field("framesConcealed", talk.jitter.framesConcealed)
            json.field("framesConcealedEmpty", talk.jitter.framesConcealedEmpty)
            json.field("framesInserted", talk.jitter.framesInserted)
            json.field("framesDropped", talk.jitter.framesDropped)
            json.field("underruns", talk.jitter.underruns)
            json.field("talkspurts", talk.jitter.talkspurts)
            json.field("longestArrivalGapMs", talk.jitter.longestArrivalGap.millisecondsDouble)
            json.field("framesWritten", Int(talk.playback.framesWritten))
            json.field("speakerUnderrunsRecovered", talk.playback.underrunsRecovered)
            json.field("speakerSuspendsRecovered", talk.playback.suspendsRecovered)
            json.field("speakerOpenFailures", talk.openFailures)
            json.field("microphonePeriodsMuted", talk.microphonePeriodsMuted)
            json.field("echo", talk.echo.handling.rawValue)
            json.field("microphonePeriodsEchoCancelled", talk.echo.cancelledPeriods)
            json.field("echoReturnLossEnhancementDB", talk.echo.echoReturnLossEnhancementDB)
            json.endObject()
        }
        if let microphone = mediaStatus.microphone {
            json.key("microphone")
            json.beginObject()
            for (name, value) in microphone.namedCounts { json.field(name, value) }
            json.endObject()
        }
        let socket = hub.mediaSocketCounters
        json.key("mediaSocket")
        json.beginObject()
        json.field("datagramsSent", socket.datagramsSent)
        json.field("datagramsDropped", socket.datagramsDropped)
        json.field("sendErrors", socket.sendErrors)
        json.field("udpSegmentationOffload", socket.segmentationOffload)
        json.field("dualStack", socket.dualStack)
        json.endObject()
        if let iceTCP = iceTCPStatus.withLockedValue({ $0 })?.status {
            json.key("iceTCP")
            json.beginObject()
            json.field("port", iceTCP.port)
            json.field("connectionsOpen", iceTCP.connectionsOpen)
            json.field("connectionsAccepted", iceTCP.connectionsAccepted)
            json.field("refusedPerAddress", iceTCP.refusedPerAddress)
            json.field("refusedFull", iceTCP.refusedFull)
            json.field("closedUnused", iceTCP.closedUnused)
            json.field("framingErrors", iceTCP.framingErrors)
            json.field("framesReceived", iceTCP.framesReceived)
            json.field("framesSent", iceTCP.framesSent)
            json.field("framesDropped", iceTCP.framesDropped)
            json.endObject()
        }
        if let http = httpLimiter.withLockedValue({ $0 })?.counters {
            json.key("http")
            json.beginObject()
            json.field("connectionsOpen", http.open)
            json.field("connectionsAccepted", http.accepted)
            json.field("refusedPerAddress", http.refusedPerAddress)
            json.field("refusedFull", http.refusedFull)
            json.field("requestTimeouts", http.requestTimeouts)
            json.field("idleTimeouts", http.idleTimeouts)
            json.field("requestsTooLarge", http.requestsTooLarge)
            json.endObject()
        }
        if let relay = hub.relayStatus {
            // Issue 19: the TURN allocation new answers offer a relayed candidate on (null: none yet).
            json.key("turn")
            json.beginObject()
            json.field("server", relay.server)
            json.field("transport", relay.transport)
            if let connection = relay.connection {
                json.field("connection", connection)
                json.field("connections", relay.connections ?? 0)
                json.field("bytesDropped", relay.bytesDropped ?? 0)
            }
            json.field("error", relay.error)
            json.field("relayedAddress", relay.relayed?.description)
            json.field("mappedAddress", relay.mapped?.description)
            json.field("permissions", relay.permissions)
            json.endObject()
        }
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
            json.field("retransmissionsRefused", viewer.retransmissionsRefused)
            json.field("redundantRetransmissions", viewer.redundantRetransmissions)
            json.field("redundantRetransmissionsWithheld", viewer.redundantRetransmissionsWithheld)
            json.field("redundantRetransmissionsHeldForCongestion", viewer.redundantRetransmissionsHeldForCongestion)
            json.field("retransmissionsInFlight", viewer.retransmissionsInFlight)
            json.field("keyframeRequests", viewer.keyframeRequests)
            json.field("estimateKbps", viewer.estimateKbps.map(Double.init))
            json.field("delayBasedKbps", viewer.delayBasedKbps.map(Double.init))
            json.field("lossBasedKbps", viewer.lossBasedKbps.map(Double.init))
            json.field("rembKbps", viewer.rembKbps.map(Double.init))
            json.field("belowFloor", viewer.belowFloor)
            // Issue 24: the video layer it is on ("full", "reduced"; null before its first video).
            json.field("layer", viewer.layer)
            json.field("layerSwitches", viewer.layerSwitches)
            json.field("pacerQueueBytes", viewer.pacerQueueBytes)
            json.field("pacerQueueMs", viewer.pacerQueueMilliseconds)
            json.field("probeClusters", viewer.probeClusters)
            json.field("staleVideoPacketsDropped", viewer.pacedVideoPacketsDropped)
            if let pair = viewer.icePair {
                // Full ICE (issue 19): which kinds of address the media path joins.
                json.key("icePair")
                json.beginObject()
                json.field("local", pair.local.kind.rawValue)
                json.field("localAddress", pair.local.address.description)
                json.field("remote", pair.remote.kind.rawValue)
                json.field("remoteAddress", pair.remote.address.description)
                json.field("protocol", pair.path.base == .tcp ? "tcp" : "udp")   // ICE-TCP (RFC 6544) or UDP
                json.field("rttMs", pair.roundTripTime.map(\.millisecondsDouble))
                json.endObject()
            }
            json.endObject()
        }
        json.endArray()
        let bitrate = hub.bitrateControlStatus
        json.key("bitrateControl")
        json.beginObject()
        json.field("configuredKbps", bitrate.configuredKbps)
        json.field("floorKbps", bitrate.floorKbps)
        json.field("encoderTargetKbps", bitrate.encoderTargetKbps)
        json.field("capped", bitrate.capped)
        json.field("viewersBelowFloor", bitrate.viewersBelowFloor)
        json.field("reducedLayerKbps", bitrate.reducedLayerKbps.map(Double.init))
        // x264's periodic IDRs held while a viewer's link was congested (KeyframeSchedule), and the
        // longest such wait (null: none ended yet).
        json.field("periodicKeyframesHeld", mediaStatus.periodicKeyframesHeld)
        json.field("longestKeyframeHoldMs", mediaStatus.longestKeyframeHold.map { $0.millisecondsDouble.rounded() })
        json.field("reducedLayerKeyframesHeld", mediaStatus.reducedLayerKeyframesHeld)
        json.endObject()
        json.endObject()
        return json.text
    }
}

extension ServerBootstrap {
    /// On an IPv6 wildcard listener: IPV6_V6ONLY off, so IPv4 clients connect too (as ::ffff:a.b.c.d,
    /// unmapped at once by TransportAddress(SocketAddress)), whatever net.ipv6.bindv6only says.
    func dualStack(_ enabled: Bool) -> ServerBootstrap {
        guard enabled else { return self }
        return serverChannelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .init(rawValue: IPV6_V6ONLY)), value: 0)
    }
}
