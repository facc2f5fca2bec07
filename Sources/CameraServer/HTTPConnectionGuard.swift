import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import RTCBase

/// What one host on the network may hold of the HTTP(S) listeners (issue 20: a slowloris of 1,100
/// connections from one address took the camera away from everyone).
struct HTTPLimits: Sendable, Equatable {
    /// A request, from its first byte (or from the connection's start) to its end, must arrive within this.
    var requestTimeout: Duration = .seconds(10)
    /// A keep-alive connection with no request in progress is closed after this.
    var idleTimeout: Duration = .seconds(60)
    /// The request line and headers (NIOHTTP1's decoder limits; more is answered 400 and closed).
    var maximumHeaderBytes = 16 * 1024
    /// Connections open at once, both listeners together (the unit's LimitNOFILE is 4096).
    var maximumConnections = 512
    /// Connections one host may hold (an IPv4 address, an IPv6 /64: `hostLimitKey`; a browser opens
    /// about 6 per origin).
    var maximumConnectionsPerAddress = 32
    /// The last connections under `maximumConnections` go only to an address that holds fewer than
    /// `reservedForAddressesBelow`: many hosts together cannot keep a new viewer out either.
    var reservedConnections = 32
    var reservedForAddressesBelow = 2

    /// The most bytes before a request's head is parsed (the request line's URI included, which
    /// NIOHTTP1's header limits do not count). The body is HTTPHandler's to bound (413).
    var maximumHeadBytes: Int { maximumHeaderBytes + 8 * 1024 }
}

/// Counts the connections each address holds; decides whether a new one is taken. Pure (a value).
struct ConnectionAdmission: Equatable {
    var limits: HTTPLimits
    private(set) var total = 0
    private(set) var byAddress: [TransportAddress.IP?: Int] = [:]

    init(limits: HTTPLimits) {
        self.limits = limits
    }

    enum Decision: Equatable {
        case admit
        case tooManyFromAddress
        case full
    }

    /// Whether a connection from `address` may open; if so it is counted (give it back with `closed`).
    mutating func open(from address: TransportAddress.IP?) -> Decision {
        let address = address?.hostLimitKey
        let held = byAddress[address, default: 0]
        if held >= limits.maximumConnectionsPerAddress { return .tooManyFromAddress }
        if total >= limits.maximumConnections { return .full }
        if total >= limits.maximumConnections - limits.reservedConnections, held >= limits.reservedForAddressesBelow {
            return .full
        }
        total += 1
        byAddress[address] = held + 1
        return .admit
    }

    mutating func closed(from address: TransportAddress.IP?) {
        let address = address?.hostLimitKey
        guard let held = byAddress[address] else { return }
        total -= 1
        byAddress[address] = held > 1 ? held - 1 : nil
    }
}

/// What the HTTP listeners did (GET /api/status: "http").
struct HTTPConnectionCounters: Sendable, Equatable {
    var open = 0
    var accepted = 0
    var refusedPerAddress = 0
    var refusedFull = 0
    var requestTimeouts = 0
    var idleTimeouts = 0
    var requestsTooLarge = 0
}

/// The admission of both listeners, shared (their connections live on one event loop, but the status
/// is read from elsewhere: a lock).
final class HTTPConnectionLimiter: Sendable {
    let limits: HTTPLimits
    private let state: NIOLockedValueBox<(admission: ConnectionAdmission, counters: HTTPConnectionCounters)>

    init(limits: HTTPLimits = HTTPLimits()) {
        self.limits = limits
        state = NIOLockedValueBox((ConnectionAdmission(limits: limits), HTTPConnectionCounters()))
    }

    var counters: HTTPConnectionCounters { state.withLockedValue { $0.counters } }

    func open(from address: TransportAddress.IP?) -> Bool {
        state.withLockedValue { state in
            switch state.admission.open(from: address) {
            case .admit:
                state.counters.accepted += 1
                state.counters.open = state.admission.total
                return true
            case .tooManyFromAddress:
                state.counters.refusedPerAddress += 1
                return false
            case .full:
                state.counters.refusedFull += 1
                return false
            }
        }
    }

    func closed(from address: TransportAddress.IP?) {
        state.withLockedValue { state in
            state.admission.closed(from: address)
            state.counters.open = state.admission.total
        }
    }

    func count(_ update: @Sendable (inout HTTPConnectionCounters) -> Void) {
        state.withLockedValue { update(&$0.counters) }
    }
}

