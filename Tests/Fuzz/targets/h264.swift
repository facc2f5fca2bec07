import RTCBase
import RTP

// H.264 depacketizing (RFC 6184: single NAL, STAP-A, FU-A) over a run of RTP packets; the input is
// cut into packets by a 1-byte length before each. Then the Annex-B scanner on what came out.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    var depacketizer = H264Depacketizer()
    var index = 0
    var sequence: UInt16 = 0
    while index < bytes.count {
        let length = Int(bytes[index])
        index += 1
        let end = min(bytes.count, index + length)
        let payload = Array(bytes[index..<end])
        index = end
        let marker = payload.first.map { $0 & 1 == 1 } ?? false
        let packet = RTPPacket(payloadType: 96, marker: marker, sequenceNumber: sequence, timestamp: UInt32(sequence / 4),
                               ssrc: 1, payload: payload)
        sequence &+= payload.count % 3 == 0 ? 2 : 1
        if let accessUnit = depacketizer.push(packet) {
            _ = AnnexBByteStream.units(in: accessUnit)
        }
    }
    _ = AnnexBByteStream.units(in: bytes)
    return 0
}
