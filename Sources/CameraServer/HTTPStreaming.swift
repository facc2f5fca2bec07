import NIOCore
import NIOHTTP1

/// A response whose body is written over time (GET /stream.mjpg): HTTPHandler writes the head (no
/// Content-Length: chunked on HTTP/1.1), then calls `start` with a writer. The connection is not
/// reused; it closes when the client goes or the writer finishes.
final class HTTPStreamingBody: Sendable {
    let start: @Sendable (HTTPStreamWriter) -> Void

    init(start: @escaping @Sendable (HTTPStreamWriter) -> Void) {
        self.start = start
    }
}

/// Writes a streaming body from any thread (the video thread, for MJPEG). A client that reads too
/// slowly is skipped, not queued for: a part is dropped while the channel is over its high-water
/// mark (freshest frame wins, like capture).
final class HTTPStreamWriter: Sendable {
    private let channel: Channel

    init(channel: Channel) {
        self.channel = channel
    }

    /// Fires when the client has gone (or the stream was finished).
    var closed: EventLoopFuture<Void> { channel.closeFuture }

    /// Queues `bytes` unless the client is behind; returns false once the connection is closed.
    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool {
        guard channel.isActive else { return false }
        guard channel.isWritable else { return true }   // behind: this part is skipped
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buffer)), promise: nil)
        return true
    }

    /// Ends the body and closes the connection.
    func finish() {
        let channel = self.channel
        channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
    }
}
