import RTCBase
import Testing
@testable import STUN

@Suite struct RFC5769VectorTests {
    /// RFC 5769 §2.1: every field, the HMAC-SHA1 and the CRC-32 of the sample request.
    @Test func sampleRequest() throws {
        let datagram = RFC5769.request
        #expect(STUNMessage.looksLikeSTUN(datagram))
        let message = try STUNMessage(parsing: datagram)
        #expect(message.method == STUNMessage.bindingMethod)
        #expect(message.messageClass == .request)
        #expect(message.transactionID == RFC5769.transactionID)
        #expect(message.attributes == [
            .software("STUN test client"),
            .priority(0x6E00_01FF),
            .iceControlled(0x932F_F9B1_5126_3B36),
            .username("evtj:h6vY"),
            .messageIntegrity([0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e,
                               0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2]),
            .fingerprint(0xE57A_3BCF),
        ])
        #expect(message.username == "evtj:h6vY")
        #expect(STUNMessage.hasValidIntegrity(datagram, key: RFC5769.password))
        #expect(!STUNMessage.hasValidIntegrity(datagram, key: Array("VOkJxbRl1RmTxUk/WvJxBT".utf8)))
        #expect(STUNMessage.hasValidFingerprint(datagram))
    }

    /// RFC 5769 §2.2: XOR-MAPPED-ADDRESS 192.0.2.1 port 32853.
    @Test func sampleIPv4Response() throws {
        let message = try STUNMessage(parsing: RFC5769.ipv4Response)
        #expect(message.messageClass == .successResponse)
        #expect(message.method == STUNMessage.bindingMethod)
        #expect(message.transactionID == RFC5769.transactionID)
        #expect(message.software == "test vector")
        #expect(message.xorMappedAddress == TransportAddress(host: "192.0.2.1", port: 32853))
        #expect(message.fingerprint == 0xC07D_4C96)
        #expect(STUNMessage.hasValidIntegrity(RFC5769.ipv4Response, key: RFC5769.password))
        #expect(STUNMessage.hasValidFingerprint(RFC5769.ipv4Response))
    }

    /// RFC 5769 §2.3: XOR-MAPPED-ADDRESS 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
    @Test func sampleIPv6Response() throws {
        let message = try STUNMessage(parsing: RFC5769.ipv6Response)
        #expect(message.messageClass == .successResponse)
        #expect(message.software == "test vector")
        #expect(message.xorMappedAddress == TransportAddress(host: "2001:db8:1234:5678:11:2233:4455:6677", port: 32853))
        #expect(STUNMessage.hasValidIntegrity(RFC5769.ipv6Response, key: RFC5769.password))
        #expect(STUNMessage.hasValidFingerprint(RFC5769.ipv6Response))
    }

    /// Our encoder writes the vectors' bytes up to MESSAGE-INTEGRITY once the RFC's space padding is
    /// zeroed (we pad with zeros; the HMAC covers padding, so only the structure can be compared),
    /// and what it writes verifies.
    @Test(arguments: [RFC5769.request, RFC5769.ipv4Response, RFC5769.ipv6Response])
    func serializerReproducesVectorLayout(vector: [UInt8]) throws {
        let message = try STUNMessage(parsing: vector)
        let ours = message.serialized(integrityKey: RFC5769.password, fingerprint: true)
        #expect(ours.count == vector.count)
        let integrityStart = try #require(integrityOffset(vector))
        #expect(Array(ours[0..<integrityStart]) == Array(zeroingPadding(vector)[0..<integrityStart]))
        #expect(STUNMessage.hasValidIntegrity(ours, key: RFC5769.password))
        #expect(STUNMessage.hasValidFingerprint(ours))
        #expect(try STUNMessage(parsing: ours).attributes.dropLast(2) == message.attributes.dropLast(2))
    }

    @Test func tamperingIsDetected() {
        for index in 0..<RFC5769.request.count - 8 {  // everything before the FINGERPRINT value
            var tampered = RFC5769.request
            tampered[index] ^= 0x01
            #expect(!STUNMessage.hasValidFingerprint(tampered), "byte \(index)")
            if index < 76 || index >= 80 {
                // bytes covered by MESSAGE-INTEGRITY, or its value
                #expect(!STUNMessage.hasValidIntegrity(tampered, key: RFC5769.password), "byte \(index)")
            }
        }
    }
}

@Suite struct STUNMessageTests {
    let transactionID: [UInt8] = Array(1...12)

