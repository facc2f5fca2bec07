import RTCBase
import Testing
@testable import STUN

/// Seeded random inputs: the parser and the checks must return or throw, never trap.
@Suite struct STUNFuzzTests {
    static let seeds: [[UInt8]] = [
        RFC5769.request, RFC5769.ipv4Response, RFC5769.ipv6Response,
        STUNMessage(messageClass: .errorResponse, transactionID: Array(repeating: 7, count: 12), attributes: [
            .errorCode(code: 401, reason: "Unauthenticated"), .unknown(type: 0x000A, value: [0, 0x1C]),
            .xorMappedAddress(TransportAddress(host: "::1", port: 9)!),
        ]).serialized(integrityKey: [1, 2, 3], fingerprint: true),
    ]

    /// Exercises every entry point on one input; returns whether it parsed.
    @discardableResult
    static func exercise(_ bytes: [UInt8]) -> Bool {
        _ = STUNMessage.looksLikeSTUN(bytes)
        _ = STUNMessage.hasValidIntegrity(bytes, key: RFC5769.password)
        _ = STUNMessage.hasValidFingerprint(bytes)
        guard let message = try? STUNMessage(parsing: bytes) else { return false }
        // Whatever parsed must serialize and parse again to the same attributes.
        let again = message.serialized(integrityKey: nil, fingerprint: false)
        let reparsed = try? STUNMessage(parsing: again)
        let withoutChecks = message.attributes.filter {
            if case .messageIntegrity = $0 { return false }
            if case .fingerprint = $0 { return false }
            return true
        }
        #expect(reparsed?.attributes == withoutChecks)
        return true
    }

    @Test func everyTruncationThrowsCleanly() {
        for seed in Self.seeds {
            for length in 0..<seed.count {
                #expect(throws: STUNError.self) { try STUNMessage(parsing: Array(seed.prefix(length))) }
                Self.exercise(Array(seed.prefix(length)))
            }
        }
    }

    @Test func randomMutationsNeverTrap() {
        var random = SeededRandom(seed: 0x5EED)
        var parsed = 0
        for iteration in 0..<6000 {
            var bytes = Self.seeds[iteration % Self.seeds.count]
            switch random.next() % 4 {
            case 0:  // flip a few bytes after the header, keeping it valid so attributes get parsed
                for _ in 0..<(1 + random.next() % 4) {
                    let index = 20 + Int(random.next() % UInt64(bytes.count - 20))
                    bytes[index] = UInt8(truncatingIfNeeded: random.next())
                }
            case 1:  // flip anywhere
                for _ in 0..<(1 + random.next() % 3) {
                    bytes[Int(random.next() % UInt64(bytes.count))] ^= UInt8(truncatingIfNeeded: random.next() | 1)
                }
            case 2:  // cut or extend, then make the length field agree (multiple of 4 or not)
                let newCount = 20 + Int(random.next() % UInt64(bytes.count + 16))
                bytes = Array(bytes.prefix(newCount)) + random.bytes(max(0, newCount - bytes.count))
                let declared = UInt16(bytes.count - 20)
                bytes[2] = UInt8(declared >> 8); bytes[3] = UInt8(truncatingIfNeeded: declared)
            default:  // a random attribute soup behind a valid header
                let count = 4 * Int(random.next() % 16)
                bytes = Array(bytes.prefix(20)) + random.bytes(count)
                bytes[2] = 0; bytes[3] = UInt8(count)
                if random.next() % 2 == 0 {  // make the first attribute one we decode
                    let known: [UInt16] = [0x0006, 0x0008, 0x0009, 0x0020, 0x0024, 0x0025, 0x8022, 0x8028, 0x8029, 0x802A]
                    let type = known[Int(random.next() % UInt64(known.count))]
                    if count >= 4 { bytes[20] = UInt8(type >> 8); bytes[21] = UInt8(type & 0xFF); bytes[22] = 0 }
                }
            }
            if Self.exercise(bytes) { parsed += 1 }
        }
        #expect(parsed > 600)  // the loop really reaches the attribute decoders
    }

    @Test func randomGarbageNeverTraps() {
        var random = SeededRandom(seed: 42)
        for _ in 0..<3000 {
            var bytes = random.bytes(Int(random.next() % 80))
            if bytes.count >= 20, random.next() % 2 == 0 {
                bytes[0] &= 0x01; bytes[4] = 0x21; bytes[5] = 0x12; bytes[6] = 0xA4; bytes[7] = 0x42
            }
            Self.exercise(bytes)
        }
    }
}
