#if canImport(Glibc)
import Glibc
#endif
import DTLS
import RTCBase
import RTP
import STUN
import Synchronization
import WebRTCSession
import WebRTCViewer
import SystemSupport

/// `rtcam-bench loadgen`: N real WebRTC viewers against a running daemon, in one process. Each
/// viewer is rtcam's own receiving side (`WebRTCViewer.ViewerSession`: ICE controlling, DTLS client,
/// SRTP, RTP reassembly with NACK/RTX, RTCP receiver reports) on its own UDP socket; WHEP over a
/// minimal HTTP/1.1 client. A few worker threads each drive a share of the viewers from one poll().
///
/// Phases: connect every viewer, print `READY` (the orchestrator starts measuring the daemon), run
/// for --seconds, print `DONE`, DELETE every session, print the table and write JSON. Per-viewer
/// figures are over the measured window only.
struct LoadGeneratorConfiguration: Sendable {
    var endpoint: HTTPEndpoint
    var viewers: Int
    var seconds: Double
    var threads: Int
    var connectTimeout: Duration
    /// New viewers per second (all threads together).
    var connectRate: Double
    var receiveBufferBytes: Int
    var jsonPath: String
    var quiet: Bool
    /// During the window, print an `INTERVAL` line every so many seconds (0: none): each connected
    /// viewer's frame rate over that interval (the soak's "never below" figure).
    var reportEverySeconds: Double = 0
}

extension HTTPEndpoint: @unchecked Sendable {}

/// `ViewerStatistics` as plain values this target can create (its initializer is internal).
struct ViewerCounters: Sendable {
    var videoPacketsReceived = 0
    var retransmissionsReceived = 0
    var audioPacketsReceived = 0
    var nackPacketsSent = 0
    var sequenceNumbersNACKed = 0
    var accessUnitsReceived = 0
    var accessUnitsDropped = 0
    var holesSkipped = 0
    var keyframeRequestsSent = 0
    var srtpFailures = 0

    init() {}

    init(_ s: ViewerStatistics) {
        videoPacketsReceived = s.videoPacketsReceived
        retransmissionsReceived = s.retransmissionsReceived
        audioPacketsReceived = s.audioPacketsReceived
        nackPacketsSent = s.nackPacketsSent
        sequenceNumbersNACKed = s.sequenceNumbersNACKed
        accessUnitsReceived = s.accessUnitsReceived
        accessUnitsDropped = s.accessUnitsDropped
        holesSkipped = s.holesSkipped
        keyframeRequestsSent = s.keyframeRequestsSent
        srtpFailures = s.srtpFailures
    }
}

/// What one viewer saw.
struct ViewerResult: Sendable {
    var index: Int
    var connected = false
    var failure: String?
    /// POST sent → DTLS connected / first access unit, milliseconds.
    var connectMilliseconds: Double?
    var firstFrameMilliseconds: Double?
    /// Over the measured window.
    var window = ViewerCounters()
    var framesInWindow = 0
    /// UDP payload bytes received in the window (all of it: SRTP, SRTCP, STUN).
    var bytesInWindow = 0
    /// Capture (rtcam's CLOCK_MONOTONIC capture time, from the Sender Report mapping) → the last
    /// packet of the access unit received and the AU reassembled, milliseconds, in the window.
    var latencies: [Float] = []
}

/// State shared between the main thread and the workers.
final class LoadGeneratorShared: Sendable {
    /// 0 connecting, 1 measuring, 2 stopping.
    let phase = Atomic<Int>(0)
    let connected = Atomic<Int>(0)
    let settled = Atomic<Int>(0)          // connected or given up
    let results = Mutex<[ViewerResult]>([])
    /// Access units received so far per viewer index, and whether it connected (for INTERVAL lines).
    let progress: Mutex<(frames: [Int], connected: [Bool])>

    init(viewers: Int) {
        progress = Mutex((frames: [Int](repeating: 0, count: viewers), connected: [Bool](repeating: false, count: viewers)))
    }
}

