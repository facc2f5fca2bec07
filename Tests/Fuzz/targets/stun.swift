import ICE
import STUN

// STUN (RFC 8489) as the media port's demultiplexer meets it: parse, integrity and fingerprint
// checks, the ufrag lookup the hub does before any session sees the datagram, and a re-serialization.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    _ = STUNMessage.looksLikeSTUN(bytes)
    _ = ICELiteAgent.localUfrag(inBindingRequest: bytes)
    _ = STUNMessage.hasValidIntegrity(bytes, key: Array("viewerPasswordOf24Chars0".utf8))
    _ = STUNMessage.hasValidFingerprint(bytes)
    if let message = try? STUNMessage(parsing: bytes) {
        let again = message.serialized(integrityKey: Array("key".utf8), fingerprint: true)
        _ = try? STUNMessage(parsing: again)
    }
    return 0
}
