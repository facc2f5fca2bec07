import RTCBase

/// An SCTP packet (RFC 9260 §3): the common header and its chunks. Over DTLS (RFC 8261 §4) a packet
/// is one DTLS application-data record, with no UDP header of its own.
public struct SCTPPacket: Equatable, Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var verificationTag: UInt32
    public var chunks: [SCTPChunk]

    public static let commonHeaderSize = 12

    public init(sourcePort: UInt16, destinationPort: UInt16, verificationTag: UInt32, chunks: [SCTPChunk]) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.verificationTag = verificationTag
        self.chunks = chunks
    }

    /// Parses a whole packet. The checksum is checked first (RFC 9260 §6.8) unless `verifyChecksum`
    /// is false (tests of hand-written vectors).
    public init(parsing bytes: [UInt8], verifyChecksum: Bool = true) throws(SCTPError) {
        guard bytes.count >= Self.commonHeaderSize else {
            throw .malformed(.truncated(context: "SCTP common header", needed: 12, available: bytes.count))
        }
        if verifyChecksum, !Self.hasValidChecksum(bytes) { throw .badChecksum }
        var reader = ByteReader(bytes)
        do {
            sourcePort = try reader.readUInt16("source port")
            destinationPort = try reader.readUInt16("destination port")
            verificationTag = try reader.readUInt32("verification tag")
            try reader.skip(4, "checksum")
            var chunks: [SCTPChunk] = []
            while !reader.isAtEnd {
                // RFC 9260 §3.2: chunks are padded to 4 bytes; trailing padding alone is not a chunk.
                if reader.remaining < 4 {
                    try reader.skip(reader.remaining)
                    break
                }
                switch try SCTPChunk(parsing: &reader) {
                case let .some(chunk): chunks.append(chunk)
                case .none: break
                }
            }
            self.chunks = chunks
        } catch {
            throw .malformed(error)
        }
    }

    /// RFC 9260 appendix A: the CRC32c of the packet with the checksum field taken as zero, stored
    /// least significant byte first.
    public static func hasValidChecksum(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= commonHeaderSize else { return false }
        let stored = UInt32(bytes[8]) | UInt32(bytes[9]) << 8 | UInt32(bytes[10]) << 16 | UInt32(bytes[11]) << 24
        return stored == checksum(bytes, from: 0)
    }

    /// The checksum of the packet that starts at `start` and runs to the end of `bytes`.
    static func checksum(_ bytes: [UInt8], from start: Int) -> UInt32 {
        var crc = CRC32c.update(~0, bytes, start..<start + 8)
        crc = CRC32c.update(crc, zeros, 0..<4)
        crc = CRC32c.update(crc, bytes, start + 12..<bytes.count)
        return ~crc
    }

    private static let zeros: [UInt8] = [0, 0, 0, 0]

    public var serializedSize: Int { Self.commonHeaderSize + chunks.reduce(0) { $0 + $1.paddedSize } }

    public func serialize(into writer: inout ByteWriter) {
        let start = writer.count
        writer.write(sourcePort)
        writer.write(destinationPort)
        writer.write(verificationTag)
        writer.write(UInt32(0))
        for chunk in chunks { chunk.serialize(into: &writer) }
        let crc = Self.checksum(writer.bytes, from: start)
        writer.bytes[start + 8] = UInt8(truncatingIfNeeded: crc)
        writer.bytes[start + 9] = UInt8(truncatingIfNeeded: crc >> 8)
        writer.bytes[start + 10] = UInt8(truncatingIfNeeded: crc >> 16)
        writer.bytes[start + 11] = UInt8(truncatingIfNeeded: crc >> 24)
    }

    public func serialized() -> [UInt8] {
        var writer = ByteWriter(capacity: serializedSize)
        serialize(into: &writer)
        return writer.bytes
    }
}

