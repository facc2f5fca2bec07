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
    /// Once per process, before the first session: libsrtp's AES-CM-128 and HMAC-SHA1 come from
    /// mbedTLS (see SRTPCryptoBackend.swift for why). `RTCAM_SRTP_CRYPTO=libsrtp` keeps libsrtp's
    /// own (Debian: NSS), for comparisons. True when mbedTLS's are in use.
    public static let usesMbedTLS: Bool = {
        if let choice = getenv("RTCAM_SRTP_CRYPTO"), String(cString: choice) == "libsrtp" { return false }
        return installMbedTLS()
    }()

    /// Installs mbedTLS's primitives now (sessions created before keep theirs).
    @discardableResult
    public static func installMbedTLS() -> Bool {
        SRTPSession.installCryptoBackend(SRTPCryptoBackend(
            makeAES128: { key in AES128BlockEncryptor(key: key) },
            makeHMACSHA1: { key in HMACSHA1(key: key) }))
    }
}
