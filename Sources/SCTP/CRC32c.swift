/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), SCTP's checksum (RFC 9260 §6.8 and
/// appendix A; the same CRC as iSCSI, RFC 3720 §B.4). Table-driven, eight bytes per step
/// ("slicing by 8": eight tables, each the CRC of a byte followed by n zero bytes).
public enum CRC32c {
    private static let tables: [[UInt32]] = {
        var first = [UInt32](repeating: 0, count: 256)
        for index in 0..<256 {
            var value = UInt32(index)
            for _ in 0..<8 { value = value & 1 == 1 ? 0x82F6_3B78 ^ (value >> 1) : value >> 1 }
            first[index] = value
        }
        var tables = [first]
        for level in 1..<8 {
            let previous = tables[level - 1]
            tables.append((0..<256).map { previous[$0] >> 8 ^ first[Int(previous[$0] & 0xFF)] })
        }
        return tables
    }()

    /// Flat copy of `tables` (table k at k*256), read in the hot loop.
    private static let flat: [UInt32] = tables.flatMap { $0 }

    /// The CRC of `bytes[range]` as a number (RFC 3720 §B.4 writes it least significant byte first:
    /// 32 zero bytes give 0x8A9136AA, sent as aa 36 91 8a).
    public static func checksum(_ bytes: [UInt8], range: Range<Int>? = nil) -> UInt32 {
        let range = range ?? 0..<bytes.count
        return ~update(~0, bytes, range)
    }

    public static func checksum<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> UInt32 {
        checksum(Array(bytes))
    }

    /// Continues a CRC whose register (not yet inverted at the end) is `crc`.
    static func update(_ crc: UInt32, _ bytes: [UInt8], _ range: Range<Int>) -> UInt32 {
        var crc = crc
        flat.withUnsafeBufferPointer { (t: UnsafeBufferPointer<UInt32>) -> Void in
            bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Void in
                var i = range.lowerBound
                let end = range.upperBound
                while end - i >= 8 {
                    // One unaligned 8-byte load; the CRC is reflected, so the bytes go in little-endian.
                    let word = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self).littleEndian
                    let low: UInt32 = crc ^ UInt32(truncatingIfNeeded: word)
                    let high = UInt32(truncatingIfNeeded: word >> 32)
                    // Typed halves: as one expression Swift 6.2.3 gives up type-checking it (debug builds).
                    let lowPart: UInt32 = t[7 * 256 + Int(low & 0xFF)] ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
                        ^ t[5 * 256 + Int((low >> 16) & 0xFF)] ^ t[4 * 256 + Int(low >> 24)]
                    let highPart: UInt32 = t[3 * 256 + Int(high & 0xFF)] ^ t[2 * 256 + Int((high >> 8) & 0xFF)]
                        ^ t[1 * 256 + Int((high >> 16) & 0xFF)] ^ t[Int(high >> 24)]
                    crc = lowPart ^ highPart
                    i += 8
                }
                while i < end {
                    crc = t[Int((crc ^ UInt32(raw[i])) & 0xFF)] ^ (crc >> 8)
                    i += 1
                }
            }
        }
        return crc
    }
}