/// Chunk type codes (RFC 9260 §3.2, RFC 3758 §3.2, RFC 6525 §3.1).
public enum SCTPChunkType {
    public static let data: UInt8 = 0
    public static let initiation: UInt8 = 1
    public static let initiationAck: UInt8 = 2
    public static let sack: UInt8 = 3
    public static let heartbeat: UInt8 = 4
    public static let heartbeatAck: UInt8 = 5
    public static let abort: UInt8 = 6
    public static let shutdown: UInt8 = 7
    public static let shutdownAck: UInt8 = 8
    public static let error: UInt8 = 9
    public static let cookieEcho: UInt8 = 10
    public static let cookieAck: UInt8 = 11
    public static let shutdownComplete: UInt8 = 14
    public static let reconfig: UInt8 = 130
    public static let forwardTSN: UInt8 = 192
}

/// A DATA chunk (RFC 9260 §3.3.1). The payload is a slice of the packet it came in (no copy).
public struct DataChunk: Equatable, Sendable {
    public var tsn: UInt32
    public var stream: UInt16
    public var ssn: UInt16
    public var ppid: UInt32
    public var unordered: Bool
    public var beginning: Bool
    public var ending: Bool
    /// I bit (RFC 7053): the receiver is asked to SACK at once.
    public var immediate: Bool
    public var payload: ArraySlice<UInt8>

    public init(tsn: UInt32, stream: UInt16, ssn: UInt16, ppid: UInt32, unordered: Bool = false,
                beginning: Bool = true, ending: Bool = true, immediate: Bool = false, payload: ArraySlice<UInt8>) {
        self.tsn = tsn
        self.stream = stream
        self.ssn = ssn
        self.ppid = ppid
        self.unordered = unordered
        self.beginning = beginning
        self.ending = ending
        self.immediate = immediate
        self.payload = payload
    }

    public static let headerSize = 16
}

/// An optional or variable-length parameter of INIT / INIT ACK (RFC 9260 §3.2.1).
public struct SCTPParameter: Equatable, Sendable {
    public var type: UInt16
    public var value: [UInt8]

    public init(type: UInt16, value: [UInt8]) {
        self.type = type
        self.value = value
    }

    public static let stateCookie: UInt16 = 7
    public static let unrecognizedParameter: UInt16 = 8
    /// RFC 9260 §3.3.2.1 ("ECN capable", reserved): ignored.
    public static let ecnCapable: UInt16 = 0x8000
    /// RFC 5061 §4.2.7.
    public static let supportedExtensions: UInt16 = 0x8008
    /// RFC 3758 §3.1.
    public static let forwardTSNSupported: UInt16 = 0xC000
}

/// INIT and INIT ACK share a layout (RFC 9260 §3.3.2, §3.3.3).
public struct InitChunk: Equatable, Sendable {
    public var initiateTag: UInt32
    public var advertisedReceiverWindow: UInt32
    public var outboundStreams: UInt16
    public var inboundStreams: UInt16
    public var initialTSN: UInt32
    public var parameters: [SCTPParameter]

    public init(initiateTag: UInt32, advertisedReceiverWindow: UInt32, outboundStreams: UInt16, inboundStreams: UInt16,
                initialTSN: UInt32, parameters: [SCTPParameter]) {
        self.initiateTag = initiateTag
        self.advertisedReceiverWindow = advertisedReceiverWindow
        self.outboundStreams = outboundStreams
        self.inboundStreams = inboundStreams
        self.initialTSN = initialTSN
        self.parameters = parameters
    }

    public var stateCookie: [UInt8]? { parameters.first { $0.type == SCTPParameter.stateCookie }?.value }

    /// RFC 3758 §3.1 (the parameter) or RFC 5061 §4.2.7 (FORWARD TSN in the supported extensions).
    public var supportsForwardTSN: Bool {
        parameters.contains { $0.type == SCTPParameter.forwardTSNSupported }
            || supportedExtensions.contains(SCTPChunkType.forwardTSN)
    }

    public var supportsReconfig: Bool { supportedExtensions.contains(SCTPChunkType.reconfig) }

