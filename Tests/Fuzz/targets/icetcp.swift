import RTCBase
import STUN

// An ICE-TCP connection (RFC 6544) as the media port's TCP listener meets it: the byte stream arrives
// in reads cut anywhere (the first input byte sets the cut lengths), is deframed (RFC 4571's 2-byte
// lengths) with the listener's bounds, and each frame goes through the STUN checks the hub makes
// before any session sees it. A broken stream must stay broken (the listener then closes it).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    guard let first = bytes.first else { return 0 }
    var deframer = LengthPrefixedDeframer(maximumFrameLength: 2048, maximumFramesPerRead: 64)
    let step = Int(first % 61) + 1
    var offset = 1
    while offset < bytes.count {
        let end = min(bytes.count, offset + step + offset % 7)
        do {
            for frame in try deframer.append(bytes[offset ..< end]) {
                precondition(frame.count <= 2048, "a frame over the bound came through")
                _ = STUNMessage.looksLikeSTUN(frame)
                _ = STUNMessage.hasValidFingerprint(frame)
                _ = try? STUNMessage(parsing: frame)
            }
        } catch {
            precondition(deframer.isBroken, "an error left the deframer usable")
            break
        }
        precondition(deframer.bufferedByteCount <= 2048 + 2, "more than one partial frame held")
        offset = end
    }
    return 0
}