enum LoadGenerator {
    static func run(_ options: Options) {
        // The viewers' SRTP as the daemon's (RTCAM_SRTP_CRYPTO: auto, mbedtls, libsrtp).
        SRTPCrypto.install(getenv("RTCAM_SRTP_CRYPTO").flatMap { SRTPCrypto.Choice(rawValue: String(cString: $0)) }
                           ?? .cpuInstructions)
        let url = options.string("url", default: "http://127.0.0.1:8080")
        let endpoint: HTTPEndpoint
        do { endpoint = try HTTPEndpoint(url) } catch { fail(error.description) }
        let viewers = options.int("viewers", default: 1)
        let configuration = LoadGeneratorConfiguration(
            endpoint: endpoint, viewers: viewers, seconds: options.double("seconds", default: 10),
            threads: max(1, min(options.int("threads", default: viewers >= 20 ? 2 : 1), viewers)),
            connectTimeout: .seconds(options.int("connect-timeout", default: 30)),
            connectRate: options.double("connect-rate", default: 50),
            receiveBufferBytes: options.int("rcvbuf", default: 1 << 20),
            jsonPath: options.string("json", default: "out/bench/loadgen.json"),
            quiet: options.flag("quiet"),
            reportEverySeconds: options.double("report-every", default: 0))

        var random = SystemRandomNumberGenerator()
        let certificate: DTLSCertificate
        do { certificate = try DTLSCertificate.generate(commonName: "rtcam-loadgen", random: &random) } catch {
            fail("certificate: \(error)")
        }
        let shared = LoadGeneratorShared(viewers: viewers)
        let cpuStart = BenchClock.processCPU()
        let started = MonotonicClock.now()
        var workers: [DedicatedThread] = []
        for worker in 0 ..< configuration.threads {
            let seed = random.next()
            workers.append(DedicatedThread.start(name: "rtcam-bench") {
                var generator = LoadWorker(worker: worker, configuration: configuration, certificate: certificate,
                                           shared: shared, seed: seed)
                generator.run()
            })
        }

        // Connect phase: until every viewer connected or gave up, or the timeout.
        let connectDeadline = started + configuration.connectTimeout
        while shared.settled.load(ordering: .relaxed) < viewers, MonotonicClock.now() < connectDeadline {
            MonotonicClock.sleep(until: MonotonicClock.now() + .milliseconds(20))
        }
        let connectSeconds = Double((MonotonicClock.now() - started).nanosecondsClamped) / 1e9
        let connectedCount = shared.connected.load(ordering: .relaxed)
        // Let the keyframes requested by the last joiners pass before measuring.
        MonotonicClock.sleep(until: MonotonicClock.now() + .milliseconds(500))
        let cpuReady = BenchClock.processCPU()
        shared.phase.store(1, ordering: .relaxed)
        print("READY \(connectedCount)/\(viewers) connected in \(format(connectSeconds)) s")
        flushOutput()
        let windowStart = MonotonicClock.now()
        let windowEnd = windowStart + .nanoseconds(Int64(configuration.seconds * 1e9))
        if configuration.reportEverySeconds > 0 {
            reportIntervals(every: configuration.reportEverySeconds, from: windowStart, until: windowEnd, shared: shared)
        }
        MonotonicClock.sleep(until: windowEnd)
        shared.phase.store(2, ordering: .relaxed)
        let windowSeconds = Double((MonotonicClock.now() - windowStart).nanosecondsClamped) / 1e9
        let cpuDone = BenchClock.processCPU()
        print("DONE")
        flushOutput()
        for worker in workers { worker.join() }

        report(configuration, results: shared.results.withLock { $0 }.sorted { $0.index < $1.index },
               connectSeconds: connectSeconds, windowSeconds: windowSeconds,
               loadgenCPU: Double(cpuDone.user + cpuDone.system - cpuReady.user - cpuReady.system) / 1e9,
               loadgenConnectCPU: Double(cpuReady.user + cpuReady.system - cpuStart.user - cpuStart.system) / 1e9)
    }

