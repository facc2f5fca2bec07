import NIOCore
import NIOHTTP1

/// Routes a complete request to a response; runs on the hub's event loop. Slow work (password
/// hashing) completes the future later from a thread pool.
protocol HTTPRouting: AnyObject {
    func respond(to request: HTTPRequest, remote: SocketAddress?) -> EventLoopFuture<HTTPResponse>
}

/// HTTP/1.1 with NIOHTTP1: gathers the body (up to `maximumBodySize`, else 413) and writes the
/// router's answer. Every response carries `X-Content-Type-Options: nosniff` and a
/// Content-Security-Policy (the router's for pages, else one that allows nothing).
final class HTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let maximumBodySize = 64 * 1024

    private let router: HTTPRouting
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyTooLarge = false
    private let isSecureTransport: Bool

    init(router: HTTPRouting, isSecureTransport: Bool = false) {
        self.router = router
        self.isSecureTransport = isSecureTransport
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(requestHead):
            context.triggerUserOutboundEvent(HTTPRequestProgress.headReceived, promise: nil)
            head = requestHead
            body.removeAll(keepingCapacity: true)
            bodyTooLarge = false
            if let length = requestHead.headers.first(name: "content-length").flatMap({ Int($0) }),
               length > Self.maximumBodySize {
                bodyTooLarge = true
            }
        case var .body(buffer):
            guard !bodyTooLarge else { return }
            if body.count + buffer.readableBytes > Self.maximumBodySize {
                bodyTooLarge = true
                body.removeAll()
                return
            }
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let head else { return }
            self.head = nil
            context.triggerUserOutboundEvent(HTTPRequestProgress.requestReceived, promise: nil)
            if bodyTooLarge {
                write(.text(.payloadTooLarge, "request body larger than \(Self.maximumBodySize) bytes"), for: head,
                      close: true, context: context)
                return
            }
            let (path, query) = HTTPRequest.split(uri: head.uri)
            let request = HTTPRequest(method: head.method, path: path, query: query, headers: head.headers, body: body,
                                      isSecureTransport: isSecureTransport, remoteAddress: context.remoteAddress)
            let future = router.respond(to: request, remote: context.remoteAddress)
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            future.whenComplete { result in
                let (handler, context) = loopBound.value
                let response = (try? result.get()) ?? .text(.internalServerError, "internal error")
                handler.write(response, for: head, close: false, context: context)
            }
        }
    }

    private func write(_ response: HTTPResponse, for request: HTTPRequestHead, close: Bool, context: ChannelHandlerContext) {
        HTTPResponseCounts.shared.count(response.status.code)
        var headers = HTTPHeaders()
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        if let stream = response.stream, request.method != .HEAD {
            writeStreaming(stream, head: headers, for: request, context: context)
            return
        }
        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
        headers.replaceOrAdd(name: "X-Content-Type-Options", value: "nosniff")
        if !headers.contains(name: "Content-Security-Policy") {
            headers.add(name: "Content-Security-Policy", value: ContentSecurityPolicy.other)
        }
        let keepAlive = request.isKeepAlive && !close
        headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: response.status,
                                                             headers: headers))), promise: nil)
        if !response.body.isEmpty, request.method != .HEAD {
            var buffer = context.channel.allocator.buffer(capacity: response.body.count)
            buffer.writeBytes(response.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let promise: EventLoopPromise<Void>? = keepAlive ? nil : context.eventLoop.makePromise()
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
        if keepAlive { context.triggerUserOutboundEvent(HTTPRequestProgress.responseSent, promise: nil) }
        if let promise {
            let channel = context.channel
            promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// The head of a streaming response, then the stream's own writer; the connection ends with it.
    private func writeStreaming(_ stream: HTTPStreamingBody, head: HTTPHeaders, for request: HTTPRequestHead,
                                context: ChannelHandlerContext) {
        var headers = head
        headers.replaceOrAdd(name: "X-Content-Type-Options", value: "nosniff")
        headers.replaceOrAdd(name: "Content-Security-Policy", value: ContentSecurityPolicy.other)
        headers.replaceOrAdd(name: "Connection", value: "close")
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: .ok, headers: headers))),
                              promise: nil)
        stream.start(HTTPStreamWriter(channel: context.channel))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
