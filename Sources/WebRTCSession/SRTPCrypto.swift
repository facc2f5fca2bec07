import DTLS
#if canImport(Glibc)
import Glibc
#endif
import SRTP

// mbedTLS's AES-128 and HMAC-SHA1 (DTLS target) under libsrtp (SRTP target): the two targets do
// not know each other, this one knows both.
extension AES128BlockEncryptor: SRTPBlockEncryptor {}
extension HMACSHA1: SRTPMessageAuthenticator {}

public enum SRTPCrypto {
    /// Once per process, before the first session: libsrtp's AES-CM-128 comes from mbedTLS and its
    /// HMAC-SHA1 from the CPU's SHA instructions where it has them (AcceleratedHMACSHA1), else from
    /// mbedTLS (see SRTPCryptoBackend.swift for why). `RTCAM_SRTP_CRYPTO=mbedtls` keeps mbedTLS's
    /// HMAC-SHA1 even on such a CPU, `RTCAM_SRTP_CRYPTO=libsrtp` libsrtp's own crypto (Debian: NSS),
    /// for comparisons. True when mbedTLS's AES is in use.
    public static let usesMbedTLS: Bool = {
        let choice = getenv("RTCAM_SRTP_CRYPTO").map { String(cString: $0) }
        if choice == "libsrtp" { return false }
        return installMbedTLS(acceleratedSHA1: choice != "mbedtls")
    }()

    /// Installs mbedTLS's primitives now (sessions created before keep theirs); with
    /// `acceleratedSHA1`, HMAC-SHA1 runs on the CPU's SHA instructions when it has them.
    @discardableResult
    public static func installMbedTLS(acceleratedSHA1: Bool = true) -> Bool {
        SRTPSession.installCryptoBackend(SRTPCryptoBackend(
            makeAES128: { key in AES128BlockEncryptor(key: key) },
            makeHMACSHA1: { key in
                if acceleratedSHA1, let accelerated = AcceleratedHMACSHA1(key: key) { return accelerated }
                return HMACSHA1(key: key)
            }))
    }

    /// Which HMAC-SHA1 new sessions get, for logs and benchmarks.
    public static var hmacDescription: String {
        AcceleratedHMACSHA1.isAvailable ? "SHA-NI" : "mbedTLS"
    }
}
