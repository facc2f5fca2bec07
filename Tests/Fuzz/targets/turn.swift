import RTCBase
import STUN
import TURN

// What the TURN server's address can send rtcam's client (RFC 8656): the input is a run of messages,
// each after a 2-byte length. A STUN-looking one gets the transaction ID of the client's latest
// request patched in (all a spoofer on the UDP path needs), so the 401/438/error and success
// paths are reached; Data indications and ChannelData go in as they are. Over TCP/TLS the same
// bytes are a stream the framer splits. Between messages the clock moves on, so retransmissions,
// refreshes and the allocation's expiry run too.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    var framer = TURNStreamFramer()
    let streamed = framer.append(bytes)
    _ = ChannelData.parse(bytes)
    var deframer = LengthPrefixedDeframer(maximumFrameLength: 4096, maximumFramesPerRead: 256)
    let messages = ((try? deframer.append(bytes)) ?? []) + streamed

    var now = MonotonicTime(seconds: 1)
    let peer = TransportAddress(ip: .v4(198, 51, 100, 2), port: 5000)
    var client = TURNClient(server: TransportAddress(ip: .v4(192, 0, 2, 1), port: 3478),
                            transport: bytes.first.map { $0 & 1 == 0 } == true ? .udp : .tcp,
                            credentials: TURNCredentials(username: "user", password: "pass"),
                            now: now, random: SeededRandom(seed: 1))
    var latestRequest = requestIDs(in: client.handleTimeout(now: now)).last
    _ = client.createPermission(for: peer.ip, now: now)
    for var message in messages {
        if message.count >= 20, STUNMessage.looksLikeSTUN(message), let id = latestRequest {
            message.replaceSubrange(8 ..< 20, with: id)
        }
        _ = client.isFromServer(message)
        var actions = client.receive(message, now: now)
        now = now + .milliseconds(700)
        actions += client.handleTimeout(now: now)
        actions += client.bindChannel(to: peer, now: now)
        latestRequest = requestIDs(in: actions).last ?? latestRequest
        _ = client.wrap([1, 2, 3], to: peer)
    }
    _ = client.release(now: now)
    return 0
}

private func requestIDs(in actions: [TURNClient.Action]) -> [[UInt8]] {
    actions.compactMap { action in
        guard case let .send(bytes) = action, bytes.count >= 20, STUNMessage.looksLikeSTUN(bytes) else { return nil }
        return Array(bytes[8 ..< 20])
    }
}