    @Test func roundTripsEveryAttributeKind() throws {
        let message = STUNMessage(method: STUNMessage.bindingMethod, messageClass: .request, transactionID: transactionID, attributes: [
            .username("abcd:efgh"),
            .priority(0x6E7F_1EFF),
            .useCandidate,
            .iceControlling(0x0102_0304_0506_0708),
            .iceControlled(.max),
            .xorMappedAddress(TransportAddress(host: "10.1.2.3", port: 5000)!),
            .xorMappedAddress(TransportAddress(host: "fe80::1:2", port: 65535)!),
            .errorCode(code: 487, reason: "Role Conflict"),
            .software("rtcam ✓"),
            .unknown(type: 0xC057, value: [1, 2, 3, 4, 5]),
            .unknown(type: 0x7FFF, value: []),
        ])
        let plain = message.serialized(integrityKey: nil, fingerprint: false)
        #expect(plain.count % 4 == 0)
        #expect(try STUNMessage(parsing: plain) == message)

        let key = Array("password".utf8)
        let protected = message.serialized(integrityKey: key, fingerprint: true)
        let parsed = try STUNMessage(parsing: protected)
        #expect(Array(parsed.attributes.dropLast(2)) == message.attributes)
        #expect(parsed.messageIntegrity?.count == 20)
        #expect(parsed.fingerprint != nil)
        #expect(STUNMessage.hasValidIntegrity(protected, key: key))
        #expect(!STUNMessage.hasValidIntegrity(protected, key: Array("Password".utf8)))
        #expect(STUNMessage.hasValidFingerprint(protected))
        // Re-serializing a parsed message replaces the old integrity/fingerprint instead of duplicating them.
        #expect(parsed.serialized(integrityKey: key, fingerprint: true) == protected)

        let integrityOnly = message.serialized(integrityKey: key, fingerprint: false)
        #expect(STUNMessage.hasValidIntegrity(integrityOnly, key: key))
        #expect(!STUNMessage.hasValidFingerprint(integrityOnly))
        let fingerprintOnly = message.serialized(integrityKey: nil, fingerprint: true)
        #expect(STUNMessage.hasValidFingerprint(fingerprintOnly))
        #expect(!STUNMessage.hasValidIntegrity(fingerprintOnly, key: key))
    }

    @Test(arguments: [STUNClass.request, .indication, .successResponse, .errorResponse])
    func encodesClassAndMethodBits(messageClass: STUNClass) throws {
        for method: UInt16 in [0x001, 0x003, 0xABC, 0xFFF] {
            let message = STUNMessage(method: method, messageClass: messageClass, transactionID: transactionID)
            let bytes = message.serialized(integrityKey: nil, fingerprint: false)
            #expect(bytes[0] & 0xC0 == 0)
            #expect(try STUNMessage(parsing: bytes) == message)
        }
        // RFC 8489 §5: Binding success response is 0x0101, error response 0x0111.
        let success = STUNMessage(messageClass: .successResponse, transactionID: transactionID).serialized(integrityKey: nil, fingerprint: false)
        let error = STUNMessage(messageClass: .errorResponse, transactionID: transactionID).serialized(integrityKey: nil, fingerprint: false)
        #expect(success[0...1] == [0x01, 0x01])
        #expect(error[0...1] == [0x01, 0x11])
    }

    /// RFC 8489 §14.5: attributes after MESSAGE-INTEGRITY other than FINGERPRINT are ignored, and the
    /// HMAC is checked with the length field as it was when MESSAGE-INTEGRITY was the last attribute.
    @Test func attributesAfterMessageIntegrity() throws {
        let key = Array("secret".utf8)
        let base = STUNMessage(messageClass: .request, transactionID: transactionID, attributes: [.username("a:b")])
        var bytes = base.serialized(integrityKey: key, fingerprint: false)
        bytes += [0x80, 0x55, 0x00, 0x04, 9, 9, 9, 9]  // a comprehension-optional attribute after MI
        var w = ByteWriter(appendingTo: bytes)
        w.patch(UInt16(bytes.count - 20 + 8), at: 2)
        let crc = CRC32.checksum(w.bytes) ^ STUNMessage.fingerprintXOR
        w.write(contentsOf: [0x80, 0x28, 0x00, 0x04])
        w.write(crc)
        bytes = w.bytes

        #expect(STUNMessage.hasValidIntegrity(bytes, key: key))
        #expect(STUNMessage.hasValidFingerprint(bytes))
        let parsed = try STUNMessage(parsing: bytes)
        #expect(parsed.username == "a:b")
        #expect(parsed.attributes.count == 3)  // USERNAME, MESSAGE-INTEGRITY, FINGERPRINT; 0x8055 ignored
        #expect(parsed.fingerprint == crc)
    }

    @Test func nothingMayFollowFingerprint() {
        var bytes = STUNMessage(messageClass: .request, transactionID: transactionID, attributes: [.username("a:b")])
            .serialized(integrityKey: nil, fingerprint: true)
        bytes += [0x80, 0x22, 0x00, 0x00]
        bytes[3] += 4
        #expect(throws: STUNError.attributeAfterFingerprint) { try STUNMessage(parsing: bytes) }
        #expect(!STUNMessage.hasValidFingerprint(bytes))
    }