    /// One `INTERVAL <seconds into the window> viewers <n> fps min <x> p50 <y> total-frames <f>`
    /// line per interval, over the viewers connected at its start (a viewer that stopped receiving
    /// shows as a low minimum, not as a smaller count).
    private static func reportIntervals(every seconds: Double, from start: MonotonicTime, until end: MonotonicTime,
                                        shared: LoadGeneratorShared) {
        let step = Duration.nanoseconds(Int64(seconds * 1e9))
        var previous = shared.progress.withLock { $0 }
        var intervalStart = start
        while intervalStart + step <= end {
            MonotonicClock.sleep(until: intervalStart + step)
            let now = MonotonicClock.now()
            let current = shared.progress.withLock { $0 }
            let elapsed = Double((now - intervalStart).nanosecondsClamped) / 1e9
            let rates = current.frames.indices.filter { previous.connected[$0] }
                .map { Double(current.frames[$0] - previous.frames[$0]) / elapsed }.sorted()
            let intoWindow = Double((now - start).nanosecondsClamped) / 1e9
            if let minimum = rates.first {
                print("INTERVAL \(format(intoWindow)) viewers \(rates.count) fps min \(format(minimum, decimals: 1)) "
                      + "p50 \(format(rates[rates.count / 2], decimals: 1)) total-frames \(current.frames.reduce(0, +))")
            } else {
                print("INTERVAL \(format(intoWindow)) viewers 0")
            }
            flushOutput()
            previous = current
            intervalStart = now
        }
    }

