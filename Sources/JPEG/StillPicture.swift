public import MediaSources

/// Failures of the JPEG target.
public enum JPEGError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A requested size the source cannot give (zero, larger than the source, not a number).
    case invalidSize(String)
    /// libjpeg-turbo refused (its message).
    case library(String)

    public var description: String {
        switch self {
        case let .invalidSize(reason): return "invalid size: \(reason)"
        case let .library(message): return "libjpeg-turbo: \(message)"
        }
    }
}

/// A packed 4:2:0 picture (Y, then U, then V; strides equal to the widths), what the JPEG encoder
/// takes. Width and height are even.
public struct I420Picture: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var bytes: [UInt8]

    public var chromaWidth: Int { width / 2 }
    public var chromaHeight: Int { height / 2 }
    public var lumaCount: Int { width * height }
    public var chromaCount: Int { chromaWidth * chromaHeight }
}

/// Turns a raw frame of any capture layout (I420, NV12, YUYV) into the 4:2:0 picture a still is
/// coded from, scaled down to a requested width (nearest sample: a still for a dashboard, not a
/// filter bank). Pure Swift, no state: tested alone.
public enum StillPicture {
    /// The smallest width a still may be asked for.
    public static let minimumWidth = 16

    /// The size of a still `requestedWidth` wide (nil: the source's), keeping the aspect ratio; both
    /// even. A width over the source's gives the source's (stills are never scaled up).
    public static func outputSize(sourceWidth: Int, sourceHeight: Int, requestedWidth: Int?) throws(JPEGError) -> (width: Int, height: Int) {
        guard sourceWidth >= 2, sourceHeight >= 2 else {
            throw .invalidSize("the source is \(sourceWidth)x\(sourceHeight)")
        }
        let evenSourceWidth = sourceWidth & ~1
        let evenSourceHeight = sourceHeight & ~1
        guard let requestedWidth else { return (evenSourceWidth, evenSourceHeight) }
        guard requestedWidth >= minimumWidth else { throw .invalidSize("width must be at least \(minimumWidth)") }
        let width = min(requestedWidth, evenSourceWidth) & ~1
        let height = max(2, (sourceHeight * width / sourceWidth) & ~1)
        return (width, height)
    }

    /// `frame` as a `width`x`height` I420 picture (sizes from `outputSize`).
    public static func i420(from frame: RawVideoFrame, width: Int, height: Int) throws(JPEGError) -> I420Picture {
        guard width >= 2, height >= 2, width % 2 == 0, height % 2 == 0, width <= frame.width, height <= frame.height else {
            throw .invalidSize("\(width)x\(height) from a \(frame.width)x\(frame.height) frame")
        }
        let chromaWidth = width / 2, chromaHeight = height / 2
        let lumaCount = width * height, chromaCount = chromaWidth * chromaHeight
        // Which source column and row each output sample comes from (nearest, centred).
        let columns = (0..<width).map { ($0 * 2 + 1) * frame.width / (width * 2) }
        let rows = (0..<height).map { ($0 * 2 + 1) * frame.height / (height * 2) }
        let sourceChromaWidth = frame.width / 2, sourceChromaHeight = frame.height / 2
        let chromaColumns = (0..<chromaWidth).map { min(sourceChromaWidth - 1, ($0 * 2 + 1) * sourceChromaWidth / (chromaWidth * 2)) }
        let chromaRows = (0..<chromaHeight).map { min(sourceChromaHeight - 1, ($0 * 2 + 1) * sourceChromaHeight / (chromaHeight * 2)) }
        let format = frame.pixelFormat
        let bytes = frame.withPlanes { planes in
            [UInt8](unsafeUninitializedCapacity: lumaCount + 2 * chromaCount) { output, initialized in
                let out = output.baseAddress!
                switch format {
                case .i420, .nv12:
                    let y = planes[0]
                    for row in 0..<height {
                        let source = y.bytes.baseAddress!.assumingMemoryBound(to: UInt8.self) + rows[row] * y.stride
                        let target = out + row * width
                        for column in 0..<width { target[column] = source[columns[column]] }
                    }
                    if format == .i420 {
                        for (index, plane) in [planes[1], planes[2]].enumerated() {
                            let base = out + lumaCount + index * chromaCount
                            for row in 0..<chromaHeight {
                                let source = plane.bytes.baseAddress!.assumingMemoryBound(to: UInt8.self) + chromaRows[row] * plane.stride
                                let target = base + row * chromaWidth
                                for column in 0..<chromaWidth { target[column] = source[chromaColumns[column]] }
                            }
                        }
                    } else {
                        let uv = planes[1]
                        for row in 0..<chromaHeight {
                            let source = uv.bytes.baseAddress!.assumingMemoryBound(to: UInt8.self) + chromaRows[row] * uv.stride
                            let u = out + lumaCount + row * chromaWidth
                            let v = out + lumaCount + chromaCount + row * chromaWidth
                            for column in 0..<chromaWidth {
                                u[column] = source[chromaColumns[column] * 2]
                                v[column] = source[chromaColumns[column] * 2 + 1]
                            }
                        }
                    }
                case .yuyv:
                    let packed = planes[0]
                    let base = packed.bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                    for row in 0..<height {
                        let source = base + rows[row] * packed.stride
                        let target = out + row * width
                        for column in 0..<width { target[column] = source[columns[column] * 2] }
                    }
                    for row in 0..<chromaHeight {
                        // 4:2:2 has chroma on every row: take the row the 4:2:0 sample sits on.
                        let source = base + min(frame.height - 1, chromaRows[row] * 2) * packed.stride
                        let u = out + lumaCount + row * chromaWidth
                        let v = out + lumaCount + chromaCount + row * chromaWidth
                        for column in 0..<chromaWidth {
                            u[column] = source[chromaColumns[column] * 4 + 1]
                            v[column] = source[chromaColumns[column] * 4 + 3]
                        }
                    }
                }
                initialized = lumaCount + 2 * chromaCount
            }
        }
        return I420Picture(width: width, height: height, bytes: bytes)
    }
}

/// What a JPEG says about itself, read from its frame header (ITU T.81 §B.2.2), for tests and checks.
public enum JPEGInfo {
    /// Width and height from the first SOFn marker; nil if `bytes` is no JPEG (no SOI, or no SOF).
    public static func dimensions(of bytes: [UInt8]) -> (width: Int, height: Int)? {
        guard bytes.count > 4, bytes[0] == 0xFF, bytes[1] == 0xD8 else { return nil }
        var index = 2
        while index + 4 <= bytes.count {
            guard bytes[index] == 0xFF else { return nil }
            let marker = bytes[index + 1]
            if marker == 0xFF { index += 1; continue }
            let length = Int(bytes[index + 2]) << 8 | Int(bytes[index + 3])
            // SOF0...SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            if (0xC0...0xCF).contains(marker), marker != 0xC4, marker != 0xC8, marker != 0xCC {
                guard index + 9 <= bytes.count else { return nil }
                let height = Int(bytes[index + 5]) << 8 | Int(bytes[index + 6])
                let width = Int(bytes[index + 7]) << 8 | Int(bytes[index + 8])
                return (width, height)
            }
            if marker == 0xDA { return nil }  // start of scan before any frame header
            index += 2 + length
        }
        return nil
    }
}
