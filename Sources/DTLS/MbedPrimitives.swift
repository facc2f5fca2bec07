// mbedTLS block cipher and MAC touch points: AES-128 and HMAC-SHA1, the same calls in 2.28 and 3.6.
// AES uses AES-NI when the CPU has it; on aarch64 only 3.6 uses the ARMv8 crypto extensions
// (MBEDTLS_AESCE_C: Raspberry Pi 5's Cortex-A76 has them, the Pi 4's and 3's cores do not). The SRTP
// layer keys libsrtp's AES_CM_128_HMAC_SHA1_80 transforms with these (WebRTCSession wires them in):
// Debian's libsrtp2 is built against NSS, whose per-packet PKCS#11 context set-up costs more than
// the crypto itself and whose key objects weigh tens of kilobytes per viewer.
internal import CMbedTLS
#if canImport(Glibc)
import Glibc
#endif

/// An AES-128 encryption key schedule. Not thread-safe: one owner at a time.
public final class MbedAES128 {
    private let context: UnsafeMutablePointer<mbedtls_aes_context>

    /// nil unless `key` is 16 bytes.
    public init?(key: UnsafeRawBufferPointer) {
        guard key.count == 16, let base = key.baseAddress else { return nil }
        context = .allocate(capacity: 1)
        mbedtls_aes_init(context)
        guard mbedtls_aes_setkey_enc(context, base.assumingMemoryBound(to: UInt8.self), 128) == 0 else {
            mbedtls_aes_free(context)
            context.deallocate()
            return nil
        }
    }

    deinit {
        mbedtls_aes_free(context)  // zeroes the key schedule
        context.deallocate()
    }

    /// Encrypts `count` consecutive 16-byte blocks in place (ECB: the caller builds counter blocks).
    public func encryptBlocks(_ blocks: UnsafeMutableRawPointer, count: Int) {
        let bytes = blocks.assumingMemoryBound(to: UInt8.self)
        for index in 0..<count {
            let block = bytes + index * 16
            // In place is allowed: the AES-NI and table implementations read the block before writing.
            _ = mbedtls_aes_crypt_ecb(context, MBEDTLS_AES_ENCRYPT, block, block)
        }
    }
}

/// HMAC-SHA1 (RFC 2104) with a fixed key: the inner and outer pads are hashed once at set-up
/// and every `start` begins from them. Not thread-safe: one owner at a time.
public final class MbedHMACSHA1 {
    public static let digestLength = 20
    private let context: UnsafeMutablePointer<mbedtls_md_context_t>

    /// nil when mbedTLS cannot set up SHA-1 (not in the build) or `key` is empty.
    public init?(key: UnsafeRawBufferPointer) {
        guard let info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA1), let base = key.baseAddress, key.count > 0
        else { return nil }
        context = .allocate(capacity: 1)
        mbedtls_md_init(context)
        guard mbedtls_md_setup(context, info, 1) == 0,
              mbedtls_md_hmac_starts(context, base.assumingMemoryBound(to: UInt8.self), key.count) == 0 else {
            mbedtls_md_free(context)
            context.deallocate()
            return nil
        }
    }

    deinit {
        mbedtls_md_free(context)  // zeroes the pads and state
        context.deallocate()
    }

    /// Starts a new message (RFC 2104: H(K xor ipad, ...)).
    public func start() {
        _ = mbedtls_md_hmac_reset(context)
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        _ = mbedtls_md_hmac_update(context, base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    /// Writes the 20-byte MAC of the message so far.
    public func finish(into digest: UnsafeMutableRawPointer) {
        _ = mbedtls_md_hmac_finish(context, digest.assumingMemoryBound(to: UInt8.self))
    }
}