    private static func report(_ configuration: LoadGeneratorConfiguration, results: [ViewerResult],
                               connectSeconds: Double, windowSeconds: Double, loadgenCPU: Double, loadgenConnectCPU: Double) {
        let connected = results.filter(\.connected)
        var total = ViewerCounters()
        var frames = 0
        for result in connected {
            total.videoPacketsReceived += result.window.videoPacketsReceived
            total.retransmissionsReceived += result.window.retransmissionsReceived
            total.audioPacketsReceived += result.window.audioPacketsReceived
            total.nackPacketsSent += result.window.nackPacketsSent
            total.sequenceNumbersNACKed += result.window.sequenceNumbersNACKed
            total.accessUnitsReceived += result.window.accessUnitsReceived
            total.accessUnitsDropped += result.window.accessUnitsDropped
            total.holesSkipped += result.window.holesSkipped
            total.keyframeRequestsSent += result.window.keyframeRequestsSent
            total.srtpFailures += result.window.srtpFailures
            frames += result.framesInWindow
        }
        // Loss before recovery: sequence numbers the viewers had to NACK (a repeat NACK of the same
        // number counts again, so this is an upper bound); after recovery: holes skipped for good.
        let original = Double(max(1, total.videoPacketsReceived - total.retransmissionsReceived + total.holesSkipped))
        let nackedPercent = 100 * Double(total.sequenceNumbersNACKed) / original
        let residualPercent = 100 * Double(total.holesSkipped) / original
        let latencies = Percentiles(connected.flatMap { $0.latencies.map(Double.init) })
        let connectTimes = Percentiles(connected.compactMap(\.connectMilliseconds))
        let firstFrames = Percentiles(connected.compactMap(\.firstFrameMilliseconds))
        let perViewerFPS = connected.map { Double($0.framesInWindow) / windowSeconds }
        let fps = Percentiles(perViewerFPS)

        if !configuration.quiet, results.count <= 20 {
            printTable("viewers (window \(format(windowSeconds)) s)",
                       header: ["#", "connect ms", "1st AU ms", "video pkts", "rtx", "audio pkts", "NACKs", "seqs NACKed",
                                "lost for good", "AUs", "fps", "PLIs", "srtp err", "failure"],
                       rows: results.map { result in
                           [String(result.index), result.connectMilliseconds.map { format($0, decimals: 0) } ?? "-",
                            result.firstFrameMilliseconds.map { format($0, decimals: 0) } ?? "-",
                            String(result.window.videoPacketsReceived), String(result.window.retransmissionsReceived),
                            String(result.window.audioPacketsReceived), String(result.window.nackPacketsSent),
                            String(result.window.sequenceNumbersNACKed), String(result.window.holesSkipped),
                            String(result.framesInWindow), format(Double(result.framesInWindow) / windowSeconds, decimals: 1),
                            String(result.window.keyframeRequestsSent), String(result.window.srtpFailures),
                            result.failure ?? ""]
                       })
        }
        printTable("load generator: \(connected.count)/\(configuration.viewers) viewers connected in \(format(connectSeconds)) s, \(format(windowSeconds)) s window, \(configuration.threads) thread(s)",
                   header: ["viewers", "video pkts", "rtx", "seqs NACKed %", "lost for good %", "AUs", "fps p50", "fps min",
                            "connect ms p50/p95", "lat ms p50/p95/p99", "srtp err", "loadgen % core"],
                   rows: [[String(connected.count), String(total.videoPacketsReceived), String(total.retransmissionsReceived),
                           format(nackedPercent, decimals: 3), format(residualPercent, decimals: 3), String(frames),
                           format(fps.p50, decimals: 1), format(fps.minimum, decimals: 1),
                           format(connectTimes.p50, decimals: 0) + "/" + format(connectTimes.p95, decimals: 0),
                           format(latencies.p50, decimals: 1) + "/" + format(latencies.p95, decimals: 1) + "/" + format(latencies.p99, decimals: 1),
                           String(total.srtpFailures), format(100 * loadgenCPU / windowSeconds, decimals: 1)]])
        let failures = results.compactMap { result in result.failure.map { "viewer \(result.index): \($0)" } }
        for failure in failures.prefix(5) { print("  " + failure) }

        func statisticsJSON(_ s: ViewerCounters) -> [(String, JSONValue)] {
            [("video_packets", .int(s.videoPacketsReceived)), ("retransmissions", .int(s.retransmissionsReceived)),
             ("audio_packets", .int(s.audioPacketsReceived)), ("nack_packets", .int(s.nackPacketsSent)),
             ("sequence_numbers_nacked", .int(s.sequenceNumbersNACKed)), ("access_units", .int(s.accessUnitsReceived)),
             ("access_units_dropped", .int(s.accessUnitsDropped)), ("holes_skipped", .int(s.holesSkipped)),
             ("keyframe_requests", .int(s.keyframeRequestsSent)), ("srtp_failures", .int(s.srtpFailures))]
        }
        let perViewer: [JSONValue] = results.map { result in
            .object([("index", .int(result.index)), ("connected", .bool(result.connected)),
                     ("failure", result.failure.map { .string($0) } ?? .null),
                     ("connect_ms", result.connectMilliseconds.map { .double($0) } ?? .null),
                     ("first_access_unit_ms", result.firstFrameMilliseconds.map { .double($0) } ?? .null),
                     ("frames", .int(result.framesInWindow)), ("bytes", .int(result.bytesInWindow))]
                        + statisticsJSON(result.window))
        }
        let json = JSONValue.object([
            ("benchmark", .string("loadgen")), ("viewers", .int(configuration.viewers)), ("connected", .int(connected.count)),
            ("threads", .int(configuration.threads)), ("connect_s", .double(connectSeconds)), ("window_s", .double(windowSeconds)),
            ("receive_buffer_bytes", .int(configuration.receiveBufferBytes)),
            ("totals", .object(statisticsJSON(total) + [("frames", .int(frames))])),
            ("loss_nacked_percent", .double(nackedPercent)), ("loss_unrecovered_percent", .double(residualPercent)),
            ("fps_per_viewer", fps.json), ("connect_ms", connectTimes.json), ("first_access_unit_ms", firstFrames.json),
            ("capture_to_receive_ms", latencies.json),
            ("loadgen_cpu_s", .double(loadgenCPU)), ("loadgen_connect_cpu_s", .double(loadgenConnectCPU)),
            ("loadgen_peak_rss_kb", .int(BenchClock.peakRSSKilobytes())),
            ("failures", .array(failures.map { .string($0) })),
            ("per_viewer", .array(perViewer)),
        ])
        writeFile(configuration.jsonPath, json.serialized() + "\n")
        print("json: \(configuration.jsonPath)")
    }
}

/// One worker thread: its share of the viewers (index % threads == worker), one poll() loop.
struct LoadWorker {
    private final class Slot {
        let index: Int
        var fd: Int32 = -1
        var session: ViewerSession?
        var sessionPath: String?
        var videoSSRC: UInt32?
        var postedAt: MonotonicTime?
        var deadline: MonotonicTime?
        var result: ViewerResult
        var baseline: ViewerCounters?
        var settled = false
        /// The latest video Sender Report: (rtcam's monotonic ns at the SR, its RTP timestamp).
        var senderReport: (monotonic: Int64, rtp: UInt32)?

