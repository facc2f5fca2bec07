import RTCBase
import SDP

// A WHEP offer, as POST /whep hands it over: parse, answer (WHEPAnswerer, as WHEPSessionFactory
// calls it), serialize.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    guard let offer = try? SessionDescription(parsing: String(decoding: bytes, as: UTF8.self)) else { return 0 }
    _ = offer.serialized()
    let local = LocalTransport(iceUfrag: "abcd", icePassword: "localPasswordOf24Chars00", fingerprintSHA256: "00:11",
                               candidates: [HostCandidate(address: TransportAddress(ip: .v4(127, 0, 0, 1), port: 9))],
                               videoSSRC: 1, videoRTXSSRC: 2, audioSSRC: 3, cname: "rtcam", streamID: "rtcam")
    if let (answer, _) = try? WHEPAnswerer.answer(offer: offer, capabilities: LocalCapabilities(), local: local) {
        _ = answer.serialized()
    }
    return 0
}