/// How far the request on a connection is, told by HTTPHandler (user outbound events, which pass
/// NIOHTTP1's and the TLS handler down to the guard at the front of the pipeline).
enum HTTPRequestProgress: Sendable {
    /// The request line and headers were parsed: no byte limit from here (HTTPHandler bounds the body).
    case headReceived
    /// The request's end arrived: no deadline while the router answers.
    case requestReceived
    /// The response went out and the connection stays open: idle until the next request's first byte.
    case responseSent
}

/// The first handler of every HTTP(S) connection: admits it (HTTPConnectionLimiter), closes it when a
/// request takes longer than `requestTimeout` from its first byte (from the connection's start for the
/// first request, so a TLS handshake counts too), when it idles longer than `idleTimeout` between
/// requests, or when a request's head runs past `maximumHeadBytes`.
final class HTTPConnectionGuard: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case idle
        /// Before the head is parsed: the bytes so far.
        case reading(bytes: Int)
        case readingBody
        case answering
        case closed
    }

    private let limiter: HTTPConnectionLimiter
    private var admittedAddress: TransportAddress.IP??
    private var state = State.reading(bytes: 0)
    private var deadline: Scheduled<Void>?

    init(limiter: HTTPConnectionLimiter) {
        self.limiter = limiter
    }

    func channelActive(context: ChannelHandlerContext) {
        let address = context.remoteAddress.flatMap(TransportAddress.init)?.ip
        guard limiter.open(from: address) else {
            state = .closed
            context.close(promise: nil)
            return
        }
        admittedAddress = .some(address)
        arm(limiter.limits.requestTimeout, context: context, idle: false)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        state = .closed
        deadline?.cancel()
        deadline = nil
        if let admittedAddress {
            limiter.closed(from: admittedAddress)
            self.admittedAddress = nil
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let count = unwrapInboundIn(data).readableBytes
        switch state {
        case .closed:
            return
        case .idle:
            state = .reading(bytes: count)
            arm(limiter.limits.requestTimeout, context: context, idle: false)
        case let .reading(bytes):
            state = .reading(bytes: bytes + count)
        case .readingBody:
            break
        case .answering:
            break  // a pipelined request: HTTPHandler answers in order
        }
        if case let .reading(bytes) = state, bytes > limiter.limits.maximumHeadBytes {
            limiter.count { $0.requestsTooLarge += 1 }
            close(context: context)
            return
        }
        context.fireChannelRead(data)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let progress = event as? HTTPRequestProgress else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        switch (progress, state) {
        case (_, .closed):
            break
        case (.headReceived, .reading):
            state = .readingBody
        case (.headReceived, _):
            break
        case (.requestReceived, _):
            state = .answering
            deadline?.cancel()
            deadline = nil
        case (.responseSent, _):
            state = .idle
            arm(limiter.limits.idleTimeout, context: context, idle: true)
        }
        promise?.succeed()
    }

    private func arm(_ timeout: Duration, context: ChannelHandlerContext, idle: Bool) {
        deadline?.cancel()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: .nanoseconds(timeout.nanosecondsClamped)) {
            let (handler, context) = loopBound.value
            handler.deadline = nil
            handler.limiter.count { idle ? ($0.idleTimeouts += 1) : ($0.requestTimeouts += 1) }
            handler.close(context: context)
        }
    }

    private func close(context: ChannelHandlerContext) {
        guard case .closed = state else {
            state = .closed
            deadline?.cancel()
            deadline = nil
            context.close(promise: nil)
            return
        }
    }
}

/// The pipeline of one HTTP connection (both listeners): the guard first, then TLS on the HTTPS
/// listener, NIOHTTP1 with rtcam's decoder limits, and the handler.
enum HTTPServerPipeline {
    static func configure(_ channel: Channel, router: HTTPRouting, limiter: HTTPConnectionLimiter,
                          tls: (() throws -> ChannelHandler)? = nil) throws {
        let operations = channel.pipeline.syncOperations
        try operations.addHandler(HTTPConnectionGuard(limiter: limiter))
        if let tls { try operations.addHandler(tls()) }
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderFieldSize = limiter.limits.maximumHeaderBytes
        decoderLimits.maxHeaderListSize = limiter.limits.maximumHeaderBytes
        decoderLimits.maxHeaderFieldCount = 128
        try operations.configureHTTPServerPipeline(withErrorHandling: true,
                                                   withEncoderConfiguration: HTTPResponseEncoder.Configuration(),
                                                   withDecoderLimitConfiguration: decoderLimits)
        try operations.addHandler(HTTPHandler(router: router, isSecureTransport: tls != nil))
    }
}
