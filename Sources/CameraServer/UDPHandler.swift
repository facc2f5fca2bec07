import NIOCore
import RTCBase

/// The one UDP port every viewer shares (default 8189): datagrams go to `receive` (the hub, which
/// demultiplexes them by ICE ufrag and remote address).
final class UDPHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let receive: @Sendable ([UInt8], TransportAddress) -> Void
    private var addresses = RemoteAddressCache()

    init(receive: @escaping @Sendable ([UInt8], TransportAddress) -> Void) { self.receive = receive }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let address = addresses.transportAddress(of: envelope.remoteAddress) else { return }
        let bytes = envelope.data.getBytes(at: envelope.data.readerIndex, length: envelope.data.readableBytes) ?? []
        receive(bytes, address)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // ICMP port unreachable from a viewer that went away surfaces here; the socket stays open.
    }
}

/// Remote addresses converted once while their viewer sends (on the dual-stack socket every address
/// is an IPv6 one, whose conversion allocates). The cache is not told when a session ends, and
/// every joining viewer brings a new port, so it keeps two generations of at most `generationSize`
/// addresses each: when the current one is full it becomes the previous one and the one before is
/// dropped; an address found in the previous generation moves to the current one. The addresses
/// in use stay converted, and those of viewers that left go within two generations (issue 20: the
/// old cache, emptied only at 4,096 addresses, held ~0.2 KB for every viewer that had joined,
/// 0.75 MB over an hour of viewers joining and leaving every second).
struct RemoteAddressCache {
    let generationSize: Int
    private var current: [SocketAddress: TransportAddress] = [:]
    private var previous: [SocketAddress: TransportAddress] = [:]

    init(generationSize: Int = 128) {
        self.generationSize = max(1, generationSize)
    }

    /// Addresses held now (both generations).
    var count: Int { current.count + previous.count }

    /// True while `address` is held (either generation).
    func contains(_ address: SocketAddress) -> Bool { current[address] != nil || previous[address] != nil }

    /// The address as the hub knows it, nil for a family other than IPv4 and IPv6.
    mutating func transportAddress(of address: SocketAddress) -> TransportAddress? {
        if let found = current[address] { return found }
        guard let converted = previous[address] ?? TransportAddress(address) else { return nil }
        if current.count >= generationSize {
            previous = current
            current = [:]
            current.reserveCapacity(generationSize)
        }
        current[address] = converted
        return converted
    }
}
