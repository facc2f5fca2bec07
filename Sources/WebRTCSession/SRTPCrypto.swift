import DTLS
import SRTP
import Synchronization

// mbedTLS's AES-128 and HMAC-SHA1 (DTLS target) under libsrtp (SRTP target): the two targets do
// not know each other, this one knows both.
extension MbedAES128: SRTPBlockEncryptor {}
extension MbedHMACSHA1: SRTPMessageAuthenticator {}

public enum SRTPCrypto {
    /// Which primitives libsrtp's AES-CM-128 and HMAC-SHA1 run on.
    public enum Choice: String, Sendable, CaseIterable {
        /// The CPU's AES and SHA instructions where it has them (AcceleratedAES128,
        /// AcceleratedHMACSHA1), else mbedTLS's (see SRTPCryptoBackend.swift for why not libsrtp's own).
        case cpuInstructions = "auto"
        /// mbedTLS's, even on a CPU with the instructions (for comparisons).
        case mbedTLS = "mbedtls"
        /// libsrtp's own crypto (Debian: NSS), for comparisons.
        case libsrtp = "libsrtp"
    }

    /// Which CPU instructions `.cpuInstructions` runs on here ("ARMv8 AES+SHA1", "AES-NI+SHA-NI", "none").
    public static var cpuInstructionsPath: String { CPUCryptoPath.name }

    /// Installs `choice` for the SRTP sessions made from now on (the process's owner decides, once,
    /// before the first session: the daemon from RTCAM_SRTP_CRYPTO, the benchmarks from their
    /// options). Nothing installed: libsrtp's own. Returns whether libsrtp's own crypto was replaced.
    @discardableResult
    public static func install(_ choice: Choice) -> Bool {
        switch choice {
        case .cpuInstructions: return installOwnCrypto(cpuInstructions: true)
        case .mbedTLS: return installOwnCrypto(cpuInstructions: false)
        case .libsrtp: return false  // nothing to install (a replacement, once made, stays)
        }
    }

    /// Installs the replacement primitives now (sessions created before keep theirs); with
    /// `cpuInstructions`, AES and HMAC-SHA1 run on the CPU's instructions when it has them.
    /// Primitives that fail libsrtp's known answers (checked by installCryptoBackend before anything
    /// uses them) are not installed: the CPU's then fall back to mbedTLS's.
    @discardableResult
    public static func installOwnCrypto(cpuInstructions: Bool = true) -> Bool {
        let path = cpuInstructionsPath
        if cpuInstructions, path != "none" {
            if SRTPSession.installCryptoBackend(backend(cpuInstructions: true)) {
                installed.withLock { $0 = "CPU instructions (\(path)), known answers checked" }
                return true
            }
            installed.withLock { $0 = "mbedTLS: the CPU instructions (\(path)) failed libsrtp's known answers" }
        } else {
            installed.withLock { $0 = cpuInstructions ? "mbedTLS (this CPU has no AES or SHA-1 instructions)" : "mbedTLS" }
        }
        return SRTPSession.installCryptoBackend(backend(cpuInstructions: false))
    }

    /// What the last install put in place, for the daemon's log.
    public static var installedDescription: String { installed.withLock { $0 } }
    private static let installed = Mutex<String>("libsrtp's own")

    private static func backend(cpuInstructions: Bool) -> SRTPCryptoBackend {
        SRTPCryptoBackend(
            makeAES128: { key in
                if cpuInstructions, let accelerated = AcceleratedAES128(key: key) { return accelerated }
                return MbedAES128(key: key)
            },
            makeHMACSHA1: { key in
                if cpuInstructions, let accelerated = AcceleratedHMACSHA1(key: key) { return accelerated }
                return MbedHMACSHA1(key: key)
            })
    }
}
