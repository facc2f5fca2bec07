/// Which session sent each recent STUN Binding request from the media socket (full ICE, issue 19).
/// A response carries no ufrag, so its transaction ID (RFC 8489 §6) names the session it goes to.
/// Bounded: each session's oldest are forgotten beyond `perSession` (a full agent has at most a few
/// dozen checks out; a response that comes later is lost, and the check retransmitted or failed).
/// A response with an unknown ID goes nowhere; one with a known ID still has to pass the session's
/// own checks (source address, MESSAGE-INTEGRITY), so a forged one does nothing.
struct OutstandingChecks {
    static let perSession = 64
    private var sessionByTransaction: [[UInt8]: String] = [:]
    private var transactionsBySession: [String: [[UInt8]]] = [:]

    /// Notes the request's transaction ID for `session` (a retransmission is noted once).
    mutating func recordRequest(_ datagram: [UInt8], of session: String) {
        guard let transaction = Self.transactionID(ofBindingRequest: datagram),
              sessionByTransaction[transaction] == nil else { return }
        sessionByTransaction[transaction] = session
        transactionsBySession[session, default: []].append(transaction)
        if transactionsBySession[session]!.count > Self.perSession {
            sessionByTransaction[transactionsBySession[session]!.removeFirst()] = nil
        }
    }

    /// The session whose request this Binding response answers, if any.
    func session(answeredBy datagram: [UInt8]) -> String? {
        guard datagram.count >= 20, datagram[0] == 0x01, datagram[1] == 0x01 || datagram[1] == 0x11 else { return nil }
        return sessionByTransaction[Array(datagram[8..<20])]
    }

    mutating func removeSession(_ session: String) {
        for transaction in transactionsBySession.removeValue(forKey: session) ?? [] {
            sessionByTransaction[transaction] = nil
        }
    }

    var count: Int { sessionByTransaction.count }

    /// RFC 8489 §5: type 0x0001 (Binding request), then length, cookie and the 12-byte ID.
    static func transactionID(ofBindingRequest datagram: [UInt8]) -> [UInt8]? {
        guard datagram.count >= 20, datagram[0] == 0x00, datagram[1] == 0x01 else { return nil }
        return Array(datagram[8..<20])
    }
}
