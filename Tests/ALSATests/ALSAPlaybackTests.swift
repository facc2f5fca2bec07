import ALSA
import Glibc
import Testing

@Suite("ALSA playback, no sound card (file plugin)")
struct ALSAPlaybackTests {
    @Test("what is written reaches the device sample-exact, interleaved S16_LE, in several writes of any size")
    func writesSampleExact() throws {
        let directory = try TemporaryDirectory()
        let outfile = directory.path + "/out.raw"
        let definition = """
            pcm.playtest { type file; slave.pcm { type null }; file "\(outfile)"; format "raw" }
            """
        let playback = try ALSAPlayback(configuration: ALSAPlaybackConfiguration(
            device: "playtest", pcmDefinition: definition, sampleRate: 48_000, channels: 2, periodMilliseconds: 10, periodsPerBuffer: 4))
        #expect(playback.sampleRate == 48_000)
        #expect(playback.channels == 2)
        #expect(playback.periodFrames == 480)
        #expect(playback.bufferFrames == 1920)
        // Left = counter, right = -counter; written in uneven pieces (one under a period, several over a buffer).
        let frames = 10_000
        var samples: [Int16] = []
        for i in 0..<frames { samples += [Int16(truncatingIfNeeded: i), Int16(truncatingIfNeeded: -i)] }
        var offset = 0
        for piece in [100, 4_000, 5_900] {
            try playback.write(Array(samples[offset * 2..<(offset + piece) * 2]))
            offset += piece
        }
        try playback.drain()
        #expect(playback.statistics.framesWritten == UInt64(frames))
        playback.close()
        playback.close()
        #expect(throws: ALSAError.closed) { try playback.write([0, 0]) }

        let fd = open(outfile, O_RDONLY | O_CLOEXEC)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(lseek(fd, 0, SEEK_END) == frames * 4)
        lseek(fd, 0, SEEK_SET)
        var bytes = [UInt8](repeating: 0, count: frames * 4)
        let got = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        #expect(got == frames * 4)
        var mismatches = 0
        for i in 0..<frames {
            let left = Int16(bitPattern: UInt16(bytes[4 * i]) | UInt16(bytes[4 * i + 1]) << 8)
            let right = Int16(bitPattern: UInt16(bytes[4 * i + 2]) | UInt16(bytes[4 * i + 3]) << 8)
            if left != Int16(truncatingIfNeeded: i) || right != Int16(truncatingIfNeeded: -i) { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test("invalid configurations and unknown devices fail with typed errors")
    func errors() {
        for configuration in [
            ALSAPlaybackConfiguration(device: "x", pcmDefinition: "pcm.x { type null }", channels: 3),
            ALSAPlaybackConfiguration(device: "x", pcmDefinition: "pcm.x { type null }", periodMilliseconds: 200),
            ALSAPlaybackConfiguration(device: "x", pcmDefinition: "pcm.x { type null }", periodsPerBuffer: 1),
        ] {
            #expect {
                _ = try ALSAPlayback(configuration: configuration)
            } throws: { error in
                guard case .invalidConfiguration = error as? ALSAError else { return false }
                return true
            }
        }
        #expect {
            _ = try ALSAPlayback(configuration: ALSAPlaybackConfiguration(device: "rtcam_none", pcmDefinition: "pcm.other { type null }"))
        } throws: { error in
            guard case let .open(device, code, _) = error as? ALSAError else { return false }
            return device == "rtcam_none" && code < 0
        }
    }
}