        init(index: Int) {
            self.index = index
            result = ViewerResult(index: index)
        }
    }

    let worker: Int
    let configuration: LoadGeneratorConfiguration
    let certificate: DTLSCertificate
    let shared: LoadGeneratorShared
    private var random: SeededRandom
    private var slots: [Slot] = []
    private var pending: [Slot] = []
    private let ntpAtMonotonicZero = MonotonicClock.ntpNanosecondsAtMonotonicZero()
    private var buffer = [UInt8](repeating: 0, count: 2048)

    init(worker: Int, configuration: LoadGeneratorConfiguration, certificate: DTLSCertificate,
         shared: LoadGeneratorShared, seed: UInt64) {
        self.worker = worker
        self.configuration = configuration
        self.certificate = certificate
        self.shared = shared
        random = SeededRandom(seed: seed)
        pending = stride(from: worker, to: configuration.viewers, by: configuration.threads).map { Slot(index: $0) }
    }

    mutating func run() {
        let connectInterval = Duration.nanoseconds(Int64(1e9 * Double(configuration.threads) / max(1, configuration.connectRate)))
        var nextConnect = MonotonicClock.now()
        var phase = 0
        var pollDescriptors: [pollfd] = []
        var descriptorSlots: [Slot] = []
        let started = MonotonicClock.now()
        while true {
            var now = MonotonicClock.now()
            let currentPhase = shared.phase.load(ordering: .relaxed)
            if currentPhase != phase {
                phase = currentPhase
                if phase == 1 {
                    for slot in slots { slot.baseline = slot.session.map { ViewerCounters($0.statistics) }; slot.result.framesInWindow = 0; slot.result.bytesInWindow = 0; slot.result.latencies = [] }
                } else if phase == 2 {
                    break
                }
            }
            if !pending.isEmpty, now >= nextConnect, phase == 0 {
                let slot = pending.removeFirst()
                if connect(slot, now: now) {
                    if slot.fd >= 0 {
                        pollDescriptors.append(pollfd(fd: slot.fd, events: Int16(POLLIN), revents: 0))
                        descriptorSlots.append(slot)
                    }
                    nextConnect = nextConnect + connectInterval
                } else {
                    // 429: the daemon admits only a few sessions per address while they connect
                    // (ViewerAdmission); like a browser's retry, try this viewer again shortly.
                    pending.insert(slot, at: 0)
                    nextConnect = MonotonicClock.now() + .milliseconds(100)
                }
                now = MonotonicClock.now()
            }
            // Viewers that did not connect in time give up (counted once).
            if phase == 0, now - started > configuration.connectTimeout {
                for slot in slots where !slot.settled {
                    settle(slot, failure: slot.result.failure ?? "not connected within the connect timeout")
                }
            }

            var timeout = earliestDeadline() ?? (now + .milliseconds(20))
            if !pending.isEmpty, phase == 0 { timeout = min(timeout, nextConnect) }
            let waitNanoseconds = timeout > now ? (timeout - now).nanosecondsClamped : 0
            let waitMilliseconds = Int32(min(20, (waitNanoseconds + 999_999) / 1_000_000))
            let ready = poll(&pollDescriptors, nfds_t(pollDescriptors.count), waitMilliseconds)
            if ready > 0 {
                for position in pollDescriptors.indices where pollDescriptors[position].revents != 0 {
                    pollDescriptors[position].revents = 0
                    receiveAll(descriptorSlots[position])
                }
            }
            now = MonotonicClock.now()
            for slot in slots {
                guard let deadline = slot.deadline, deadline <= now, let session = slot.session else { continue }
                session.handleTimeout(now: now)
                drain(slot, now: now)
            }
        }
        // Window over: take the figures, then leave (DELETE) like a browser closing the tab.
        var results: [ViewerResult] = []
        for slot in slots + pending {
            if let session = slot.session {
                slot.result.window = difference(ViewerCounters(session.statistics), slot.baseline ?? ViewerCounters())
            }
            if let path = slot.sessionPath {
                _ = try? HTTPClient.request(method: "DELETE", host: configuration.endpoint.host,
                                            port: configuration.endpoint.port, path: path)
            }
            if slot.fd >= 0 { close(slot.fd) }
            if slot.result.failure == nil, !slot.result.connected { slot.result.failure = "never connected" }
            results.append(slot.result)
        }
        shared.results.withLock { $0 += results }
    }

