/// The DTLS-SRTP protection profiles rtcam negotiates (RFC 5764 §4.1.2, RFC 7714 §14.2).
public enum SRTPProfile: UInt16, Sendable, CaseIterable {
    case aes128CmHmacSha1_80 = 0x0001
    case aeadAes128Gcm = 0x0007

    public var masterKeyLength: Int { 16 }
    public var masterSaltLength: Int {
        switch self {
        case .aes128CmHmacSha1_80: return 14
        case .aeadAes128Gcm: return 12
        }
    }

    /// Length of the DTLS exporter output: client key, server key, client salt, server salt
    /// (RFC 5764 §4.2).
    public var keyingMaterialLength: Int { 2 * (masterKeyLength + masterSaltLength) }
}

/// SRTP keys exported from a finished DTLS handshake (RFC 5764 §4.2), already split.
public struct SRTPKeyingMaterial: Sendable, Equatable {
    public var profile: SRTPProfile
    public var clientKey: [UInt8]
    public var clientSalt: [UInt8]
    public var serverKey: [UInt8]
    public var serverSalt: [UInt8]

    public init(profile: SRTPProfile, exported: [UInt8]) {
        let k = profile.masterKeyLength, s = profile.masterSaltLength
        precondition(exported.count == 2 * (k + s), "exporter output has the wrong length")
        self.profile = profile
        clientKey = Array(exported[0..<k])
        serverKey = Array(exported[k..<2 * k])
        clientSalt = Array(exported[2 * k..<2 * k + s])
        serverSalt = Array(exported[2 * k + s..<2 * k + 2 * s])
    }
}
