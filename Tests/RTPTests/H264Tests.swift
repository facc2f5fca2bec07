import RTCBase
import Testing

@testable import RTP

@Suite("H.264 RTP payload (RFC 6184, packetization-mode 1)")
struct H264Tests {
    @Test func scansAnnexBStartCodes() {
        // 4-byte and 3-byte start codes, trailing zeros, an empty unit, leading garbage.
        let stream: [UInt8] = [0xAA, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0x65, 9, 0, 0]
        let units = H264Packetizer.nalUnits(inAnnexB: stream).map(Array.init)
        #expect(units == [[0x67, 1, 2], [0x68, 3], [0x65, 9]])
        #expect(H264Packetizer.nalUnits(inAnnexB: []).isEmpty)
        #expect(H264Packetizer.nalUnits(inAnnexB: [0, 0, 1]).isEmpty)
        #expect(H264Packetizer.nalUnits(inAnnexB: [1, 2, 3, 4]).isEmpty)
        // Emulation-prevented bytes (00 00 03) are not start codes.
        #expect(H264Packetizer.nalUnits(inAnnexB: [0, 0, 1, 0x41, 0, 0, 3, 1, 0, 0, 3, 0]).map(Array.init)
                == [[0x41, 0, 0, 3, 1, 0, 0, 3]])
    }

    @Test func aggregatesParameterSetsIntoSTAPA() {
        let sps: [UInt8] = [0x67, 0x42, 0xE0, 0x1F, 0x8C]
        let pps: [UInt8] = [0x68, 0xCE, 0x3C, 0x80]
        let idr: [UInt8] = [0x65] + Array(repeating: 0x11, count: 2000)
        // Typed pieces: as one literal-and-+ chain Swift 6.2 gives up type-checking it.
        let fourByteStart: [UInt8] = [0, 0, 0, 1], threeByteStart: [UInt8] = [0, 0, 1]
        let au: [UInt8] = fourByteStart + sps + fourByteStart + pps + threeByteStart + idr
        let payloads = H264Packetizer(maxPayloadSize: 1150).payloads(forAnnexB: au)
        // §5.7.1: F|max NRI|24, then size + NAL for each.
        let stapAHeader: [UInt8] = [0x78, 0, 5], ppsSize: [UInt8] = [0, 4]
        let stapA: [UInt8] = stapAHeader + sps + ppsSize + pps
        #expect(payloads[0].payload == stapA)
        #expect(!payloads[0].marker)
        // §5.8: FU indicator 0x7C (NRI 3, type 28); FU headers S|type 5, then E|type 5.
        #expect(payloads.count == 3)
        #expect(payloads[1].payload.prefix(2) == [0x7C, 0x85])
        #expect(payloads[2].payload.prefix(2) == [0x7C, 0x45])
        #expect(payloads[1].payload.count == 2 + 1000 && payloads[2].payload.count == 2 + 1000)
        #expect(!payloads[1].marker && payloads[2].marker)
        #expect(Array(payloads[1].payload.dropFirst(2) + payloads[2].payload.dropFirst(2)) == Array(idr.dropFirst()))
    }

    @Test func sizeBoundaries() {
        let packetizer = H264Packetizer(maxPayloadSize: 100)
        let exact: [UInt8] = [0x41] + Array(repeating: 7, count: 99)
        let single = packetizer.payloads(forAnnexB: [0, 0, 1] + exact)
        #expect(single.count == 1 && single[0].payload == exact && single[0].marker)  // §5.6
        let over = packetizer.payloads(forAnnexB: [0, 0, 1] + exact + [7])
        #expect(over.count == 2 && over.allSatisfy { $0.payload[0] == 0x5C && $0.payload.count <= 100 })
        // Two units that fit alone but not together (1 + 2 + 48 + 2 + 49 = 102 > 100): two single packets.
        let a: [UInt8] = [0x06] + Array(repeating: 1, count: 47)
        let b: [UInt8] = [0x41] + Array(repeating: 2, count: 48)
        let two = packetizer.payloads(forAnnexB: [0, 0, 1] + a + [0, 0, 1] + b)
        #expect(two.map(\.payload) == [a, b])
        #expect(two.map(\.marker) == [false, true])
        #expect(packetizer.payloads(forAnnexB: []).isEmpty)
    }

    @Test func roundTripsRandomAccessUnits() {
        var rng = SeededRandom(seed: 6184)
        let maxPayload = 1150
        let packetizer = H264Packetizer(maxPayloadSize: maxPayload)
        var depacketizer = H264Depacketizer()
        var sequence: UInt16 = 65500  // crosses the wrap
        var sizes = [1, 2, 1148, 1149, 1150, 1151, 60000]
        for _ in 0..<50 { sizes.append(Int.random(in: 1...60000, using: &rng)) }
        for (index, size) in sizes.enumerated() {
            let (annexB, nals) = randomAccessUnit(size: size, keyFrame: index % 5 == 0, using: &rng)
            let payloads = packetizer.payloads(forAnnexB: annexB)
            #expect(payloads.allSatisfy { $0.payload.count <= maxPayload })
            #expect(payloads.map(\.marker) == Array(repeating: false, count: payloads.count - 1) + [true])
            var output: [UInt8]?
            for (payload, marker) in payloads {
                let packet = RTPPacket(payloadType: 102, marker: marker, sequenceNumber: sequence,
                                       timestamp: UInt32(index) * 3000, ssrc: 1, payload: payload)
                sequence &+= 1
                #expect(output == nil)
                output = depacketizer.push(packet)
            }
            #expect(output == annexB4(nals))
        }
        #expect(depacketizer.completedAccessUnits == sizes.count)
        #expect(depacketizer.droppedAccessUnits == 0)
    }

    @Test func fuAHeadersCarryNRIAndType() {
        var rng = SeededRandom(seed: 28)
        let nal: [UInt8] = [0x25] + nalBody(count: 5000, using: &rng)  // NRI 1, IDR
        let payloads = H264Packetizer(maxPayloadSize: 1200).payloads(forAnnexB: [0, 0, 0, 1] + nal)
        #expect(payloads.count == 5)
        for (index, (payload, _)) in payloads.enumerated() {
            #expect(payload[0] == 0x3C)  // F=0, NRI=1, type 28
            #expect(payload[1] & 0x1F == 5)
            #expect((payload[1] & 0x80 != 0) == (index == 0))
            #expect((payload[1] & 0x40 != 0) == (index == payloads.count - 1))
            #expect(payload[1] & 0x20 == 0)
        }
    }

    @Test("FU-A pieces are all one size but a shorter (never empty) last, as few as fit")
    func fuAPiecesAreEqualButTheLast() {
        var rng = SeededRandom(seed: 8)
        for (maxPayload, size) in [(1200, 5000), (1200, 1200), (1200, 2397), (100, 9801), (3, 40), (50, 97), (1150, 60000)] {
            let nal: [UInt8] = [0x41] + nalBody(count: size, using: &rng)
            let bodySize = nal.count - 1   // the escaping may have added bytes
            let pieces = H264Packetizer(maxPayloadSize: maxPayload).payloads(forAnnexB: [0, 0, 1] + nal).map { $0.payload.count - 2 }
            let capacity = maxPayload - 2
            #expect(pieces.count == (bodySize + capacity - 1) / capacity, "\(maxPayload) \(bodySize)")
            #expect(pieces.dropLast().allSatisfy { $0 == pieces[0] } && pieces[0] <= capacity)
            #expect(pieces.last! >= 1 && pieces.last! <= pieces[0])
            #expect(pieces.reduce(0, +) == bodySize)
        }
    }

    @Test("header room: each payload after that many zero bytes, the rest as without it")
    func headerRoomPrefixesEveryPayload() {
        var rng = SeededRandom(seed: 12)
        let (annexB, _) = randomAccessUnit(size: 9000, keyFrame: true, using: &rng)
        let packetizer = H264Packetizer(maxPayloadSize: 1150)
        let plain = packetizer.payloads(forAnnexB: annexB)
        let roomy = packetizer.payloads(forAnnexB: annexB, headerRoom: 12)
        #expect(roomy.map(\.marker) == plain.map(\.marker))
        #expect(roomy.map { Array($0.payload.prefix(12)) } == Array(repeating: [UInt8](repeating: 0, count: 12), count: plain.count))
        #expect(roomy.map { Array($0.payload.dropFirst(12)) } == plain.map(\.payload))
    }

    private func packets(for annexB: [UInt8], timestamp: UInt32, firstSequence: UInt16) -> [RTPPacket] {
        let payloads = H264Packetizer(maxPayloadSize: 1000).payloads(forAnnexB: annexB)
        return payloads.enumerated().map { index, element in
            RTPPacket(payloadType: 102, marker: element.marker, sequenceNumber: firstSequence &+ UInt16(index),
                      timestamp: timestamp, ssrc: 1, payload: element.payload)
        }
    }

    @Test func gapInsideAnAccessUnitDropsIt() {
        var rng = SeededRandom(seed: 1)
        let first = randomAccessUnit(size: 8000, keyFrame: true, using: &rng)
        let second = randomAccessUnit(size: 3000, keyFrame: false, using: &rng)
        let firstPackets = packets(for: first.annexB, timestamp: 0, firstSequence: 10)
        let secondPackets = packets(for: second.annexB, timestamp: 3000, firstSequence: 10 &+ UInt16(firstPackets.count))
        var depacketizer = H264Depacketizer()
        for (index, packet) in firstPackets.enumerated() where index != 3 {
            #expect(depacketizer.push(packet) == nil)
        }
        #expect(depacketizer.droppedAccessUnits == 1)
        var output: [UInt8]?
        for packet in secondPackets { output = depacketizer.push(packet) }
        #expect(output == annexB4(second.nals))
        #expect(depacketizer.completedAccessUnits == 1)
    }

    @Test func lostMarkerPacketDropsBothTouchedAccessUnits() {
        var rng = SeededRandom(seed: 2)
        let first = randomAccessUnit(size: 5000, keyFrame: false, using: &rng)
        let second = randomAccessUnit(size: 5000, keyFrame: false, using: &rng)
        let third = randomAccessUnit(size: 500, keyFrame: false, using: &rng)
        let firstPackets = packets(for: first.annexB, timestamp: 0, firstSequence: 65533)
        var next = 65533 &+ UInt16(firstPackets.count)
        let secondPackets = packets(for: second.annexB, timestamp: 3000, firstSequence: next)
        next &+= UInt16(secondPackets.count)
        let thirdPackets = packets(for: third.annexB, timestamp: 6000, firstSequence: next)
        var depacketizer = H264Depacketizer()
        for packet in firstPackets.dropLast() { #expect(depacketizer.push(packet) == nil) }
        // The gap may have held the start of the second AU too: it is dropped as well.
        for packet in secondPackets { #expect(depacketizer.push(packet) == nil) }
        #expect(depacketizer.droppedAccessUnits == 2)
        var output: [UInt8]?
        for packet in thirdPackets { output = depacketizer.push(packet) }
        #expect(output == annexB4(third.nals))
        // A repeated (late) packet is ignored.
        #expect(depacketizer.push(thirdPackets[0]) == nil)
        #expect(depacketizer.droppedAccessUnits == 2)
    }

    @Test func senderJumpBackwardsResynchronizes() {
        var depacketizer = H264Depacketizer()
        func push(_ seq: UInt16, _ ts: UInt32) -> [UInt8]? {
            depacketizer.push(RTPPacket(payloadType: 102, marker: true, sequenceNumber: seq, timestamp: ts, ssrc: 1, payload: [0x41, 1]))
        }
        #expect(push(40000, 0) == [0, 0, 0, 1, 0x41, 1])
        #expect(push(39999, 1) == nil)  // late: ignored, not counted
        #expect(depacketizer.droppedAccessUnits == 0)
        #expect(push(1000, 2) == nil)  // far behind: a jump, treated as a gap
        #expect(push(1001, 3) == [0, 0, 0, 1, 0x41, 1])
        #expect(depacketizer.droppedAccessUnits == 1)
    }

    @Test func malformedPayloadsDropTheAccessUnit() {
        var depacketizer = H264Depacketizer()
        func push(_ seq: UInt16, _ ts: UInt32, _ marker: Bool, _ payload: [UInt8]) -> [UInt8]? {
            depacketizer.push(RTPPacket(payloadType: 102, marker: marker, sequenceNumber: seq, timestamp: ts, ssrc: 1, payload: payload))
        }
        #expect(push(1, 0, true, [0x7C, 0x05, 1, 2]) == nil)  // FU-A middle without a start
        #expect(push(2, 1, true, [0x78, 0, 9, 0x67]) == nil)  // STAP-A size past the end
        #expect(push(3, 2, true, [0x7C, 0x85, 1]) == nil)  // AU ends inside an FU-A
        #expect(push(4, 3, true, [0x1A, 1, 2]) == nil)  // MTAP16: not in mode 1
        #expect(depacketizer.droppedAccessUnits == 4)
        #expect(push(5, 4, false, [0x7C, 0x85, 1]) == nil)
        #expect(push(6, 4, false, []) == nil)  // empty (padding-only) payload is skipped
        #expect(push(7, 4, true, [0x7C, 0x45, 2]) == [0, 0, 0, 1, 0x65, 1, 2])
    }

    /// Random datagrams fed to the depacketizer, random streams to the scanner and packetizer: no trap,
    /// payload bounds hold, and every AU returned starts with a start code.
    @Test func fuzzDepacketizerAndPacketizer() {
        var rng = SeededRandom(seed: 0x4832_3634)
        var depacketizer = H264Depacketizer()
        let valid = packets(for: randomAccessUnit(size: 4000, keyFrame: true, using: &rng).annexB, timestamp: 0, firstSequence: 0)
        var sequence: UInt16 = 0
        for iteration in 0..<5000 {
            var packet = valid[iteration % valid.count]
            packet.payload = mutate(packet.payload, using: &rng)
            sequence &+= UInt16.random(in: 0...2, using: &rng)
            packet.sequenceNumber = sequence
            packet.timestamp = UInt32(iteration / 3)
            packet.marker = Int.random(in: 0..<4, using: &rng) == 0
            if let au = depacketizer.push(packet) { #expect(au.starts(with: [0, 0, 0, 1])) }
        }
        for _ in 0..<300 {
            let maxPayload = Int.random(in: 0...1400, using: &rng)
            var stream = rng.bytes(Int.random(in: 0...3000, using: &rng))
            for index in stream.indices where stream[index] < 0x60 { stream[index] &= 0x01 }  // many 00 / 01
            let payloads = H264Packetizer(maxPayloadSize: maxPayload).payloads(forAnnexB: stream)
            #expect(payloads.allSatisfy { $0.payload.count <= max(3, maxPayload) && !$0.payload.isEmpty })
            #expect(payloads.filter(\.marker).count == (payloads.isEmpty ? 0 : 1))
        }
    }

    @Test func opusPayloadIsTheFrame() {
        let frame: [UInt8] = [0xFC, 0xFF, 0xFE]
        #expect(OpusPacketizer.payload(forFrame: frame) == frame)
        #expect(OpusPacketizer.timestampIncrement(for: .milliseconds(20)) == 960)
        #expect(OpusPacketizer.timestampIncrement(for: .microseconds(2500)) == 120)
    }
}
