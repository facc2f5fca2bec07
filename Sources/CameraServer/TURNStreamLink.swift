import DTLS
import NIOCore
import NIOPosix
import RTCBase
import TURN

/// The TCP (`turn:…?transport=tcp`) or TLS (`turns:`) connection to the TURN server that carries
/// the hub's allocation when the camera's network lets no UDP out (issue 19; RFC 8656 §3.1: only
/// the leg to the server is TCP, the relay toward peers stays UDP). State only, guarded by the
/// hub's lock; the hub does the I/O (StreamHub's "relay stream" functions). The allocation lives
/// as long as the connection: a new connection gets a new allocation.
final class TURNStreamLink: @unchecked Sendable {  // guarded by the hub's lock
    enum Phase: String {
        /// Connecting (TCP), or waiting to connect again after a failure.
        case connecting
        /// TCP is up, the TLS handshake is under way.
        case handshaking
        /// Messages flow: the TURN client is driven.
        case ready
        case waiting
    }

    let transport: TURNServerSpelling.Transport
    /// The trusted CAs for `turns:` (nil for TCP, or when they could not be read: `problem` says why).
    let tlsContext: TLSClientContext?
    /// Which connection is current: reads and closes of an older one are ignored.
    var generation = 0
    var phase = Phase.connecting
    var channel: Channel?
    var tls: TLSConnection?
    var framer = TURNStreamFramer()
    /// Bytes for the socket (ciphertext over TLS) not yet handed to the channel.
    var outbound: [UInt8] = []
    /// `outbound` plus the bytes the channel has not written yet: what `maximumQueuedBytes` bounds.
    var queuedBytes = 0
    var flushScheduled = false
    /// Connections that failed in a row (the reconnect backoff's exponent); 0 once allocated.
    var failuresInARow = 0
    /// The last failure (log and /api/status `turn.error`); nil once an allocation is made.
    var problem: String?
    var connectionsMade = 0
    var bytesDropped = 0

    /// A stalled server connection drops media beyond this (about half a second of a 4 Mbit/s
    /// stream), never blocks the hub.
    static let maximumQueuedBytes = 256 * 1024
    static let firstReconnectDelay: Duration = .seconds(1)
    static let maximumReconnectDelay: Duration = .seconds(60)

    init(transport: TURNServerSpelling.Transport, tlsContext: TLSClientContext?, problem: String?) {
        self.transport = transport
        self.tlsContext = tlsContext
        self.problem = problem
    }

    /// The wait before the next connection: 1 s, doubled per failure in a row, at most a minute.
    var reconnectDelay: Duration {
        var delay = Self.firstReconnectDelay
        for _ in 0 ..< min(failuresInARow, 16) where delay < Self.maximumReconnectDelay { delay = delay * 2 }
        return min(delay, Self.maximumReconnectDelay)
    }

    /// Queues `bytes` (plaintext TURN messages) for the server; false when dropped (not ready, or
    /// the queue is full).
    func enqueue(_ bytes: [UInt8]) -> Bool {
        guard phase == .ready else { return false }   // set only while a connection is up
        guard queuedBytes + bytes.count <= Self.maximumQueuedBytes else {
            bytesDropped += bytes.count
            return false
        }
        if let tls {
            tls.send(bytes)
            queueCiphertext(tls.takeTransmit())
        } else {
            outbound.append(contentsOf: bytes)
            queuedBytes += bytes.count
        }
        return true
    }

    func queueCiphertext(_ bytes: [UInt8]) {
        outbound.append(contentsOf: bytes)
        queuedBytes += bytes.count
    }

    /// Forgets the connection (closed or failed): nothing is queued any more.
    func reset() {
        channel = nil
        tls = nil
        framer = TURNStreamFramer()
        outbound = []
        queuedBytes = 0
        flushScheduled = false
    }
}

/// Reads of the connection to the TURN server, handed to the hub with the connection's generation.
final class TURNStreamHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    let generation: Int
    weak var hub: StreamHub?

    init(generation: Int, hub: StreamHub) {
        self.generation = generation
        self.hub = hub
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        hub?.relayStreamRead(Array(buffer.readableBytesView), generation: generation)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // On a later turn of the loop: the hub closes the channel with its lock held (a failed
        // handshake, a broken stream), and that lock is not reentrant.
        let generation = generation
        context.eventLoop.execute { [weak hub] in
            hub?.relayStreamClosed(generation: generation, reason: "the server closed the connection")
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
