import RTCBase
import STUN

/// The controlled, lite side (RFC 8445 §2.5): rtcam. It never sends checks; it answers the
/// peer's Binding requests (§7.3), follows the peer's nomination and watches consent (RFC 7675).
public struct ICELiteAgent: Sendable {
    public private(set) var local: ICECredentials
    public private(set) var remote: ICECredentials?
    public private(set) var selectedPath: TransportPath?
    public var selectedAddress: TransportAddress? { selectedPath?.remote }
    private var consentExpiry: MonotonicTime
    private var consentLost = false

    /// `remote` may be nil until it is known (a WHEP answer before trickle): the remote half of
    /// USERNAME is then not checked. The consent timer starts now, so a peer that never checks
    /// also ends in `.consentLost` after 30 s.
    public init(local: ICECredentials, remote: ICECredentials?, now: MonotonicTime) {
        self.local = local
        self.remote = remote
        consentExpiry = now + consentTimeout
    }

    /// Trickle or ICE restart (RFC 8445 §9).
    public mutating func setRemoteCredentials(_ credentials: ICECredentials) { remote = credentials }

    public var nextDeadline: MonotonicTime? { consentLost ? nil : consentExpiry }

    public mutating func handleTimeout(now: MonotonicTime) -> [ICEAction] {
        guard !consentLost, now >= consentExpiry else { return [] }
        consentLost = true  // RFC 7675 §5.1: stop sending; reported once
        return [.consentLost]
    }

    /// A datagram that came in on `path` (for a lite agent, the host base: it offers no relay).
    public mutating func receive(_ datagram: [UInt8], on path: TransportPath, now: MonotonicTime) -> [ICEAction] {
        guard !consentLost else { return [.rejected(reason: "consent already lost")] }
        let request: STUNMessage
        switch BindingRequestCheck.verify(datagram, on: path, local: local, remote: remote) {
        case let .valid(valid): request = valid
        case let .refused(actions): return actions
        }
        // RFC 8445 §7.3.1.1: a lite agent is always controlled; a peer that also claims the controlled
        // role is told to switch (as if our tie-breaker were the larger one).
        if request.iceControlled != nil {
            return reject(request, on: path, code: 487, phrase: "Role Conflict", key: local.integrityKey,
                          reason: "peer is controlled too")
        }

        // RFC 8445 §7.3.1.2: success response with the source as XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
        var actions: [ICEAction] = [.send(BindingRequestCheck.successResponse(to: request, from: path.remote, key: local.integrityKey),
                                          on: path),
                                    .checked(path)]
        // RFC 7675 §5.1: a valid check on the selected pair (or any, before selection) renews consent.
        if selectedPath == nil || selectedPath == path { consentExpiry = now + consentTimeout }
        // RFC 8445 §7.3.1.5 + §8.2 (lite): USE-CANDIDATE nominates the pair of this check. A later
        // nominated check from another address means the peer moved (e.g. a network change).
        if request.hasUseCandidate, selectedPath != path {
            selectedPath = path
            consentExpiry = now + consentTimeout
            actions.append(.selected(path))
        }
        return actions
    }

    /// A datagram from `source` straight to the media socket.
    public mutating func receive(_ datagram: [UInt8], from source: TransportAddress, now: MonotonicTime) -> [ICEAction] {
        receive(datagram, on: .host(source), now: now)
    }

    /// For the server's demultiplexer: the local ufrag of a Binding request's USERNAME
    /// ("localUfrag:remoteUfrag", RFC 8445 §7.2.2). Cheap: no parse of other attributes, no checks
    /// beyond bounds; safe on any bytes.
    public static func localUfrag(inBindingRequest datagram: [UInt8]) -> String? {
        guard datagram.count >= STUNMessage.headerLength, datagram[0] == 0x00, datagram[1] == 0x01,
              STUNMessage.looksLikeSTUN(datagram) else { return nil }
        let end = min(datagram.count, STUNMessage.headerLength + (Int(datagram[2]) << 8 | Int(datagram[3])))
        var offset = STUNMessage.headerLength
        while end - offset >= 4 {
            let type = UInt16(datagram[offset]) << 8 | UInt16(datagram[offset + 1])
            let length = Int(datagram[offset + 2]) << 8 | Int(datagram[offset + 3])
            let valueStart = offset + 4
            guard end - valueStart >= length else { return nil }
            if type == STUNAttribute.TypeCode.username {
                let value = datagram[valueStart..<valueStart + length]
                guard let colon = value.firstIndex(of: UInt8(ascii: ":")), colon > valueStart else { return nil }
                return String(decoding: value[valueStart..<colon], as: UTF8.self)
            }
            offset = valueStart + ((length + 3) & ~3)
        }
        return nil
    }

    private func reject(_ request: STUNMessage, on path: TransportPath, code: Int, phrase: String,
                        key: [UInt8]?, reason: String) -> [ICEAction] {
        BindingRequestCheck.errorResponse(to: request, on: path, code: code, phrase: phrase, key: key, reason: reason)
    }
}
