internal import CCPUCrypto

/// AES-128 on the CPU's AES instructions with several blocks in flight (see CCPUCrypto), for SRTP's
/// counter-mode keystream. `init` returns nil where the CPU lacks them, and the caller keeps another
/// implementation (mbedTLS's). Not thread-safe: one owner at a time.
public final class AcceleratedAES128: SRTPBlockEncryptor {
    /// True when this CPU has the instructions.
    public static var isAvailable: Bool { rtcam_aes_accelerated() != 0 }

    private let context: UnsafeMutablePointer<rtcam_aes128>

    /// nil unless `key` is 16 bytes and the CPU has the AES instructions.
    public init?(key: UnsafeRawBufferPointer) {
        guard Self.isAvailable, key.count == 16, let base = key.baseAddress else { return nil }
        context = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<rtcam_aes128>.size, alignment: 16)
            .bindMemory(to: rtcam_aes128.self, capacity: 1)
        rtcam_aes128_set_key(context, base.assumingMemoryBound(to: UInt8.self))
    }

    deinit {
        // The key schedule is the key: zero it before the memory goes back.
        UnsafeMutableRawPointer(context).initializeMemory(as: UInt8.self, repeating: 0,
                                                          count: MemoryLayout<rtcam_aes128>.size)
        context.deallocate()
    }

    public func encryptBlocks(_ blocks: UnsafeMutableRawPointer, count: Int) {
        rtcam_aes128_encrypt_blocks(context, blocks.assumingMemoryBound(to: UInt8.self), count)
    }
}
