import RTCBase
import STUN

/// The checks every agent makes on a peer's Binding request before acting on it (RFC 8445 §7.3,
/// RFC 8489 §6.3 and §9.1.3), and the error responses it sends when one fails. Shared by the lite and
/// the full agent, so both refuse exactly the same requests in exactly the same way.
enum BindingRequestCheck {
    enum Verdict {
        /// Authenticated, for this session, nothing it does not understand: act on it.
        case valid(STUNMessage)
        /// Answered with an error or dropped: the actions say which.
        case refused([ICEAction])
    }

    /// `datagram` must already be known to be a STUN request (class and method are checked here too).
    /// `remote` may be nil until the peer's credentials are known (the remote half of USERNAME is then
    /// not compared).
    static func verify(_ datagram: [UInt8], on path: TransportPath, local: ICECredentials,
                       remote: ICECredentials?) -> Verdict {
        let request: STUNMessage
        do { request = try STUNMessage(parsing: datagram) } catch {
            return .refused([.rejected(reason: "malformed STUN: \(error)")])
        }
        guard request.messageClass == .request, request.method == STUNMessage.bindingMethod else {
            return .refused([.rejected(reason: "not a Binding request")])
        }
        // RFC 8489 §14.7: a FINGERPRINT that does not match means this is not STUN for us: drop silently.
        if request.fingerprint != nil, !STUNMessage.hasValidFingerprint(datagram) {
            return .refused([.rejected(reason: "bad FINGERPRINT")])
        }
        // RFC 8489 §9.1.3: without USERNAME and MESSAGE-INTEGRITY → 400.
        guard let username = request.username, request.messageIntegrity != nil else {
            return .refused(errorResponse(to: request, on: path, code: 400, phrase: "Bad Request", key: nil,
                                          reason: "missing USERNAME or MESSAGE-INTEGRITY"))
        }
        // RFC 8445 §7.3: USERNAME is "localUfrag:remoteUfrag" from our point of view.
        let parts = username.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0] == local.ufrag else {
            return .refused(errorResponse(to: request, on: path, code: 401, phrase: "Unauthenticated", key: nil,
                                          reason: "unknown username \(username)"))
        }
        // RFC 8489 §9.1.3: an integrity failure gets a 401 without MESSAGE-INTEGRITY.
        guard STUNMessage.hasValidIntegrity(datagram, key: local.integrityKey) else {
            return .refused(errorResponse(to: request, on: path, code: 401, phrase: "Unauthenticated", key: nil,
                                          reason: "bad MESSAGE-INTEGRITY from \(username)"))
        }
        // Authenticated, so from here on our answers carry MESSAGE-INTEGRITY.
        if let remote, parts[1] != remote.ufrag {
            return .refused(errorResponse(to: request, on: path, code: 401, phrase: "Unauthenticated",
                                          key: local.integrityKey, reason: "remote ufrag \(parts[1]) is not \(remote.ufrag)"))
        }
        // RFC 8489 §6.3.1: unknown comprehension-required attributes → 420 listing them.
        let unknownTypes = request.unknownComprehensionRequiredTypes
        if !unknownTypes.isEmpty {
            let list = unknownTypes.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
            return .refused(errorResponse(to: request, on: path, code: 420, phrase: "Unknown Attribute",
                                          key: local.integrityKey,
                                          extra: [.unknown(type: STUNAttribute.TypeCode.unknownAttributes, value: list)],
                                          reason: "unknown comprehension-required attributes \(unknownTypes)"))
        }
        return .valid(request)
    }

    /// RFC 8445 §7.3.1.2: a success response with the source as XOR-MAPPED-ADDRESS (RFC 8489 §14.2),
    /// signed with our password.
    static func successResponse(to request: STUNMessage, from source: TransportAddress, key: [UInt8]) -> [UInt8] {
        STUNMessage(messageClass: .successResponse, transactionID: request.transactionID,
                    attributes: [.xorMappedAddress(source)])
            .serialized(integrityKey: key, fingerprint: true)
    }

    static func errorResponse(to request: STUNMessage, on path: TransportPath, code: Int, phrase: String,
                              key: [UInt8]?, extra: [STUNAttribute] = [], reason: String) -> [ICEAction] {
        let response = STUNMessage(messageClass: .errorResponse, transactionID: request.transactionID,
                                   attributes: [.errorCode(code: code, reason: phrase)] + extra)
        return [.send(response.serialized(integrityKey: key, fingerprint: true), on: path),
                .rejected(reason: "\(code): \(reason)")]
    }
}