    public var supportedExtensions: [UInt8] {
        parameters.first { $0.type == SCTPParameter.supportedExtensions }?.value ?? []
    }
}

/// A gap ack block, as offsets from the cumulative TSN ack (RFC 9260 §3.3.4).
public struct GapAckBlock: Equatable, Sendable {
    public var start: UInt16
    public var end: UInt16

    public init(start: UInt16, end: UInt16) {
        self.start = start
        self.end = end
    }
}

public struct SackChunk: Equatable, Sendable {
    public var cumulativeTSNAck: UInt32
    public var advertisedReceiverWindow: UInt32
    public var gapAckBlocks: [GapAckBlock]
    public var duplicateTSNs: [UInt32]

    public init(cumulativeTSNAck: UInt32, advertisedReceiverWindow: UInt32, gapAckBlocks: [GapAckBlock] = [],
                duplicateTSNs: [UInt32] = []) {
        self.cumulativeTSNAck = cumulativeTSNAck
        self.advertisedReceiverWindow = advertisedReceiverWindow
        self.gapAckBlocks = gapAckBlocks
        self.duplicateTSNs = duplicateTSNs
    }
}

/// An error cause (RFC 9260 §3.3.10) in ABORT or ERROR.
public struct SCTPErrorCause: Equatable, Sendable {
    public var code: UInt16
    public var information: [UInt8]

    public init(code: UInt16, information: [UInt8] = []) {
        self.code = code
        self.information = information
    }

    public static let invalidStreamIdentifier: UInt16 = 1
    public static let missingMandatoryParameter: UInt16 = 2
    public static let staleCookie: UInt16 = 3
    public static let unrecognizedChunkType: UInt16 = 6
    public static let protocolViolation: UInt16 = 13
    public static let userInitiatedAbort: UInt16 = 12
}

/// FORWARD TSN (RFC 3758 §3.2): the peer may move its cumulative TSN to `newCumulativeTSN`, and
/// the ordered streams listed skip up to the stream sequence number given.
public struct ForwardTSNChunk: Equatable, Sendable {
    public struct Skipped: Equatable, Sendable {
        public var stream: UInt16
        public var ssn: UInt16
        public init(stream: UInt16, ssn: UInt16) {
            self.stream = stream
            self.ssn = ssn
        }
    }

    public var newCumulativeTSN: UInt32
    public var skipped: [Skipped]

    public init(newCumulativeTSN: UInt32, skipped: [Skipped]) {
        self.newCumulativeTSN = newCumulativeTSN
        self.skipped = skipped
    }
}

/// The parameters of RE-CONFIG (RFC 6525 §4) that rtcam uses; others are kept as they came.
public enum ReconfigParameter: Equatable, Sendable {
    /// §4.1: the sender resets its outgoing streams (all of them when `streams` is empty).
    case outgoingResetRequest(requestSequence: UInt32, responseSequence: UInt32, senderLastTSN: UInt32, streams: [UInt16])
    /// §4.2: the sender asks the peer to reset the peer's outgoing streams.
    case incomingResetRequest(requestSequence: UInt32, streams: [UInt16])
    /// §4.4.
    case response(responseSequence: UInt32, result: UInt32)
    case other(type: UInt16, value: [UInt8])

    public static let outgoingResetType: UInt16 = 13
    public static let incomingResetType: UInt16 = 14
    public static let responseType: UInt16 = 16

    /// §4.4 result codes.
    public enum Result {
        public static let successNothingToDo: UInt32 = 0
        public static let successPerformed: UInt32 = 1
        public static let denied: UInt32 = 2
        public static let errorWrongSSN: UInt32 = 3
        public static let errorRequestAlreadyInProgress: UInt32 = 4
        public static let errorBadSequenceNumber: UInt32 = 5
        public static let inProgress: UInt32 = 6
    }
}

