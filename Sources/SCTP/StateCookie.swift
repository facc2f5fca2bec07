import RTCBase

/// What a server needs to set up the association when the COOKIE ECHO comes back, so that an INIT
/// alone costs it no state (RFC 9260 §5.1.3). Authenticated with the configuration's MAC.
struct StateCookie: Equatable {
    var created: MonotonicTime
    var localTag: UInt32
    var peerTag: UInt32
    var localInitialTSN: UInt32
    var peerInitialTSN: UInt32
    var peerWindow: UInt32
    var peerOutbound: UInt16
    var peerInbound: UInt16
    var peerForwardTSN: Bool
    var peerReconfig: Bool

    static let bodySize = 33

    func sealed(_ authenticator: ([UInt8]) -> [UInt8]) -> [UInt8] {
        var writer = ByteWriter(capacity: Self.bodySize + 32)
        writer.write(created.nanoseconds)
        writer.write(localTag)
        writer.write(peerTag)
        writer.write(localInitialTSN)
        writer.write(peerInitialTSN)
        writer.write(peerWindow)
        writer.write(peerOutbound)
        writer.write(peerInbound)
        writer.write((peerForwardTSN ? UInt8(1) : 0) | (peerReconfig ? 2 : 0))
        writer.write(contentsOf: authenticator(writer.bytes))
        return writer.bytes
    }

    /// nil unless the MAC over the body matches (compared in constant time).
    init?(opening bytes: [UInt8], authenticator: ([UInt8]) -> [UInt8]) {
        guard bytes.count > Self.bodySize else { return nil }
        let body = Array(bytes[0..<Self.bodySize])
        let expected = authenticator(body)
        guard expected.count == bytes.count - Self.bodySize else { return nil }
        var difference: UInt8 = 0
        for (index, byte) in expected.enumerated() { difference |= byte ^ bytes[Self.bodySize + index] }
        guard difference == 0 else { return nil }
        var reader = ByteReader(body)
        guard let created = try? reader.readUInt64(), let localTag = try? reader.readUInt32(),
              let peerTag = try? reader.readUInt32(), let localInitialTSN = try? reader.readUInt32(),
              let peerInitialTSN = try? reader.readUInt32(), let peerWindow = try? reader.readUInt32(),
              let peerOutbound = try? reader.readUInt16(), let peerInbound = try? reader.readUInt16(),
              let flags = try? reader.readUInt8() else { return nil }
        self.init(created: MonotonicTime(nanoseconds: created), localTag: localTag, peerTag: peerTag,
                  localInitialTSN: localInitialTSN, peerInitialTSN: peerInitialTSN, peerWindow: peerWindow,
                  peerOutbound: peerOutbound, peerInbound: peerInbound, peerForwardTSN: flags & 1 != 0,
                  peerReconfig: flags & 2 != 0)
    }

    init(created: MonotonicTime, localTag: UInt32, peerTag: UInt32, localInitialTSN: UInt32, peerInitialTSN: UInt32,
         peerWindow: UInt32, peerOutbound: UInt16, peerInbound: UInt16, peerForwardTSN: Bool, peerReconfig: Bool) {
        self.created = created
        self.localTag = localTag
        self.peerTag = peerTag
        self.localInitialTSN = localInitialTSN
        self.peerInitialTSN = peerInitialTSN
        self.peerWindow = peerWindow
        self.peerOutbound = peerOutbound
        self.peerInbound = peerInbound
        self.peerForwardTSN = peerForwardTSN
        self.peerReconfig = peerReconfig
    }
}
