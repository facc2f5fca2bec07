import Testing
@testable import RTCBase

@Suite struct ByteCodingTests {
    @Test func roundTripsBigEndianFields() throws {
        var w = ByteWriter()
        w.write(UInt8(0xAB)); w.write(UInt16(0x1234)); w.writeUInt24(0x56789A); w.write(UInt32(0xDEADBEEF))
        w.write(UInt64(0x0102030405060708))
        var r = ByteReader(w.bytes)
        #expect(try r.readUInt8() == 0xAB)
        #expect(try r.readUInt16() == 0x1234)
        #expect(try r.readUInt24() == 0x56789A)
        #expect(try r.readUInt32() == 0xDEADBEEF)
        #expect(try r.readUInt64() == 0x0102030405060708)
        #expect(r.isAtEnd)
    }

    @Test func truncatedReadsThrowInsteadOfTrapping() throws {
        var r = ByteReader([1, 2, 3])
        #expect(throws: ParseError.self) { try r.readUInt32() }
        #expect(throws: ParseError.self) { try r.readBytes(-1) }
        #expect(throws: ParseError.self) { try r.skip(4) }
        var sub = ByteReader([1, 2, 3, 4, 5], range: 1..<3)
        #expect(try sub.readUInt16() == 0x0203)
        #expect(throws: ParseError.self) { try sub.readUInt8() }
    }

    /// What a relay on the internet cannot reach (ICE pairs no relayed candidate with these).
    @Test func privateAddresses() {
        for text in ["10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.50.2", "100.64.0.1", "169.254.1.1", "127.0.0.1",
                     "fd00::1", "fe80::1", "::1", "::ffff:192.168.1.1"] {
            #expect(TransportAddress.IP(parsing: text)?.isPrivate == true, "\(text)")
        }
        for text in ["172.32.0.1", "192.0.2.1", "198.51.100.2", "203.0.113.1", "100.128.0.1", "8.8.8.8", "2001:db8::1"] {
            #expect(TransportAddress.IP(parsing: text)?.isPrivate == false, "\(text)")
        }
    }

    @Test func parsesAddresses() {
        #expect(TransportAddress(host: "127.0.0.1", port: 9)?.description == "127.0.0.1:9")
        #expect(TransportAddress.IP(parsing: "::1")?.isLoopback == true)
        #expect(TransportAddress.IP(parsing: "fe80::1:2")?.description == "fe80::1:2")
        // RFC 5952 §4: the longest zero run (the first of equals, never a single group) as "::".
        for (given, canonical) in [("2001:DB8:0:0:0:0:0:1", "2001:db8::1"), ("::", "::"), ("0:0:0:0:0:0:0:1", "::1"),
                                   ("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"), ("2001:0:0:1:0:0:1:1", "2001::1:0:0:1:1"),
                                   ("2001:db8:1:2:3:4:5:0", "2001:db8:1:2:3:4:5:0"), ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
                                   ("fe80::", "fe80::"), ("::ffff:192.0.2.1", "::ffff:c000:201"), ("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304")] {
            #expect(TransportAddress.IP(parsing: given)?.description == canonical, "\(given)")
        }
        #expect(TransportAddress(host: "2001:db8::1", port: 9)?.description == "[2001:db8::1]:9")
        for malformed in ["::ffff:1.2.3", "1.2.3.4::", "::1.2.3.4:5", "1:2:3:4:5:6:7:1.2.3.4", "::ffff:1.2.3.256"] {
            #expect(TransportAddress.IP(parsing: malformed) == nil, "\(malformed)")
        }
        #expect(TransportAddress.IP(parsing: "1.2.3") == nil)
        #expect(TransportAddress.IP(parsing: "1.2.3.256") == nil)
        #expect(TransportAddress.IP(parsing: "1::2::3") == nil)
    }

    @Test func timeArithmetic() {
        let t = MonotonicTime(seconds: 2)
        #expect((t + .milliseconds(500)).nanoseconds == 2_500_000_000)
        #expect((t - .seconds(3)) == .zero)
        #expect((MonotonicTime(seconds: 1) - MonotonicTime(seconds: 3)) == .seconds(-2))
        #expect(earliest(nil, MonotonicTime(seconds: 5), MonotonicTime(seconds: 4)) == MonotonicTime(seconds: 4))
    }
}

@Suite("DatagramBatch")
struct DatagramBatchTests {
    private struct Refused: Error {}

    @Test("datagrams keep their bounds and order; refill reuses the memory")
    func appendsAndRefills() {
        var batch = DatagramBatch()
        batch.append([1, 2, 3])
        batch.append([UInt8]())   // not a datagram
        batch.append([4][...])
        batch.append { (storage: inout [UInt8]) in storage += [5, 6] }
        #expect(batch.count == 3)
        #expect(batch.datagrams == [[1, 2, 3], [4], [5, 6]])
        #expect(batch.range(at: 1) == 3 ..< 4 && batch.length(at: 2) == 2)
        let capacity = batch.storage.capacity
        batch.removeAll()
        #expect(batch.isEmpty && batch.storage.isEmpty && batch.storage.capacity == capacity)
        batch.append([9, 9])
        #expect(batch.datagrams == [[9, 9]])
    }

    @Test("a writer that throws leaves the batch as it was; one that writes nothing adds no datagram")
    func failedWriterIsTakenBack() {
        var batch = DatagramBatch()
        batch.append([1, 2])
        #expect(throws: Refused.self) {
            try batch.append { (storage: inout [UInt8]) throws(Refused) in
                storage += [7, 7, 7]
                throw Refused()
            }
        }
        batch.append { (_: inout [UInt8]) in }
        #expect(batch.datagrams == [[1, 2]] && batch.storage == [1, 2])
    }
}
