internal import CCPUCrypto

/// HMAC-SHA1 on the CPU's SHA-1 instructions (x86-64 SHA-NI, ARMv8 SHA1; see CCPUCrypto), for SRTP's
/// authentication tags. `init` returns nil where the CPU lacks them, and the caller keeps another
/// implementation (mbedTLS's). Not thread-safe: one owner at a time.
public final class AcceleratedHMACSHA1: SRTPMessageAuthenticator {
    /// True when this CPU has the instructions.
    public static var isAvailable: Bool { rtcam_sha1_accelerated() != 0 }

    private let context: UnsafeMutablePointer<rtcam_hmac_sha1>

    public init?(key: UnsafeRawBufferPointer) {
        guard Self.isAvailable, let base = key.baseAddress, key.count > 0 else { return nil }
        context = .allocate(capacity: 1)
        rtcam_hmac_sha1_set_key(context, base.assumingMemoryBound(to: UInt8.self), key.count)
    }

    deinit {
        // The pads' states are as good as the key: zero them before the memory goes back.
        UnsafeMutableRawPointer(context).initializeMemory(as: UInt8.self, repeating: 0,
                                                          count: MemoryLayout<rtcam_hmac_sha1>.size)
        context.deallocate()
    }

    public func start() {
        rtcam_hmac_sha1_start(context)
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        rtcam_hmac_sha1_update(context, base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    public func finish(into digest: UnsafeMutableRawPointer) {
        rtcam_hmac_sha1_finish(context, digest.assumingMemoryBound(to: UInt8.self))
    }
}
