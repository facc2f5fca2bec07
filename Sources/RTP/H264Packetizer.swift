import RTCBase

/// H.264 NAL unit header fields and RTP payload structure types (RFC 6184 §5.2–§5.4).
enum H264NAL {
    static let stapA: UInt8 = 24  // §5.7.1
    static let fuA: UInt8 = 28  // §5.8
    static let forbiddenBit: UInt8 = 0x80
    static let nriMask: UInt8 = 0x60
    static let typeMask: UInt8 = 0x1F
}

/// RFC 6184 packetizer for packetization-mode=1 (non-interleaved, §6.3): single NAL unit packets
/// (§5.6), STAP-A (§5.7.1) and FU-A (§5.8).
public struct H264Packetizer: Sendable {
    /// Largest RTP payload produced (the session passes 1200 − 12 header − extensions − SRTP tag).
    /// At least 3, so that an FU-A can carry one byte.
    public let maxPayloadSize: Int

    public init(maxPayloadSize: Int) {
        self.maxPayloadSize = max(3, maxPayloadSize)
    }

    /// An access unit in Annex-B → RTP payloads in decoding order; the last one carries the marker
    /// (RFC 6184 §5.1: marker set on the last packet of the access unit). Consecutive NAL units that
    /// fit together (SPS, PPS, AUD, SEI, small slices) share one STAP-A; a NAL unit larger than
    /// `maxPayloadSize` is cut into FU-As of equal size but the last (so that a run of them is what a
    /// UDP GSO write sends). Each payload starts after `headerRoom` zero bytes, room for the RTP
    /// header its sender writes in place, so a packet is one allocation and one copy of its bytes.
    public func payloads(forAnnexB accessUnit: [UInt8], headerRoom: Int = 0) -> [(payload: [UInt8], marker: Bool)] {
        let units = Self.nalUnits(inAnnexB: accessUnit)
        var result: [(payload: [UInt8], marker: Bool)] = []
        result.reserveCapacity(accessUnit.count / maxPayloadSize + units.count)
        var index = 0
        while index < units.count {
            let unit = units[index]
            if unit.count > maxPayloadSize {
                appendFragments(of: unit, headerRoom: headerRoom, to: &result)
                index += 1
                continue
            }
            // §5.7.1: STAP-A = 1 header byte + (16-bit size + NAL unit) per aggregated unit.
            var aggregateSize = 1 + 2 + unit.count
            var end = index + 1
            while end < units.count, aggregateSize + 2 + units[end].count <= maxPayloadSize {
                aggregateSize += 2 + units[end].count
                end += 1
            }
            if end - index == 1 {
                var payload = Self.emptyPayload(headerRoom: headerRoom, size: unit.count)  // §5.6 single NAL unit packet
                payload.append(contentsOf: unit)
                result.append((payload, false))
            } else {
                result.append((aggregate(units[index..<end], size: aggregateSize, headerRoom: headerRoom), false))
            }
            index = end
        }
        if !result.isEmpty { result[result.count - 1].marker = true }
        return result
    }

    /// `headerRoom` zero bytes in an array with room for `size` more: one allocation per packet.
    private static func emptyPayload(headerRoom: Int, size: Int) -> [UInt8] {
        var payload: [UInt8] = []
        payload.reserveCapacity(headerRoom + size)
        payload.append(contentsOf: repeatElement(0, count: headerRoom))
        return payload
    }

    /// §5.7.1: F is the OR of the aggregated F bits, NRI their maximum, type 24.
    private func aggregate(_ units: ArraySlice<ArraySlice<UInt8>>, size: Int, headerRoom: Int) -> [UInt8] {
        var forbidden: UInt8 = 0
        var nri: UInt8 = 0
        for unit in units {
            let header = unit[unit.startIndex]
            forbidden |= header & H264NAL.forbiddenBit
            nri = max(nri, header & H264NAL.nriMask)
        }
        var payload = Self.emptyPayload(headerRoom: headerRoom, size: size)
        payload.append(forbidden | nri | H264NAL.stapA)
        for unit in units {
            payload.append(UInt8(truncatingIfNeeded: unit.count >> 8))
            payload.append(UInt8(truncatingIfNeeded: unit.count))
            payload.append(contentsOf: unit)
        }
        return payload
    }

    /// §5.8: FU indicator (F, NRI of the NAL unit, type 28) + FU header (S, E, R=0, NAL type), then
    /// a piece of the NAL unit without its header byte. As few pieces as fit, all of one size but
    /// the last, which may be shorter: with n pieces of ⌈body / n⌉ bytes the last is never empty,
    /// since body > (n − 1) × capacity ≥ (n − 1) × ⌈body / n⌉.
    private func appendFragments(of unit: ArraySlice<UInt8>, headerRoom: Int,
                                 to result: inout [(payload: [UInt8], marker: Bool)]) {
        let header = unit[unit.startIndex]
        let indicator = header & (H264NAL.forbiddenBit | H264NAL.nriMask) | H264NAL.fuA
        let type = header & H264NAL.typeMask
        let body = unit.dropFirst()
        let capacity = maxPayloadSize - 2
        let fragmentCount = (body.count + capacity - 1) / capacity
        let fullSize = (body.count + fragmentCount - 1) / fragmentCount
        var start = body.startIndex
        for fragment in 0..<fragmentCount {
            let size = min(fullSize, body.endIndex - start)
            var fuHeader = type
            if fragment == 0 { fuHeader |= 0x80 }  // S
            if fragment == fragmentCount - 1 { fuHeader |= 0x40 }  // E
            var payload = Self.emptyPayload(headerRoom: headerRoom, size: 2 + size)
            payload.append(indicator)
            payload.append(fuHeader)
            payload.append(contentsOf: body[start..<start + size])
            result.append((payload, false))
            start += size
        }
    }

    /// The NAL units of an Annex-B byte stream (AnnexBByteStream: trailing zero bytes dropped, empty
    /// units skipped, bytes before the first start code ignored).
    public static func nalUnits(inAnnexB stream: [UInt8]) -> [ArraySlice<UInt8>] {
        AnnexBByteStream.units(in: stream).map { stream[$0.payload] }
    }
}

/// RFC 7587 §4.2: one Opus packet per RTP payload, carried as it is. Clock rate 48 kHz whatever the
/// coded rate (§4.1); the marker bit is not needed for audio without DTX.
public struct OpusPacketizer: Sendable {
    public static let clockRate: UInt32 = 48_000

    public static func payload(forFrame frame: [UInt8]) -> [UInt8] { frame }

    /// RTP timestamp step for a frame of `duration` (e.g. 20 ms → 960).
    public static func timestampIncrement(for duration: Duration) -> UInt32 {
        UInt32(truncatingIfNeeded: duration.nanosecondsClamped * Int64(clockRate) / 1_000_000_000)
    }
}
