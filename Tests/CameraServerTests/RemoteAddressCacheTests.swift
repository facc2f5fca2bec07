import NIOCore
import RTCBase
import Testing
@testable import CameraServer

/// The media socket's cache of converted remote addresses (issue 20): viewers that joined and left
/// must not stay in it, the ones still sending must.
@Suite struct RemoteAddressCacheTests {
    private func address(port: Int) throws -> SocketAddress {
        try SocketAddress(ipAddress: "::ffff:127.0.0.1", port: port)
    }

    @Test func anHourOfViewersJoiningHoldsAtMostTwoGenerations() throws {
        var cache = RemoteAddressCache(generationSize: 128)
        // 3,600 viewers, each from its own port, each sending a few datagrams before it leaves.
        for port in 20_000 ..< 23_600 {
            for _ in 0 ..< 3 {
                let converted = cache.transportAddress(of: try address(port: port))
                #expect(converted == TransportAddress(ip: .v4(127, 0, 0, 1), port: UInt16(port)))
            }
            #expect(cache.count <= 256)
        }
        #expect(cache.count > 128)
    }

    @Test func aViewerThatKeepsSendingStaysThroughTheChurn() throws {
        var cache = RemoteAddressCache(generationSize: 4)
        let steady = try address(port: 5000)
        _ = cache.transportAddress(of: steady)
        for port in 6000 ..< 6100 {
            _ = cache.transportAddress(of: try address(port: port))
            if port % 3 == 0 { _ = cache.transportAddress(of: steady) }
            #expect(cache.count <= 8)
        }
        // Found in either generation without a conversion: still there after 100 others came and went.
        #expect(cache.contains(steady))
        #expect(!cache.contains(try address(port: 6000)))
    }
}