    private func earliestDeadline() -> MonotonicTime? {
        var earliestTime: MonotonicTime?
        for slot in slots {
            if let deadline = slot.deadline, earliestTime.map({ deadline < $0 }) ?? true { earliestTime = deadline }
        }
        return earliestTime
    }

    /// False when the daemon answered 429 (too many sessions from this address still connecting):
    /// the slot is left as it was, to be tried again.
    private mutating func connect(_ slot: Slot, now: MonotonicTime) -> Bool {
        let negotiation: WHEPNegotiation
        do {
            negotiation = try WHEPNegotiation.negotiate(endpoint: configuration.endpoint, certificate: certificate,
                                                        random: &random)
        } catch {
            if case .status(429, _) = error { return false }
            slots.append(slot)
            slot.postedAt = now
            settle(slot, failure: error.description)
            return true
        }
        slots.append(slot)
        slot.postedAt = now
        slot.sessionPath = negotiation.sessionPath
        slot.videoSSRC = negotiation.videoSSRC
        guard let fd = openSocket(to: negotiation.configuration.remoteAddress) else {
            settle(slot, failure: "UDP socket: errno \(errno)")
            return true
        }
        slot.fd = fd
        do {
            let session = try ViewerSession(configuration: negotiation.configuration, now: MonotonicClock.now(), random: &random)
            slot.session = session
            session.start(now: MonotonicClock.now())
            drain(slot, now: MonotonicClock.now())
        } catch {
            settle(slot, failure: "ViewerSession: \(error)")
        }
        return true
    }

    private func settle(_ slot: Slot, failure: String?) {
        if let failure, slot.result.failure == nil { slot.result.failure = failure }
        guard !slot.settled else { return }
        slot.settled = true
        shared.settled.add(1, ordering: .relaxed)
        if failure == nil {
            shared.connected.add(1, ordering: .relaxed)
            shared.progress.withLock { $0.connected[slot.index] = true }
        }
    }

