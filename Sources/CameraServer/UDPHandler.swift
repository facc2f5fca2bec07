import NIOCore
import RTCBase

/// The one UDP port every viewer shares (default 8189): datagrams go to `receive` (the hub, which
/// demultiplexes them by ICE ufrag and remote address).
final class UDPHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let receive: @Sendable ([UInt8], TransportAddress) -> Void
    /// Remote addresses converted once: a viewer sends from one address for the whole session.
    private var addressCache: [SocketAddress: TransportAddress] = [:]

    init(receive: @escaping @Sendable ([UInt8], TransportAddress) -> Void) { self.receive = receive }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let address: TransportAddress
        if let cached = addressCache[envelope.remoteAddress] {
            address = cached
        } else {
            guard let converted = TransportAddress(envelope.remoteAddress) else { return }
            if addressCache.count > 4096 { addressCache.removeAll(keepingCapacity: true) }
            addressCache[envelope.remoteAddress] = converted
            address = converted
        }
        let bytes = envelope.data.getBytes(at: envelope.data.readerIndex, length: envelope.data.readableBytes) ?? []
        receive(bytes, address)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // ICMP port unreachable from a viewer that went away surfaces here; the socket stays open.
    }
}
