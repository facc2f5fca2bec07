import DTLS
import Logging
import NIOCore

/// TLS under the HTTP pipeline of an HTTPS connection: ciphertext from the socket goes into the
/// connection's mbedTLS context (DTLS.TLSConnection, server end, sans-IO), plaintext comes up to
/// NIOHTTP1, and what HTTP writes is encrypted on its way down. Runs on the event loop.
final class TLSHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let connection: TLSConnection
    private let logger: Logger
    /// Writes made before the handshake finished: their promises complete when the bytes go out.
    private var waitingPromises: [EventLoopPromise<Void>] = []
    private var closing = false

    init(context: TLSServerContext, logger: Logger) throws {
        connection = try TLSConnection(.server(context))
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        connection.receive(Array(buffer.readableBytesView))
        transmit(context: context, flush: true)
        let plaintext = connection.takePlaintext()
        if !plaintext.isEmpty {
            context.fireChannelRead(wrapInboundOut(context.channel.allocator.buffer(bytes: plaintext)))
        }
        handleEvents(context: context)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let plaintext = unwrapOutboundIn(data)
        guard plaintext.readableBytes > 0 else {
            // Nothing to encrypt (NIOHTTP1's end of a response with a Content-Length): it goes out with
            // what was written before it.
            if let promise {
                if waitingPromises.isEmpty { promise.succeed() } else { waitingPromises.append(promise) }
            }
            return
        }
        connection.send(Array(plaintext.readableBytesView))
        if let promise { waitingPromises.append(promise) }
        transmit(context: context, flush: false)
    }

    func flush(context: ChannelHandlerContext) {
        context.flush()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all, !closing {
            closing = true
            connection.close()   // close_notify (RFC 5246 §7.2.1)
            transmit(context: context, flush: true)
        }
        context.close(mode: mode, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failWaitingPromises(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    /// Writes what the connection made; the writes' promises complete with the write that carries them.
    private func transmit(context: ChannelHandlerContext, flush: Bool) {
        let bytes = connection.takeTransmit()
        guard !bytes.isEmpty else { return }
        let promises = waitingPromises
        waitingPromises.removeAll()
        let written = context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)))
        for promise in promises { written.cascade(to: promise) }
        if flush { context.flush() }
    }

    private func handleEvents(context: ChannelHandlerContext) {
        for event in connection.takeEvents() {
            switch event {
            case let .established(version, suite):
                logger.trace("HTTPS: \(version) \(suite) with \(context.remoteAddress?.description ?? "?")")
            case .closed:
                context.close(promise: nil)
            case let .failed(error):
                // A scanner, a client that does not trust the certificate, plain HTTP on this port.
                logger.debug("HTTPS connection from \(context.remoteAddress?.description ?? "?") failed: \(error)")
                transmit(context: context, flush: true)   // the alert, if one was made
                failWaitingPromises(ChannelError.ioOnClosedChannel)
                context.close(promise: nil)
            }
        }
    }

    private func failWaitingPromises(_ error: Error) {
        let promises = waitingPromises
        waitingPromises.removeAll()
        for promise in promises { promise.fail(error) }
    }
}