    /// A UDP socket (any port) connected to the server's media port, non-blocking.
    private func openSocket(to remote: TransportAddress) -> Int32? {
        guard case let .v4(a, b, c, d) = remote.ip else { return nil }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return nil }
        var size = Int32(configuration.receiveBufferBytes)
        // SO_RCVBUFFORCE passes net.core.rmem_max when privileged; else the capped SO_RCVBUF.
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        // 127.0.0.1 towards a loopback peer; otherwise any address (the kernel picks the source
        // on the peer's route): libnice (GStreamer) has no loopback candidate and does not answer
        // checks between loopback and its host address on a veth (Tests/Benchmarks: `peers`).
        local.sin_addr.s_addr = a == 127 ? UInt32(0x7F00_0001).bigEndian : 0
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = remote.port.bigEndian
        address.sin_addr.s_addr = (UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)).bigEndian
        let ok = withUnsafePointer(to: &local) { localPointer in
            withUnsafePointer(to: &address) { remotePointer in
                localPointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } == 0 &&
                    remotePointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } == 0
            }
        }
        guard ok else { close(fd); return nil }
        return fd
    }

    private mutating func receiveAll(_ slot: Slot) {
        guard let session = slot.session else { return }
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(slot.fd, $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT)) }
            if count <= 0 { break }
            slot.result.bytesInWindow += count
            let now = MonotonicClock.now()
            let datagram = Array(buffer[0 ..< count])
            if datagram[0] <= 3, answerBindingRequest(datagram, session: session, fd: slot.fd) { continue }
            session.handle(datagram, from: session.configuration.remoteAddress, now: now)
            drain(slot, now: now)
        }
    }

    /// rtcam is ICE-lite and never checks the viewer, so `ViewerSession` does not answer Binding
    /// requests. A full-ICE sender (aiortc, GStreamer) does check: answer it here (RFC 8445 §7.3:
    /// success with XOR-MAPPED-ADDRESS, integrity with our password, FINGERPRINT).
    private func answerBindingRequest(_ datagram: [UInt8], session: ViewerSession, fd: Int32) -> Bool {
        guard let request = try? STUNMessage(parsing: datagram), request.messageClass == .request,
              request.method == STUNMessage.bindingMethod else { return false }
        let key = Array(session.configuration.localICE.password.utf8)
        guard STUNMessage.hasValidIntegrity(datagram, key: key) else { return true }
        var mapped = session.configuration.remoteAddress
        mapped.ip = .v4(127, 0, 0, 1)
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        if named == 0 { mapped.port = UInt16(bigEndian: local.sin_port) }
        let response = STUNMessage(messageClass: .successResponse, transactionID: request.transactionID,
                                   attributes: [.xorMappedAddress(mapped)])
        let bytes = response.serialized(integrityKey: key, fingerprint: true)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, 0) }
        return true
    }

    private func drain(_ slot: Slot, now: MonotonicTime) {
        guard let session = slot.session else { return }
        var drained: [ViewerOutput] = []
        session.drainOutputs(into: &drained)
        for output in drained {
            switch output {
            case let .transmit(bytes, _):
                _ = bytes.withUnsafeBytes { send(slot.fd, $0.baseAddress!, $0.count, 0) }
            case let .event(event):
                handle(event, slot: slot, now: now)
            case let .timeout(deadline):
                slot.deadline = deadline
            }
        }
    }

    private func handle(_ event: ViewerEvent, slot: Slot, now: MonotonicTime) {
        switch event {
        case .connected:
            slot.result.connected = true
            if let posted = slot.postedAt { slot.result.connectMilliseconds = (now - posted).millisecondsDouble }
            settle(slot, failure: nil)
        case let .videoAccessUnit(_, rtpTimestamp):
            slot.result.framesInWindow += 1
            shared.progress.withLock { $0.frames[slot.index] += 1 }
            if slot.result.firstFrameMilliseconds == nil, let posted = slot.postedAt {
                slot.result.firstFrameMilliseconds = (now - posted).millisecondsDouble
            }
            if let report = slot.senderReport {
                // Both streams' RTP clocks run on rtcam's CLOCK_MONOTONIC (MediaPacketizer.rtpTimestamp).
                let ticks = Int64(Int32(bitPattern: report.rtp &- rtpTimestamp))
                let capture = report.monotonic - ticks * 1_000_000_000 / 90_000
                let latency = Double(Int64(now.nanoseconds) - capture) / 1e6
                if slot.result.latencies.count < 100_000 { slot.result.latencies.append(Float(latency)) }
            }
        case let .senderReport(ssrc, ntpTimestamp, rtpTimestamp):
            if ssrc == slot.videoSSRC {
                let monotonic = Int64(NTPTime(value: ntpTimestamp).nanosecondsSince1900) - Int64(ntpAtMonotonicZero)
                slot.senderReport = (monotonic, rtpTimestamp)
            }
        case let .failed(reason):
            slot.result.failure = reason
            settle(slot, failure: reason)
        case .closed:
            if slot.result.failure == nil { slot.result.failure = "closed by rtcam" }
        case .audioFrame, .applicationData:
            break
        }
    }

    private func difference(_ end: ViewerCounters, _ start: ViewerCounters) -> ViewerCounters {
        var d = ViewerCounters()
        d.videoPacketsReceived = end.videoPacketsReceived - start.videoPacketsReceived
        d.retransmissionsReceived = end.retransmissionsReceived - start.retransmissionsReceived
        d.audioPacketsReceived = end.audioPacketsReceived - start.audioPacketsReceived
        d.nackPacketsSent = end.nackPacketsSent - start.nackPacketsSent
        d.sequenceNumbersNACKed = end.sequenceNumbersNACKed - start.sequenceNumbersNACKed
        d.accessUnitsReceived = end.accessUnitsReceived - start.accessUnitsReceived
        d.accessUnitsDropped = end.accessUnitsDropped - start.accessUnitsDropped
        d.holesSkipped = end.holesSkipped - start.holesSkipped
        d.keyframeRequestsSent = end.keyframeRequestsSent - start.keyframeRequestsSent
        d.srtpFailures = end.srtpFailures - start.srtpFailures
        return d
    }
}
