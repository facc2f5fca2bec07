import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RTCBase

/// The reading side of the media socket: a NIO datagram channel on the socket's own duplicate
/// descriptor, handing each datagram to `receive` (the hub) on the event loop. NIO closes a datagram
/// channel on a read error it does not know as per-datagram; a new channel is then opened on the same
/// socket, so viewers keep their sessions and lose only what arrived meanwhile.
final class MediaSocketReader: @unchecked Sendable {
    typealias Bind = @Sendable (_ descriptor: CInt, _ handler: @escaping @Sendable () -> UDPHandler) -> EventLoopFuture<Channel>

    private let socket: MediaSocket
    private let loop: EventLoop
    private let logger: Logger
    private let receive: @Sendable ([UInt8], TransportAddress) -> Void
    private let bind: Bind
    private let lock = NIOLock()
    private var channel: Channel?
    private var stopping = false
    private var reopens = 0

    /// `bind` registers a channel for the descriptor (tests wrap the default to see the channels).
    init(socket: MediaSocket, group: EventLoopGroup, logger: Logger,
         receive: @escaping @Sendable ([UInt8], TransportAddress) -> Void, bind: Bind? = nil) {
        self.socket = socket
        loop = group.next()
        self.logger = logger
        self.receive = receive
        self.bind = bind ?? { descriptor, handler in
            DatagramBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(handler())
                    }
                }
                .withBoundSocket(descriptor)
        }
    }

    /// How many times the reading channel was replaced since start.
    var reopenCount: Int { lock.withLock { reopens } }

    func start() throws {
        let channel = try open().wait()
        lock.withLock { attach(channel) }
    }

    private func open() -> EventLoopFuture<Channel> {
        let descriptor: CInt
        do {
            descriptor = try socket.receivingDescriptor()
        } catch {
            return loop.makeFailedFuture(error)
        }
        let receive = self.receive
        return bind(descriptor) { UDPHandler(receive: receive) }
    }

    /// With the lock held.
    private func attach(_ channel: Channel) {
        self.channel = channel
        channel.closeFuture.whenComplete { [self] _ in
            loop.execute { self.closed(channel) }
        }
    }

    private func closed(_ channel: Channel) {
        // The new channel's future may complete at once, on this thread: its callback takes the
        // lock again, so it is attached after the lock is released.
        let replacement: EventLoopFuture<Channel>? = lock.withLock {
            guard !stopping, self.channel === channel || self.channel == nil else { return nil }
            self.channel = nil
            logger.error("the media socket's reading channel closed while serving; opening it again (viewers stay connected)")
            return open()
        }
        replacement?.hop(to: loop).whenComplete { [self] result in
            lock.withLock {
                switch result {
                case let .success(replacement):
                    guard !stopping else { replacement.close(promise: nil); return }
                    reopens += 1
                    attach(replacement)
                    logger.notice("media socket read again (\(reopens) times since start)")
                case let .failure(error):
                    logger.critical("could not read the media socket again: \(error); retrying in 1 s")
                    loop.scheduleTask(in: .seconds(1)) { [self] in closed(channel) }
                }
            }
        }
    }

    /// Stops reading and closes the socket (shutdown, after the hub closed the sessions).
    func close() -> EventLoopFuture<Void> {
        lock.withLock {
            stopping = true
            socket.close()
            guard let channel else { return loop.makeSucceededVoidFuture() }
            return channel.close()
        }
    }
}
