import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RTCBase
import WebRTCSession

/// What the ICE-TCP listener lets one host and everyone hold (issue 20's rule: no address may take
/// the camera from the others), and how much a slow connection may queue.
struct ICETCPLimits: Sendable, Equatable {
    /// Connections open at once, and from one IP address (a browser opens one per candidate pair).
    var maximumConnections = 64
    var maximumConnectionsPerAddress = 4
    /// A connection whose path no session has verified (a valid check answered) by then is closed,
    /// and so is one no session uses any more (checked again every `checkInterval`).
    var checkInterval: Duration = .seconds(10)
    /// Bytes written but not yet taken by the kernel, per connection: beyond this, media (RTP) is
    /// dropped (a slow TCP viewer loses video; the hub never waits); ICE, DTLS and RTCP may use
    /// twice as much, then they are dropped too.
    var maximumQueuedBytes = 256 * 1024
    /// The largest frame a viewer may send (RFC 4571 allows 64 KiB; nothing a browser sends is near).
    var maximumFrameLength = 16 * 1024
}

/// Whether a framed datagram may still be queued on a connection with `queued` bytes waiting.
/// Media goes first when the connection is slow; what keeps the session alive goes last.
struct ICETCPSendBudget: Sendable, Equatable {
    var limit: Int

    func admits(_ datagram: some Collection<UInt8>, queued: Int) -> Bool {
        let size = datagram.count + 2
        let isMedia: Bool
        if let first = datagram.first, (128...191).contains(first), datagram.count >= 2 {
            let second = datagram[datagram.index(after: datagram.startIndex)]
            isMedia = !(192...223).contains(second)   // RTP, not RTCP (RFC 5761 §4)
        } else {
            isMedia = false
        }
        return queued + size <= (isMedia ? limit : 2 * limit)
    }
}

/// What the ICE-TCP listener did since start (GET /api/status "iceTCP").
struct ICETCPCounters: Sendable, Equatable {
    var port = 0
    var connectionsOpen = 0
    var connectionsAccepted = 0
    var refusedPerAddress = 0
    var refusedFull = 0
    /// Closed because no session verified (or still used) the connection's path in time.
    var closedUnused = 0
    /// Closed because the viewer's framing was broken (a frame longer than the bound).
    var framingErrors = 0
    var framesReceived = 0
    var framesSent = 0
    /// Frames not queued: the connection was slow (its queue full) or already gone.
    var framesDropped = 0
}

/// rtcam's passive ICE-TCP candidate (RFC 6544): one TCP listener (by default on the media port's
/// number), every accepted connection a path of its own (`TransportPath.tcp(remote)`). Bytes read are
/// cut into datagrams (RFC 4571) and given to the hub as if they came from the UDP socket; the hub's
/// sends on a TCP path are framed and written here, from whichever thread makes them (the encoders'
/// too): written without waiting, up to a bounded queue per connection, then dropped.
final class ICETCPListener: @unchecked Sendable {
    typealias Receive = @Sendable (_ datagram: [UInt8], _ path: TransportPath) -> Void
    typealias InUse = @Sendable (_ path: TransportPath) -> Bool

    private let limits: ICETCPLimits
    private let logger: Logger
    private let receive: Receive
    private let inUse: InUse
    private let closed: @Sendable (_ path: TransportPath) -> Void
    private let lock = NIOLock()
    private var admission: ConnectionAdmission
    private var connections: [TransportAddress: Connection] = [:]
    private var counters = ICETCPCounters()
    private var serverChannel: Channel?

    final class Connection {
        let channel: Channel
        var queuedBytes = 0
        init(channel: Channel) { self.channel = channel }
    }

    /// `receive`: a datagram from a connection (the hub's input); `inUse`: whether a session verified
    /// and still holds the path; `closed`: a connection ended (the hub tells the session).
    init(limits: ICETCPLimits = ICETCPLimits(), logger: Logger, receive: @escaping Receive, inUse: @escaping InUse,
         closed: @escaping @Sendable (TransportPath) -> Void) {
        self.limits = limits
        self.logger = logger
        self.receive = receive
        self.inUse = inUse
        self.closed = closed
        admission = ConnectionAdmission(limits: HTTPLimits(maximumConnections: limits.maximumConnections,
                                                           maximumConnectionsPerAddress: limits.maximumConnectionsPerAddress,
                                                           reservedConnections: 0, reservedForAddressesBelow: 0))
    }

    var status: ICETCPCounters { lock.withLock { counters } }