public enum SCTPChunk: Equatable, Sendable {
    case data(DataChunk)
    case initiation(InitChunk)
    case initiationAck(InitChunk)
    case sack(SackChunk)
    /// HEARTBEAT and HEARTBEAT ACK carry the sender-specific information opaque (RFC 9260 §3.3.5).
    case heartbeat(info: [UInt8])
    case heartbeatAck(info: [UInt8])
    /// T bit: the verification tag is the sender's own, reflected (RFC 9260 §3.3.7).
    case abort(reflected: Bool, causes: [SCTPErrorCause])
    case shutdown(cumulativeTSNAck: UInt32)
    case shutdownAck
    case error(causes: [SCTPErrorCause])
    case cookieEcho(cookie: [UInt8])
    case cookieAck
    case shutdownComplete(reflected: Bool)
    case forwardTSN(ForwardTSNChunk)
    case reconfig([ReconfigParameter])
    /// A chunk type this implementation does not know; kept so the caller can act on its upper bits
    /// (RFC 9260 §3.2).
    case unknown(type: UInt8, flags: UInt8, value: [UInt8])

    public static let headerSize = 4

    /// Parses one chunk and its padding. Returns nil for nothing (never: kept for symmetry).
    init?(parsing reader: inout ByteReader) throws(ParseError) {
        let type = try reader.readUInt8("chunk type")
        let flags = try reader.readUInt8("chunk flags")
        let length = Int(try reader.readUInt16("chunk length"))
        guard length >= 4 else { throw .invalid("chunk length \(length) < 4") }
        let valueRange = try reader.readRange(length - 4, "chunk value")
        // RFC 9260 §3.2: the last chunk's padding may be missing only if the packet ends there.
        let padding = (4 - length % 4) % 4
        try reader.skip(min(padding, reader.remaining))
        var value = ByteReader(reader.bytes, range: valueRange)
        switch type {
        case SCTPChunkType.data:
            guard valueRange.count > 12 else { throw .invalid("DATA chunk without user data") }  // §3.3.1: length >= 17
            let tsn = try value.readUInt32("TSN")
            let stream = try value.readUInt16("stream")
            let ssn = try value.readUInt16("SSN")
            let ppid = try value.readUInt32("PPID")
            self = .data(DataChunk(tsn: tsn, stream: stream, ssn: ssn, ppid: ppid, unordered: flags & 0x04 != 0,
                                   beginning: flags & 0x02 != 0, ending: flags & 0x01 != 0, immediate: flags & 0x08 != 0,
                                   payload: reader.bytes[value.offset..<value.endIndex]))
        case SCTPChunkType.initiation, SCTPChunkType.initiationAck:
            let chunk = InitChunk(
                initiateTag: try value.readUInt32("initiate tag"),
                advertisedReceiverWindow: try value.readUInt32("a_rwnd"),
                outboundStreams: try value.readUInt16("OS"),
                inboundStreams: try value.readUInt16("MIS"),
                initialTSN: try value.readUInt32("initial TSN"),
                parameters: try Self.parseParameters(&value))
            self = type == SCTPChunkType.initiation ? .initiation(chunk) : .initiationAck(chunk)
        case SCTPChunkType.sack:
            let cumulative = try value.readUInt32("cumulative TSN ack")
            let window = try value.readUInt32("a_rwnd")
            let gapCount = Int(try value.readUInt16("gap block count"))
            let duplicateCount = Int(try value.readUInt16("duplicate count"))
            guard value.remaining >= 4 * (gapCount + duplicateCount) else {
                throw .truncated(context: "SACK blocks", needed: 4 * (gapCount + duplicateCount), available: value.remaining)
            }
            var gaps: [GapAckBlock] = []
            gaps.reserveCapacity(gapCount)
            for _ in 0..<gapCount {
                gaps.append(GapAckBlock(start: try value.readUInt16("gap start"), end: try value.readUInt16("gap end")))
            }
            var duplicates: [UInt32] = []
            duplicates.reserveCapacity(duplicateCount)
            for _ in 0..<duplicateCount { duplicates.append(try value.readUInt32("duplicate TSN")) }
            self = .sack(SackChunk(cumulativeTSNAck: cumulative, advertisedReceiverWindow: window,
                                   gapAckBlocks: gaps, duplicateTSNs: duplicates))
        case SCTPChunkType.heartbeat, SCTPChunkType.heartbeatAck:
            // §3.3.5: one Heartbeat Info parameter (type 1); its value is ours to define.
            let parameterType = try value.readUInt16("heartbeat info type")
            let parameterLength = Int(try value.readUInt16("heartbeat info length"))
            guard parameterType == 1, parameterLength >= 4 else { throw .invalid("heartbeat info parameter") }
            let info = try value.readBytes(parameterLength - 4, "heartbeat info")
            self = type == SCTPChunkType.heartbeat ? .heartbeat(info: info) : .heartbeatAck(info: info)
        case SCTPChunkType.abort:
            self = .abort(reflected: flags & 1 != 0, causes: try Self.parseCauses(&value))
        case SCTPChunkType.shutdown:
            self = .shutdown(cumulativeTSNAck: try value.readUInt32("cumulative TSN ack"))
        case SCTPChunkType.shutdownAck:
            self = .shutdownAck
        case SCTPChunkType.error:
            self = .error(causes: try Self.parseCauses(&value))
        case SCTPChunkType.cookieEcho:
            self = .cookieEcho(cookie: value.readRemaining())
        case SCTPChunkType.cookieAck:
            self = .cookieAck
        case SCTPChunkType.shutdownComplete:
            self = .shutdownComplete(reflected: flags & 1 != 0)
        case SCTPChunkType.forwardTSN:
            let cumulative = try value.readUInt32("new cumulative TSN")
            var skipped: [ForwardTSNChunk.Skipped] = []
            while value.remaining >= 4 {
                skipped.append(.init(stream: try value.readUInt16("stream"), ssn: try value.readUInt16("SSN")))
            }
            self = .forwardTSN(ForwardTSNChunk(newCumulativeTSN: cumulative, skipped: skipped))
        case SCTPChunkType.reconfig:
            var parameters: [ReconfigParameter] = []
            for parameter in try Self.parseParameters(&value) {
                var field = ByteReader(parameter.value)
                switch parameter.type {
                case ReconfigParameter.outgoingResetType:
                    let request = try field.readUInt32("request sequence")
                    let response = try field.readUInt32("response sequence")
                    let last = try field.readUInt32("sender's last assigned TSN")
                    var streams: [UInt16] = []
                    while field.remaining >= 2 { streams.append(try field.readUInt16("stream")) }
                    parameters.append(.outgoingResetRequest(requestSequence: request, responseSequence: response,
                                                            senderLastTSN: last, streams: streams))
                case ReconfigParameter.incomingResetType:
                    let request = try field.readUInt32("request sequence")
                    var streams: [UInt16] = []
                    while field.remaining >= 2 { streams.append(try field.readUInt16("stream")) }
                    parameters.append(.incomingResetRequest(requestSequence: request, streams: streams))
                case ReconfigParameter.responseType:
                    parameters.append(.response(responseSequence: try field.readUInt32("response sequence"),
                                                result: try field.readUInt32("result")))
                default:
                    parameters.append(.other(type: parameter.type, value: parameter.value))
                }
            }
            self = .reconfig(parameters)
        default:
            self = .unknown(type: type, flags: flags, value: value.readRemaining())
        }
    }

