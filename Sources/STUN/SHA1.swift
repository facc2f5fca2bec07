/// SHA-1 (FIPS 180-4 §6.1), only for STUN MESSAGE-INTEGRITY (RFC 8489 §14.5). Streaming, so the
/// integrity check can hash a message prefix with a patched length field without copying it.
public struct SHA1: Sendable {
    public static let digestLength = 20
    public static let blockLength = 64

    private var h0: UInt32 = 0x6745_2301, h1: UInt32 = 0xEFCD_AB89, h2: UInt32 = 0x98BA_DCFE
    private var h3: UInt32 = 0x1032_5476, h4: UInt32 = 0xC3D2_E1F0
    private var block: [UInt8] = []
    private var messageLength: UInt64 = 0

    public init() { block.reserveCapacity(SHA1.blockLength) }

    public static func hash(_ message: [UInt8]) -> [UInt8] {
        var sha = SHA1()
        sha.update(message)
        return sha.finalize()
    }

    public mutating func update<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        messageLength &+= UInt64(bytes.count)
        for byte in bytes {
            block.append(byte)
            if block.count == SHA1.blockLength {
                compressBlock()
                block.removeAll(keepingCapacity: true)
            }
        }
    }

    /// FIPS 180-4 §5.1.1 padding, then the digest h0‖h1‖h2‖h3‖h4.
    public mutating func finalize() -> [UInt8] {
        let bitLength = messageLength &* 8
        block.append(0x80)
        if block.count > 56 {
            block.append(contentsOf: repeatElement(0, count: 64 - block.count))
            compressBlock()
            block.removeAll(keepingCapacity: true)
        }
        block.append(contentsOf: repeatElement(0, count: 56 - block.count))
        for shift in stride(from: 56, through: 0, by: -8) { block.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
        compressBlock()
        block.removeAll(keepingCapacity: true)
        var digest: [UInt8] = []
        digest.reserveCapacity(SHA1.digestLength)
        for word in [h0, h1, h2, h3, h4] {
            digest += [UInt8(word >> 24), UInt8(truncatingIfNeeded: word >> 16),
                       UInt8(truncatingIfNeeded: word >> 8), UInt8(truncatingIfNeeded: word)]
        }
        return digest
    }

    /// FIPS 180-4 §6.1.2: one 512-bit block.
    private mutating func compressBlock() {
        var w = [UInt32](repeating: 0, count: 80)
        for t in 0..<16 {
            w[t] = UInt32(block[4 * t]) << 24 | UInt32(block[4 * t + 1]) << 16
                | UInt32(block[4 * t + 2]) << 8 | UInt32(block[4 * t + 3])
        }
        for t in 16..<80 { w[t] = (w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]).rotatedLeft(1) }
        var a = h0, b = h1, c = h2, d = h3, e = h4
        for t in 0..<80 {
            let f: UInt32, k: UInt32
            switch t {
            case 0..<20: f = (b & c) | (~b & d); k = 0x5A82_7999
            case 20..<40: f = b ^ c ^ d; k = 0x6ED9_EBA1
            case 40..<60: f = (b & c) | (b & d) | (c & d); k = 0x8F1B_BCDC
            default: f = b ^ c ^ d; k = 0xCA62_C1D6
            }
            let temp = a.rotatedLeft(5) &+ f &+ e &+ k &+ w[t]
            e = d; d = c; c = b.rotatedLeft(30); b = a; a = temp
        }
        h0 &+= a; h1 &+= b; h2 &+= c; h3 &+= d; h4 &+= e
    }
}

/// HMAC-SHA1 (RFC 2104), the MESSAGE-INTEGRITY algorithm (RFC 8489 §14.5).
public struct HMACSHA1: Sendable {
    private var inner = SHA1()
    private var outerKeyPad: [UInt8]

    public init(key: [UInt8]) {
        // RFC 2104 §2: keys longer than the block are hashed first, then zero-padded to the block.
        var paddedKey = key.count > SHA1.blockLength ? SHA1.hash(key) : key
        paddedKey += repeatElement(0, count: SHA1.blockLength - paddedKey.count)
        inner.update(paddedKey.map { $0 ^ 0x36 })
        outerKeyPad = paddedKey.map { $0 ^ 0x5C }
    }

    public static func authenticationCode(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var hmac = HMACSHA1(key: key)
        hmac.update(message)
        return hmac.finalize()
    }

    public mutating func update<Bytes: Collection<UInt8>>(_ bytes: Bytes) { inner.update(bytes) }

    public mutating func finalize() -> [UInt8] {
        var outer = SHA1()
        outer.update(outerKeyPad)
        outer.update(inner.finalize())
        return outer.finalize()
    }
}

extension UInt32 {
    @inline(__always) fileprivate func rotatedLeft(_ n: UInt32) -> UInt32 { self << n | self >> (32 - n) }
}
