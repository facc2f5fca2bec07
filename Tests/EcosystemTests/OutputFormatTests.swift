import MediaSources
import RTCBase
import Testing

@testable import JPEG
@testable import OutputFormats

@Suite("MJPEG multipart framing, Prometheus text, JPEG stills")
struct OutputFormatTests {
    @Test func multipartPartsReadBackWhateverTheCuts() throws {
        let jpegs: [[UInt8]] = [[0xFF, 0xD8, 1, 2, 0xFF, 0xD9], [0xFF, 0xD8] + Array("--rtcamframe\r\n\r\n".utf8) + [0xFF, 0xD9], [0xFF, 0xD8, 0xFF, 0xD9]]
        let wire = jpegs.enumerated().flatMap { MultipartJPEG.part(jpeg: $1, timestampMicroseconds: Int64($0) * 33_333) }
        #expect(String(decoding: MultipartJPEG.part(jpeg: [1], timestampMicroseconds: 1_000_042), as: UTF8.self)
                == "--rtcamframe\r\nContent-Type: image/jpeg\r\nContent-Length: 1\r\nX-Timestamp: 1.000042\r\n\r\n\u{01}\r\n")
        for step in [1, 7, 64, wire.count] {
            var reader = MultipartJPEG.Reader()
            var index = 0
            while index < wire.count {
                try reader.append(Array(wire[index..<min(wire.count, index + step)]))
                index += step
            }
            #expect(reader.parts == jpegs)
        }
        var reader = MultipartJPEG.Reader()
        #expect(throws: MultipartJPEG.Reader.Failure.self) { try reader.append(Array("--other\r\nContent-Length: 1\r\n\r\nx".utf8)) }
        reader = MultipartJPEG.Reader()
        #expect(throws: MultipartJPEG.Reader.Failure.self) { try reader.append(Array("--rtcamframe\r\nContent-Length: -4\r\n\r\n".utf8)) }
    }

    @Test func prometheusTextFormat() {
        var text = PrometheusText()
        text.metric("rtcam_frames_encoded_total", .counter, help: "Frames.\nSecond line \\ here", 42)
        text.family("rtcam_viewer_rtt_seconds", .gauge, help: "RTT.")
        text.sample("rtcam_viewer_rtt_seconds", [("viewer", "a\"b\\c\nd")], 0.025)
        text.family("rtcam_viewer_rtt_seconds", .gauge, help: "declared twice: once")
        text.sample("rtcam_viewer_rtt_seconds", [("viewer", "x"), ("kind", "y")], Double.infinity)
        text.sample("rtcam_viewer_rtt_seconds", [], Double.nan)
        #expect(text.text == """
            # HELP rtcam_frames_encoded_total Frames.\\nSecond line \\\\ here
            # TYPE rtcam_frames_encoded_total counter
            rtcam_frames_encoded_total 42
            # HELP rtcam_viewer_rtt_seconds RTT.
            # TYPE rtcam_viewer_rtt_seconds gauge
            rtcam_viewer_rtt_seconds{viewer="a\\"b\\\\c\\nd"} 0.025
            rtcam_viewer_rtt_seconds{viewer="x",kind="y"} +Inf
            rtcam_viewer_rtt_seconds NaN

            """)
    }

    @Test func stillSizes() throws {
        #expect(try StillPicture.outputSize(sourceWidth: 1280, sourceHeight: 720, requestedWidth: nil) == (1280, 720))
        #expect(try StillPicture.outputSize(sourceWidth: 1280, sourceHeight: 720, requestedWidth: 320) == (320, 180))
        #expect(try StillPicture.outputSize(sourceWidth: 1280, sourceHeight: 720, requestedWidth: 333) == (332, 186))
        #expect(try StillPicture.outputSize(sourceWidth: 640, sourceHeight: 480, requestedWidth: 4000) == (640, 480))
        #expect(throws: JPEGError.self) { try StillPicture.outputSize(sourceWidth: 640, sourceHeight: 480, requestedWidth: 8) }
    }

    /// A picture whose left half is dark and right half bright, in each capture layout, scaled and coded:
    /// the JPEG says the asked size, and the layouts agree sample for sample after conversion.
    @Test func encodesEveryLayoutScaled() throws {
        let width = 64, height = 48
        var i420 = [UInt8](repeating: 128, count: width * height * 3 / 2)
        for y in 0..<height { for x in 0..<width { i420[y * width + x] = x < width / 2 ? 30 : 220 } }
        var nv12 = Array(i420[0..<(width * height)]) + [UInt8](repeating: 0, count: width * height / 2)
        for index in 0..<(width * height / 4) {
            nv12[width * height + index * 2] = 100
            nv12[width * height + index * 2 + 1] = 160
            i420[width * height + index] = 100
            i420[width * height * 5 / 4 + index] = 160
        }
        var yuyv = [UInt8](repeating: 0, count: width * height * 2)
        for y in 0..<height { for x in stride(from: 0, to: width, by: 2) {
            let base = (y * width + x) * 2
            yuyv[base] = i420[y * width + x]; yuyv[base + 1] = 100; yuyv[base + 2] = i420[y * width + x + 1]; yuyv[base + 3] = 160
        } }
        let frames = try [
            RawVideoFrame(width: width, height: height, pixelFormat: .i420, bytes: i420, captureTime: .zero, sequenceNumber: 1),
            RawVideoFrame(width: width, height: height, pixelFormat: .nv12, bytes: nv12, captureTime: .zero, sequenceNumber: 1),
            RawVideoFrame(width: width, height: height, pixelFormat: .yuyv, bytes: yuyv, captureTime: .zero, sequenceNumber: 1),
        ]
        let pictures = try frames.map { try StillPicture.i420(from: $0, width: 32, height: 24) }
        #expect(pictures[0] == pictures[1])
        #expect(pictures[0] == pictures[2])
        #expect(pictures[0].bytes[0] == 30 && pictures[0].bytes[31] == 220)
        #expect(pictures[0].bytes[(32 * 24)...].prefix(16 * 12).allSatisfy { $0 == 100 })
        let encoder = try JPEGEncoder()
        let jpeg = try encoder.encode(pictures[0], quality: 80)
        #expect(JPEGInfo.dimensions(of: jpeg)! == (32, 24))
        #expect(Array(jpeg.suffix(2)) == [0xFF, 0xD9])
        let full = try encoder.encode(StillPicture.i420(from: frames[0], width: width, height: height), quality: 80)
        #expect(JPEGInfo.dimensions(of: full)! == (64, 48))
        #expect(JPEGInfo.dimensions(of: [1, 2, 3, 4, 5]) == nil)
        #expect(JPEGInfo.dimensions(of: [0xFF, 0xD8, 0xFF, 0xDA, 0, 2]) == nil)
    }
}
