/// Where the NAL units of an H.264 Annex-B byte stream are (ITU-T H.264 Annex B): the one scanner the
/// RTP packetizer and the media sources share. A start code is 00 00 01; a zero byte before it is
/// part of it (zero_byte, B.1.2); zero bytes before the next start code belong to no NAL unit
/// (trailing_zero_8bits). Bytes before the first start code and empty units are skipped; any bytes
/// are safe.
public enum AnnexBByteStream {
    public struct Unit: Equatable, Sendable {
        /// Where its start code (3 bytes, or 4 with the leading zero) begins.
        public var startCodeOffset: Int
        /// The NAL unit (header byte first), without start code and trailing zero bytes.
        public var payload: Range<Int>
    }

    public static func units(in stream: [UInt8]) -> [Unit] {
        var units: [Unit] = []
        let count = stream.count
        var current: (startCode: Int, payloadStart: Int)?
        func finish(at end: Int) {
            guard let current else { return }
            var last = end
            while last > current.payloadStart, stream[last - 1] == 0 { last -= 1 }
            if last > current.payloadStart {
                units.append(Unit(startCodeOffset: current.startCode, payload: current.payloadStart ..< last))
            }
        }
        stream.withUnsafeBufferPointer { bytes in
            var index = 2
            while index < count {
                let byte = bytes[index]
                if byte > 1 {
                    index += 3  // no start code can end at index, index + 1 or index + 2
                } else if byte == 0 {
                    index += 1
                } else {
                    if bytes[index - 1] == 0, bytes[index - 2] == 0 {
                        finish(at: index - 2)
                        let startCode = index >= 3 && bytes[index - 3] == 0 ? index - 3 : index - 2
                        current = (startCode, index + 1)
                    }
                    index += 3
                }
            }
        }
        finish(at: count)
        return units
    }
}
