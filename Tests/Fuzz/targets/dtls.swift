@testable import DTLS

// What reaches DTLS before mbedTLS: the ClientHello reassembler over a run of datagrams (each cut
// by a 2-byte length), as a browser's fragmented ClientHello or a hostile one comes in.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    var reassembler = ClientHelloReassembler()
    var index = 0
    while index + 2 <= bytes.count {
        let length = Int(bytes[index]) << 8 | Int(bytes[index + 1])
        index += 2
        let end = min(bytes.count, index + length)
        _ = reassembler.process(Array(bytes[index..<end]))
        index = end
    }
    return 0
}