    /// Listens on `host`:`port` (0: a port the kernel picks); returns the port.
    @discardableResult
    func start(group: EventLoopGroup, host: String, port: Int) throws -> Int {
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .dualStack(host == "::")
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try accept(channel) }
            }
            .bind(host: host, port: port).wait()
        let bound = channel.localAddress?.port ?? port
        lock.withLock {
            serverChannel = channel
            counters.port = bound
        }
        return bound
    }

    func close() {
        let (server, open) = lock.withLock { () -> (Channel?, [Channel]) in
            defer { serverChannel = nil }
            return (serverChannel, connections.values.map(\.channel))
        }
        server?.close(promise: nil)
        for channel in open { channel.close(promise: nil) }
    }

    // MARK: - Connections (on the event loop)

    private func accept(_ channel: Channel) throws {
        guard let socketAddress = channel.remoteAddress, let remote = TransportAddress(socketAddress) else {
            channel.close(promise: nil)
            return
        }
        let decision = lock.withLock { () -> ConnectionAdmission.Decision in
            let decision = admission.open(from: remote.ip)
            switch decision {
            case .admit:
                connections[remote] = Connection(channel: channel)
                counters.connectionsAccepted += 1
                counters.connectionsOpen = connections.count
            case .tooManyFromAddress: counters.refusedPerAddress += 1
            case .full: counters.refusedFull += 1
            }
            return decision
        }
        guard decision == .admit else {
            channel.close(promise: nil)
            return
        }
        let path = TransportPath.tcp(remote)
        channel.closeFuture.whenComplete { [self] _ in
            lock.withLock {
                if connections[remote]?.channel === channel {
                    connections[remote] = nil
                    admission.closed(from: remote.ip)
                    counters.connectionsOpen = connections.count
                }
            }
            // On a later turn of the loop: a write that fails inside the hub's send (its lock held)
            // closes the channel at once, and the hub's lock is not reentrant.
            channel.eventLoop.execute { self.closed(path) }
        }
        // Issue 20: a connection must carry a valid check within the interval, and stay in use.
        let check = channel.eventLoop.scheduleRepeatedTask(initialDelay: timeAmount(limits.checkInterval),
                                                           delay: timeAmount(limits.checkInterval)) { [self] task in
            guard !inUse(path) else { return }
            lock.withLock { counters.closedUnused += 1 }
            task.cancel()
            channel.close(promise: nil)
        }
        channel.closeFuture.whenComplete { _ in check.cancel() }
        try channel.pipeline.syncOperations.addHandler(
            ICETCPConnectionHandler(remote: remote, deframer: LengthPrefixedDeframer(maximumFrameLength: limits.maximumFrameLength),
                                    listener: self))
    }

    fileprivate func received(_ frames: [[UInt8]], from remote: TransportAddress) {
        lock.withLock { counters.framesReceived += frames.count }
        for frame in frames { receive(frame, .tcp(remote)) }
    }

    fileprivate func framingFailed(_ error: LengthPrefixedFramingError, from remote: TransportAddress) {
        lock.withLock { counters.framingErrors += 1 }
        logger.info("ICE-TCP connection from \(remote) closed: \(error)")
    }

    // MARK: - Sending (any thread; called with the hub's lock held)

    /// The batch's datagrams, framed, on the connection from `remote`; dropped when it is gone or
    /// its queue is full (ICETCPSendBudget). Never waits.
    func send(_ batch: DatagramBatch, to remote: TransportAddress) {
        guard !batch.isEmpty else { return }
        lock.lock()
        guard let connection = connections[remote] else {
            counters.framesDropped += batch.count
            lock.unlock()
            return
        }
        let budget = ICETCPSendBudget(limit: limits.maximumQueuedBytes)
        var stream: [UInt8] = []
        var framed = 0
        for index in 0 ..< batch.count {
            let datagram = batch[index]
            guard budget.admits(datagram, queued: connection.queuedBytes + stream.count),
                  LengthPrefixedFraming.append(datagram, to: &stream) else {
                counters.framesDropped += 1
                continue
            }
            framed += 1
        }
        connection.queuedBytes += stream.count
        counters.framesSent += framed
        lock.unlock()
        guard !stream.isEmpty else { return }
        let channel = connection.channel
        let bytes = stream.count
        let buffer = channel.allocator.buffer(bytes: stream)
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenComplete { [self] _ in
            lock.withLock { connection.queuedBytes -= bytes }
        }
        channel.writeAndFlush(buffer, promise: written)
    }

    private func timeAmount(_ duration: Duration) -> TimeAmount { .nanoseconds(duration.nanosecondsClamped) }
}

/// One accepted connection's reading side: bytes to frames to the hub; a broken frame closes it.
private final class ICETCPConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let remote: TransportAddress
    var deframer: LengthPrefixedDeframer
    let listener: ICETCPListener

    init(remote: TransportAddress, deframer: LengthPrefixedDeframer, listener: ICETCPListener) {
        self.remote = remote
        self.deframer = deframer
        self.listener = listener
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        do {
            let frames = try deframer.append(buffer.readableBytesView)
            if !frames.isEmpty { listener.received(frames, from: remote) }
        } catch {
            listener.framingFailed(error, from: remote)
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