    /// TLV parameters padded to 4 bytes (RFC 9260 §3.2.1).
    static func parseParameters(_ reader: inout ByteReader) throws(ParseError) -> [SCTPParameter] {
        var parameters: [SCTPParameter] = []
        while reader.remaining >= 4 {
            let type = try reader.readUInt16("parameter type")
            let length = Int(try reader.readUInt16("parameter length"))
            guard length >= 4 else { throw .invalid("parameter length \(length) < 4") }
            let value = try reader.readBytes(length - 4, "parameter value")
            try reader.skip(min((4 - length % 4) % 4, reader.remaining))
            parameters.append(SCTPParameter(type: type, value: value))
        }
        return parameters
    }

    static func parseCauses(_ reader: inout ByteReader) throws(ParseError) -> [SCTPErrorCause] {
        try parseParameters(&reader).map { SCTPErrorCause(code: $0.type, information: $0.value) }
    }

    public var type: UInt8 {
        switch self {
        case .data: return SCTPChunkType.data
        case .initiation: return SCTPChunkType.initiation
        case .initiationAck: return SCTPChunkType.initiationAck
        case .sack: return SCTPChunkType.sack
        case .heartbeat: return SCTPChunkType.heartbeat
        case .heartbeatAck: return SCTPChunkType.heartbeatAck
        case .abort: return SCTPChunkType.abort
        case .shutdown: return SCTPChunkType.shutdown
        case .shutdownAck: return SCTPChunkType.shutdownAck
        case .error: return SCTPChunkType.error
        case .cookieEcho: return SCTPChunkType.cookieEcho
        case .cookieAck: return SCTPChunkType.cookieAck
        case .shutdownComplete: return SCTPChunkType.shutdownComplete
        case .forwardTSN: return SCTPChunkType.forwardTSN
        case .reconfig: return SCTPChunkType.reconfig
        case let .unknown(type, _, _): return type
        }
    }

