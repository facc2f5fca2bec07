import SDP

// PATCH /whep/{id} bodies (application/trickle-ice-sdpfrag, RFC 8840).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let fragment = try? TrickleICEFragment(parsing: String(decoding: bytes, as: UTF8.self)) {
        _ = try? fragment.restartCredentials()
    }
    return 0
}
