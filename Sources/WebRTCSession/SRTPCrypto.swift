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
    /// Once per process, before the first session: libsrtp's AES-CM-128 and HMAC-SHA1 run on the
    /// CPU's AES and SHA instructions where it has them (AcceleratedAES128, AcceleratedHMACSHA1),
    /// else on mbedTLS (see SRTPCryptoBackend.swift for why not libsrtp's own).
    /// `RTCAM_SRTP_CRYPTO=mbedtls` keeps mbedTLS's even on such a CPU, `RTCAM_SRTP_CRYPTO=libsrtp`
    /// libsrtp's own crypto (Debian: NSS), for comparisons. True when libsrtp's own is replaced.
    public static let replacesLibsrtpCrypto: Bool = {
        let choice = getenv("RTCAM_SRTP_CRYPTO").map { String(cString: $0) }
        if choice == "libsrtp" { return false }
        return installOwnCrypto(cpuInstructions: choice != "mbedtls")
    }()

    /// Installs the replacement primitives now (sessions created before keep theirs); with
    /// `cpuInstructions`, AES and HMAC-SHA1 run on the CPU's instructions when it has them.
    @discardableResult
    public static func installOwnCrypto(cpuInstructions: Bool = true) -> Bool {
        SRTPSession.installCryptoBackend(SRTPCryptoBackend(
            makeAES128: { key in
                if cpuInstructions, let accelerated = AcceleratedAES128(key: key) { return accelerated }
                return AES128BlockEncryptor(key: key)
            },
            makeHMACSHA1: { key in
                if cpuInstructions, let accelerated = AcceleratedHMACSHA1(key: key) { return accelerated }
                return HMACSHA1(key: key)
            }))
    }
}