    static func parametersSize(_ parameters: [SCTPParameter]) -> Int {
        parameters.reduce(0) { $0 + 4 + ($1.value.count + 3) & ~3 }
    }

    static func reconfigSize(_ parameter: ReconfigParameter) -> Int {
        switch parameter {
        case let .outgoingResetRequest(_, _, _, streams): return 16 + (2 * streams.count + 3) & ~3
        case let .incomingResetRequest(_, streams): return 8 + (2 * streams.count + 3) & ~3
        case .response: return 12
        case let .other(_, value): return 4 + (value.count + 3) & ~3
        }
    }

    /// Chunk length field: header and value, without the final padding.
    public var length: Int {
        switch self {
        case let .data(chunk): return 4 + 12 + chunk.payload.count
        // §3.2: the length counts the padding of every parameter but the last.
        case let .initiation(chunk), let .initiationAck(chunk):
            return 4 + 16 + Self.parametersSize(chunk.parameters) - Self.lastPadding(chunk.parameters.last?.value.count)
        case let .sack(chunk): return 4 + 12 + 4 * (chunk.gapAckBlocks.count + chunk.duplicateTSNs.count)
        case let .heartbeat(info), let .heartbeatAck(info): return 4 + 4 + info.count
        case let .abort(_, causes), let .error(causes):
            return 4 + causes.reduce(0) { $0 + 4 + ($1.information.count + 3) & ~3 } - Self.lastPadding(causes.last?.information.count)
        case .shutdown: return 8
        case .shutdownAck, .cookieAck, .shutdownComplete: return 4
        case let .cookieEcho(cookie): return 4 + cookie.count
        case let .forwardTSN(chunk): return 8 + 4 * chunk.skipped.count
        case let .reconfig(parameters):
            var last = 0
            if case let .outgoingResetRequest(_, _, _, streams)? = parameters.last { last = 2 * streams.count }
            if case let .incomingResetRequest(_, streams)? = parameters.last { last = 2 * streams.count }
            if case let .other(_, value)? = parameters.last { last = value.count }
            return 4 + parameters.reduce(0) { $0 + Self.reconfigSize($1) } - Self.lastPadding(last)
        case let .unknown(_, _, value): return 4 + value.count
        }
    }

    public var paddedSize: Int { (length + 3) & ~3 }

    static func lastPadding(_ count: Int?) -> Int { (4 - (count ?? 0) % 4) % 4 }

    var flags: UInt8 {
        switch self {
        case let .data(chunk):
            return (chunk.immediate ? 0x08 : 0) | (chunk.unordered ? 0x04 : 0) | (chunk.beginning ? 0x02 : 0) | (chunk.ending ? 0x01 : 0)
        case let .abort(reflected, _), let .shutdownComplete(reflected): return reflected ? 1 : 0
        case let .unknown(_, flags, _): return flags
        default: return 0
        }
    }