    @Test func rejectsMalformedHeadersAndAttributes() {
        func expectError(_ expected: STUNError, _ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(throws: expected, sourceLocation: sourceLocation) { try STUNMessage(parsing: bytes) }
        }
        let header: [UInt8] = [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42] + transactionID
        func with(_ attributes: [UInt8]) -> [UInt8] {
            var bytes = header + attributes
            bytes[3] = UInt8(attributes.count)
            return bytes
        }
        expectError(.tooShort(length: 0), [])
        expectError(.tooShort(length: 19), Array(header.prefix(19)))
        var badCookie = header; badCookie[7] = 0x43
        expectError(.notSTUN, badCookie)
        var topBits = header; topBits[0] = 0x40
        expectError(.notSTUN, topBits)
        var longer = header; longer[3] = 4
        expectError(.lengthMismatch(declared: 4, actual: 0), longer)
        expectError(.lengthMismatch(declared: 0, actual: 4), header + [0, 0, 0, 0])
        expectError(.truncatedAttribute(type: 0x0006), with([0x00, 0x06, 0x00, 0x08, 0x61, 0x62, 0x63, 0x64]))
        expectError(.invalidAttribute(type: 0x0008, reason: "length 4, expected 20"), with([0x00, 0x08, 0x00, 0x04, 1, 2, 3, 4]))
        expectError(.invalidAttribute(type: 0x0025, reason: "length 4, expected 0"), with([0x00, 0x25, 0x00, 0x04, 1, 2, 3, 4]))
        expectError(.invalidAttribute(type: 0x0020, reason: "unknown address family 3"), with([0x00, 0x20, 0x00, 0x08, 0, 3, 0, 0, 1, 2, 3, 4]))
        expectError(.invalidAttribute(type: 0x0020, reason: "length 8 for family 2"), with([0x00, 0x20, 0x00, 0x08, 0, 2, 0, 0, 1, 2, 3, 4]))
        expectError(.invalidAttribute(type: 0x0009, reason: "error code 7/1 out of range"), with([0x00, 0x09, 0x00, 0x04, 0, 0, 7, 1]))
        expectError(.invalidAttribute(type: 0x0006, reason: "USERNAME is not UTF-8"), with([0x00, 0x06, 0x00, 0x02, 0xC3, 0x28, 0, 0]))
        // Integrity/fingerprint checks are false (never a trap) on all of the above.
        for bytes in [[], header, badCookie, with([0x00, 0x08, 0x00, 0x04, 1, 2, 3, 4]), with([0x80, 0x28, 0x00, 0x02, 1, 2, 0, 0])] {
            #expect(!STUNMessage.hasValidIntegrity(bytes, key: []))
            #expect(!STUNMessage.hasValidFingerprint(bytes))
        }
    }

    @Test func looksLikeSTUNFollowsRFC7983() {
        #expect(!STUNMessage.looksLikeSTUN([]))
        #expect(!STUNMessage.looksLikeSTUN(Array(RFC5769.request.prefix(19))))
        var dtls = RFC5769.request; dtls[0] = 22
        #expect(!STUNMessage.looksLikeSTUN(dtls))
        var rtp = RFC5769.request; rtp[0] = 0x80
        #expect(!STUNMessage.looksLikeSTUN(rtp))
        #expect(STUNMessage.looksLikeSTUN(RFC5769.ipv6Response))
    }

    @Test func oversizedValuesAreCutNotTrapped() throws {
        let long = String(repeating: "é", count: 1000)
        let bytes = STUNMessage(messageClass: .request, transactionID: [1, 2, 3], attributes: [
            .username(long), .software(long), .errorCode(code: 9999, reason: long),
            .xorMappedAddress(TransportAddress(ip: .v6([1, 2]), port: 1)),
        ]).serialized(integrityKey: [], fingerprint: true)
        let parsed = try STUNMessage(parsing: bytes)
        #expect(parsed.transactionID == [1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(parsed.username?.utf8.count == 512)
        #expect(parsed.errorCode?.code == 699)
        #expect(STUNMessage.hasValidFingerprint(bytes))
    }
}

/// Offset of the first MESSAGE-INTEGRITY attribute header.
func integrityOffset(_ datagram: [UInt8]) -> Int? {
    var walker = RawAttributeWalker(datagram)
    while let raw = try? walker.next() { if raw.type == 0x0008 { return raw.start } }
    return nil
}

/// The datagram with every attribute's padding bytes set to zero.
func zeroingPadding(_ datagram: [UInt8]) -> [UInt8] {
    var bytes = datagram
    var walker = RawAttributeWalker(datagram)
    while let raw = try? walker.next() {
        var index = raw.value.upperBound
        while index % 4 != 0 { bytes[index] = 0; index += 1 }
    }
    return bytes
}
