import RTCBase
import Testing
@testable import DTLS

/// Chromium 156 sends its ~1.4 kB ClientHello in two fragments; mbedTLS 2.28 cannot reassemble a
/// ClientHello itself, so the endpoint does (RFC 6347 §4.2.3, §4.2.6).
@Suite struct ClientHelloFragmentationTests {
    /// Splits the ClientHello record at the start of `datagram` into `pieces` fragment records
    /// (same record sequence number), or nil when the datagram holds no ClientHello.
    static func fragments(of datagram: [UInt8], pieces: Int) -> [[UInt8]]? {
        guard datagram.count > 25, datagram[0] == 22, datagram[13] == 1 else { return nil }
        let recordLength = Int(datagram[11]) << 8 | Int(datagram[12])
        let messageLength = Int(datagram[14]) << 16 | Int(datagram[15]) << 8 | Int(datagram[16])
        guard recordLength == 12 + messageLength else { return nil }
        let body = Array(datagram[25..<25 + messageLength])
        let size = (messageLength + pieces - 1) / pieces
        return stride(from: 0, to: messageLength, by: size).map { offset in
            let piece = Array(body[offset..<min(messageLength, offset + size)])
            var record = Array(datagram[0..<11])
            record += [UInt8((12 + piece.count) >> 8), UInt8((12 + piece.count) & 0xFF)]
            record += Array(datagram[13..<19])  // type, length, message_seq
            record += [UInt8(offset >> 16), UInt8((offset >> 8) & 0xFF), UInt8(offset & 0xFF)]
            record += [UInt8(piece.count >> 16), UInt8((piece.count >> 8) & 0xFF), UInt8(piece.count & 0xFF)]
            return record + piece
        }
    }

    @Test func handshakeCompletesWhenEveryClientHelloArrivesInFragmentsOutOfOrder() throws {
        let pair = try LinkedPair()
        var fragmented = 0
        pair.dropFromClient = { [unowned pair] index in
            guard let pieces = Self.fragments(of: pair.fromClient[index], pieces: 3) else { return false }
            fragmented += 1
            for piece in pieces.reversed() { pair.server.receive(piece, now: pair.clock) }
            return true
        }
        pair.run()
        // The first ClientHello and the one carrying the HelloVerifyRequest cookie.
        #expect(fragmented == 2)
        let keys = try #require(pair.serverConnected)
        #expect(pair.clientConnected == keys)
    }

    @Test func reassemblyGivesBackTheOriginalRecordAndWaitsForEveryFragment() throws {
        let pair = try LinkedPair()
        pair.client.start(now: pair.clock)
        let hello = try #require(pair.client.pollTransmit())
        let pieces = try #require(Self.fragments(of: hello, pieces: 4))
        var reassembler = ClientHelloReassembler()
        #expect(reassembler.process(pieces[2]).isEmpty)
        #expect(reassembler.process(pieces[0] + pieces[3]).isEmpty)
        #expect(reassembler.process(pieces[0]).isEmpty)  // a duplicate fragment changes nothing
        #expect(reassembler.process(pieces[1]) == Array(hello[0..<13 + 12 + (Int(hello[14]) << 16 | Int(hello[15]) << 8 | Int(hello[16]))]))
        // Unfragmented records pass through untouched.
        #expect(reassembler.process(hello) == hello)
    }

    @Test func malformedFragmentsAreDroppedWithoutTrapping() throws {
        let pair = try LinkedPair()
        pair.client.start(now: pair.clock)
        let hello = try #require(pair.client.pollTransmit())
        let pieces = try #require(Self.fragments(of: hello, pieces: 3))
        var reassembler = ClientHelloReassembler()
        // Fragment beyond the message end, and a message claiming to be huge.
        var beyond = pieces[1]
        beyond[19] = 0xFF
        #expect(reassembler.process(beyond).isEmpty)
        var huge = pieces[0]
        huge[14] = 0x7F
        #expect(reassembler.process(huge).isEmpty)
        var random = SeededRandom(seed: 99)
        for _ in 0..<3000 {
            var mutated = pieces[Int(random.next() % 3)]
            for _ in 0..<Int(random.next() % 4 + 1) {
                mutated[Int(random.next() % UInt64(mutated.count))] = UInt8(truncatingIfNeeded: random.next())
            }
            if random.next() % 4 == 0 { mutated.removeLast(Int(random.next() % UInt64(mutated.count))) }
            _ = reassembler.process(mutated)
            pair.server.receive(mutated, now: pair.clock)
        }
    }
}