    public func serialize(into writer: inout ByteWriter) {
        let length = self.length
        let start = writer.count
        writer.write(type)
        writer.write(flags)
        writer.write(UInt16(truncatingIfNeeded: length))
        switch self {
        case let .data(chunk):
            writer.write(chunk.tsn)
            writer.write(chunk.stream)
            writer.write(chunk.ssn)
            writer.write(chunk.ppid)
            writer.write(contentsOf: chunk.payload)
        case let .initiation(chunk), let .initiationAck(chunk):
            writer.write(chunk.initiateTag)
            writer.write(chunk.advertisedReceiverWindow)
            writer.write(chunk.outboundStreams)
            writer.write(chunk.inboundStreams)
            writer.write(chunk.initialTSN)
            Self.write(chunk.parameters, into: &writer)
        case let .sack(chunk):
            writer.write(chunk.cumulativeTSNAck)
            writer.write(chunk.advertisedReceiverWindow)
            writer.write(UInt16(truncatingIfNeeded: chunk.gapAckBlocks.count))
            writer.write(UInt16(truncatingIfNeeded: chunk.duplicateTSNs.count))
            for block in chunk.gapAckBlocks {
                writer.write(block.start)
                writer.write(block.end)
            }
            for tsn in chunk.duplicateTSNs { writer.write(tsn) }
        case let .heartbeat(info), let .heartbeatAck(info):
            writer.write(UInt16(1))
            writer.write(UInt16(truncatingIfNeeded: 4 + info.count))
            writer.write(contentsOf: info)
        case let .abort(_, causes), let .error(causes):
            Self.write(causes.map { SCTPParameter(type: $0.code, value: $0.information) }, into: &writer)
        case let .shutdown(cumulative):
            writer.write(cumulative)
        case .shutdownAck, .cookieAck, .shutdownComplete:
            break
        case let .cookieEcho(cookie):
            writer.write(contentsOf: cookie)
        case let .forwardTSN(chunk):
            writer.write(chunk.newCumulativeTSN)
            for skipped in chunk.skipped {
                writer.write(skipped.stream)
                writer.write(skipped.ssn)
            }
        case let .reconfig(parameters):
            for parameter in parameters {
                switch parameter {
                case let .outgoingResetRequest(request, response, last, streams):
                    writer.write(ReconfigParameter.outgoingResetType)
                    writer.write(UInt16(truncatingIfNeeded: 16 + 2 * streams.count))
                    writer.write(request)
                    writer.write(response)
                    writer.write(last)
                    for stream in streams { writer.write(stream) }
                    if streams.count % 2 == 1 { writer.writeZeros(2) }
                case let .incomingResetRequest(request, streams):
                    writer.write(ReconfigParameter.incomingResetType)
                    writer.write(UInt16(truncatingIfNeeded: 8 + 2 * streams.count))
                    writer.write(request)
                    for stream in streams { writer.write(stream) }
                    if streams.count % 2 == 1 { writer.writeZeros(2) }
                case let .response(response, result):
                    writer.write(ReconfigParameter.responseType)
                    writer.write(UInt16(12))
                    writer.write(response)
                    writer.write(result)
                case let .other(type, value):
                    Self.write([SCTPParameter(type: type, value: value)], into: &writer)
                }
            }
        case let .unknown(_, _, value):
            writer.write(contentsOf: value)
        }
        writer.writeZeros(max(0, start + paddedSize - writer.count))
    }

    static func write(_ parameters: [SCTPParameter], into writer: inout ByteWriter) {
        for parameter in parameters {
            writer.write(parameter.type)
            writer.write(UInt16(truncatingIfNeeded: 4 + parameter.value.count))
            writer.write(contentsOf: parameter.value)
            writer.writeZeros((4 - parameter.value.count % 4) % 4)
        }
    }
}
