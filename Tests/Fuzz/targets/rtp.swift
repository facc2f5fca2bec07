import RTP

// RTP and RTCP from a viewer (after SRTP): every RTCP packet type rtcp-fb names, transport-cc
// included, NACK expansion, and the RTP parser with its header extensions; re-serialized.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    _ = RTCPPacket.looksLikeRTCP(bytes)
    if let packets = try? RTCPPacket.parseCompound(bytes) {
        for packet in packets {
            if case let .genericNACK(nack) = packet { _ = nack.lostSequenceNumbers }
            _ = packet.serialized()
        }
    }
    if let packet = try? RTPPacket(parsing: bytes) {
        _ = packet.extensionData(id: 1)
        _ = packet.serialized()
    }
    return 0
}
