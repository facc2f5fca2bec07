import RTCBase

@testable import RTP

/// Seeded random mutations of a valid message: byte flips, truncation, extension, insertion.
func mutate(_ input: [UInt8], using rng: inout SeededRandom) -> [UInt8] {
    var bytes = input
    let operations = Int.random(in: 1...4, using: &rng)
    for _ in 0..<operations {
        switch Int.random(in: 0..<6, using: &rng) {
        case 0, 1:
            guard !bytes.isEmpty else { continue }
            bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
        case 2:
            guard !bytes.isEmpty else { continue }
            bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
        case 3:
            bytes.removeLast(Int.random(in: 0...bytes.count, using: &rng))
        case 4:
            bytes.append(contentsOf: rng.bytes(Int.random(in: 1...16, using: &rng)))
        default:
            let position = Int.random(in: 0...bytes.count, using: &rng)
            bytes.insert(contentsOf: rng.bytes(Int.random(in: 1...8, using: &rng)), at: position)
        }
    }
    return bytes
}

/// Random bytes made a valid NAL unit payload: emulation prevention (H.264 §7.4.1) so no start code
/// appears inside, and a final non-zero byte (rbsp_stop_one_bit).
func nalBody(count: Int, using rng: inout SeededRandom) -> [UInt8] {
    let raw = rng.bytes(count)
    var escaped: [UInt8] = []
    escaped.reserveCapacity(count + count / 64 + 2)
    var zeros = 0
    for byte in raw {
        if zeros >= 2, byte <= 3 {
            escaped.append(3)
            zeros = 0
        }
        escaped.append(byte)
        zeros = byte == 0 ? zeros + 1 : 0
    }
    escaped.append(0x80)
    return escaped
}

/// A random access unit: a key frame (optional AUD/SEI, SPS, PPS, IDR slices) or a delta frame
/// (non-IDR slices), of about `size` bytes in total. Returns the Annex-B input (mixed 3/4-byte start
/// codes, sometimes trailing zeros) and the NAL units.
func randomAccessUnit(size: Int, keyFrame: Bool, using rng: inout SeededRandom) -> (annexB: [UInt8], nals: [[UInt8]]) {
    var nals: [[UInt8]] = []
    if Bool.random(using: &rng) { nals.append([0x09, 0xF0]) }  // AUD
    if keyFrame {
        nals.append([0x67, 0x42, 0xE0, 0x1F] + nalBody(count: Int.random(in: 4...20, using: &rng), using: &rng))
        nals.append([0x68] + nalBody(count: Int.random(in: 2...6, using: &rng), using: &rng))
    }
    if Bool.random(using: &rng) { nals.append([0x06] + nalBody(count: Int.random(in: 1...40, using: &rng), using: &rng)) }
    let sliceHeader: UInt8 = keyFrame ? 0x65 : (Bool.random(using: &rng) ? 0x41 : 0x01)
    let sliceCount = Int.random(in: 1...3, using: &rng)
    let used = nals.reduce(0) { $0 + $1.count }
    let remaining = max(0, size - used - sliceCount * 2)
    for _ in 0..<sliceCount {
        nals.append([sliceHeader] + nalBody(count: remaining / sliceCount, using: &rng))
    }
    var annexB: [UInt8] = []
    for nal in nals {
        annexB.append(contentsOf: Bool.random(using: &rng) ? [0, 0, 0, 1] : [0, 0, 1])
        annexB.append(contentsOf: nal)
        if Int.random(in: 0..<8, using: &rng) == 0 { annexB.append(contentsOf: [0, 0]) }  // trailing_zero_8bits
    }
    return (annexB, nals)
}

/// The NAL units joined with 4-byte start codes: what the depacketizer returns.
func annexB4(_ nals: [[UInt8]]) -> [UInt8] {
    var out: [UInt8] = []
    for nal in nals { out += [0, 0, 0, 1] + nal }
    return out
}

func hex(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var pending: UInt8?
    for character in text {
        guard let digit = character.hexDigitValue else { continue }
        if let high = pending {
            bytes.append(high << 4 | UInt8(digit))
            pending = nil
        } else {
            pending = UInt8(digit)
        }
    }
    return bytes
}
