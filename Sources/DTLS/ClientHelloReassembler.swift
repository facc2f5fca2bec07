/// Puts a fragmented ClientHello back together before mbedTLS sees it.
///
/// DTLS lets any handshake message be split over several records (RFC 6347 §4.2.3). Chromium 156's
/// ClientHello is about 1.4 kB (large key shares), more than fits one 1200-byte datagram, so it comes
/// in fragments; mbedTLS 2.28's server does not reassemble a ClientHello ("bad client hello
/// message"). Every other handshake message mbedTLS reassembles itself. The handshake transcript
/// is defined over the message as if it had been sent as one fragment (RFC 6347 §4.2.6), so handing
/// mbedTLS the reassembled message in one record changes nothing the peer can see.
struct ClientHelloReassembler {
    /// A ClientHello is a few kilobytes at most; anything larger is refused, not buffered.
    static let maximumMessageLength = 8 * 1024
    static let recordHeaderLength = 13
    static let handshakeHeaderLength = 12

    private var messageSequence: UInt16?
    private var messageLength = 0
    private var body: [UInt8] = []
    private var covered: [Bool] = []
    private var coveredCount = 0

    /// Takes the whole records of one datagram and returns what mbedTLS should read: records that
    /// are not ClientHello fragments unchanged and in order; fragments held back until the message
    /// is complete, then the whole message as a single record in place of its last fragment.
    mutating func process(_ records: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(records.count)
        var start = 0
        while start + Self.recordHeaderLength <= records.count {
            let length = Int(records[start + 11]) << 8 | Int(records[start + 12])
            let end = start + Self.recordHeaderLength + length
            guard end <= records.count else { break }
            if let whole = absorbFragment(records, recordStart: start, recordEnd: end) {
                output += whole
            } else if !isClientHelloFragment(records, recordStart: start, recordEnd: end) {
                output += records[start..<end]
            }
            start = end
        }
        return output
    }

    private func isClientHelloFragment(_ bytes: [UInt8], recordStart: Int, recordEnd: Int) -> Bool {
        guard let header = Self.handshakeHeader(bytes, recordStart: recordStart, recordEnd: recordEnd) else { return false }
        return header.fragmentOffset != 0 || header.fragmentLength != header.length
    }

    private struct HandshakeHeader {
        var length: Int
        var messageSequence: UInt16
        var fragmentOffset: Int
        var fragmentLength: Int
    }

    /// The handshake header of an epoch-0 ClientHello record (RFC 6347 §4.2.2), or nil.
    private static func handshakeHeader(_ bytes: [UInt8], recordStart: Int, recordEnd: Int) -> HandshakeHeader? {
        let contentType = bytes[recordStart]
        let epoch = Int(bytes[recordStart + 3]) << 8 | Int(bytes[recordStart + 4])
        let bodyStart = recordStart + recordHeaderLength
        guard contentType == 22, epoch == 0, recordEnd - bodyStart >= handshakeHeaderLength,
              bytes[bodyStart] == 1 else { return nil }
        func uint24(_ at: Int) -> Int { Int(bytes[at]) << 16 | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) }
        return HandshakeHeader(length: uint24(bodyStart + 1),
                               messageSequence: UInt16(bytes[bodyStart + 4]) << 8 | UInt16(bytes[bodyStart + 5]),
                               fragmentOffset: uint24(bodyStart + 6), fragmentLength: uint24(bodyStart + 9))
    }

    /// Stores one fragment; returns the reassembled record when this fragment completed the message.
    private mutating func absorbFragment(_ bytes: [UInt8], recordStart: Int, recordEnd: Int) -> [UInt8]? {
        guard let header = Self.handshakeHeader(bytes, recordStart: recordStart, recordEnd: recordEnd),
              header.fragmentOffset != 0 || header.fragmentLength != header.length else { return nil }
        let fragmentStart = recordStart + Self.recordHeaderLength + Self.handshakeHeaderLength
        guard header.length <= Self.maximumMessageLength,
              header.fragmentOffset + header.fragmentLength <= header.length,
              fragmentStart + header.fragmentLength <= recordEnd else { return nil }
        if messageSequence != header.messageSequence || messageLength != header.length {
            // A new ClientHello (the one after HelloVerifyRequest has message_seq 1): start over.
            messageSequence = header.messageSequence
            messageLength = header.length
            body = Array(repeating: 0, count: header.length)
            covered = Array(repeating: false, count: header.length)
            coveredCount = 0
        }
        for index in 0..<header.fragmentLength {
            let position = header.fragmentOffset + index
            body[position] = bytes[fragmentStart + index]
            if !covered[position] {
                covered[position] = true
                coveredCount += 1
            }
        }
        guard coveredCount == messageLength else { return nil }

        // One record: this fragment's record header (type, version, epoch 0, sequence number) with the
        // whole message as a single fragment.
        var record = Array(bytes[recordStart..<recordStart + 11])
        let recordLength = Self.handshakeHeaderLength + messageLength
        record += [UInt8(recordLength >> 8), UInt8(recordLength & 0xFF)]
        let length24: [UInt8] = [UInt8(messageLength >> 16), UInt8((messageLength >> 8) & 0xFF), UInt8(messageLength & 0xFF)]
        record.append(1)
        record += length24
        record += [UInt8(header.messageSequence >> 8), UInt8(header.messageSequence & 0xFF)]
        record += [0, 0, 0]
        record += length24
        record += body
        messageSequence = nil
        messageLength = 0
        body = []
        covered = []
        coveredCount = 0
        return record
    }
}
