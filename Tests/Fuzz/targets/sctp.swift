import RTCBase
import SCTP

// SCTP packets (RFC 9260) as DTLS application data brings them: the parser (checksum off, so the
// fuzzer reaches the chunks), and a listening association fed the run of packets (2-byte lengths).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let packet = try? SCTPPacket(parsing: bytes, verifyChecksum: false) { _ = packet.serialized() }
    var random = SeededRandom(seed: 7)
    // A weak, fixed cookie MAC on purpose: the fuzzer can then forge COOKIE ECHOes and reach an
    // established association.
    let configuration = SCTPConfiguration { bytes in
        let sum = CRC32c.checksum(bytes)
        return [UInt8(truncatingIfNeeded: sum), UInt8(truncatingIfNeeded: sum >> 8)]
    }
    var association = SCTPAssociation(configuration: configuration, random: &random)
    var index = 0
    var now = MonotonicTime(nanoseconds: 0)
    var outputs: [SCTPOutput] = []
    while index + 2 <= bytes.count {
        let length = Int(bytes[index]) << 8 | Int(bytes[index + 1])
        index += 2
        let end = min(bytes.count, index + length)
        var packet = Array(bytes[index..<end])
        index = end
        // Mostly with a valid checksum, so the packets get past the first check.
        if packet.count >= 12, packet[8] & 1 == 0 {
            packet[8] = 0; packet[9] = 0; packet[10] = 0; packet[11] = 0
            let sum = CRC32c.checksum(packet)
            packet[8] = UInt8(truncatingIfNeeded: sum); packet[9] = UInt8(truncatingIfNeeded: sum >> 8)
            packet[10] = UInt8(truncatingIfNeeded: sum >> 16); packet[11] = UInt8(truncatingIfNeeded: sum >> 24)
        }
        association.handle(.receive(packet), now: now)
        now = now + .milliseconds(10)
        association.handle(.timeout, now: now)
        association.drainOutputs(into: &outputs)
        outputs.removeAll(keepingCapacity: true)
    }
    return 0
}
