import CUDPSocket
import RTCBase
#if canImport(Glibc)
import Glibc
import SystemSupport
#endif

/// What any live streamer pays this machine's kernel per frame, whatever its own code does: the
/// thread's CPU to sleep until the next frame and wake up (x264 alone pays it too), and to hand one
/// frame's datagrams to the kernel in one UDP GSO `sendmsg` to a viewer on loopback (x264 alone
/// does not send). Both paced at the frame rate, so caches are as cold as the daemon finds them.
/// The overhead benchmark prints them beside its ratios: they are the floor under the daemon's.
enum MachineFloorBench {
    static func run(_ options: Options) {
        let fps = options.int("fps", default: 30)
        let seconds = options.double("seconds", default: 4)
        let bitrate = options.int("bitrate", default: 2000)
        let jsonPath = options.string("json", default: "out/bench/floor.json")
        // The daemon's datagrams: 12-byte RTP header + up to 1150 bytes of payload + 10-byte
        // SRTP tag (MediaPacketizer.maxRTPPayloadSize, AES-CM/HMAC-SHA1-80).
        let datagramSize = 12 + 1150 + 10
        let frameBytes = max(1, bitrate * 1000 / 8 / fps)
        let segments = (frameBytes + 1149) / 1150
        // All full but the last, like a frame's FU-As.
        let lastDatagramSize = datagramSize - (segments * 1150 - frameBytes)
        let cycles = max(10, Int(seconds * Double(fps)))

        let receiver = LoopbackSink()
        let sender = rtcam_udp_bind_ipv4(0, 0, 1 << 21)
        guard sender >= 0 else { fail("cannot open a UDP socket: \(String(cString: strerror(-sender)))") }
        defer { close(sender) }

        let frame = [UInt8](repeating: 0xA5, count: datagramSize * (segments - 1) + lastDatagramSize)
        let audioPacket = [UInt8](repeating: 0x5A, count: 12 + 80 + 10)   // 32 kb/s Opus, 20 ms
        let interval = Duration.nanoseconds(Int64(1_000_000_000 / fps))

        // Sleeping and waking once per frame, nothing else.
        var sleepCPU: [Double] = []
        var next = MonotonicClock.now()
        for _ in 0 ..< cycles {
            next = next + interval
            let before = MonotonicClock.threadCPUNanoseconds()
            MonotonicClock.sleep(until: next)
            sleepCPU.append(Double(MonotonicClock.threadCPUNanoseconds() - before) / 1000)
        }
        // One frame's datagrams per frame interval, one GSO write (the sleep outside the bracket).
        var sendCPU: [Double] = []
        next = MonotonicClock.now()
        for _ in 0 ..< cycles {
            next = next + interval
            MonotonicClock.sleep(until: next)
            let before = MonotonicClock.threadCPUNanoseconds()
            receiver.send(frame, from: sender, segmentSize: segments > 1 ? datagramSize : 0, datagrams: segments)
            sendCPU.append(Double(MonotonicClock.threadCPUNanoseconds() - before) / 1000)
        }
        // One audio packet every 20 ms.
        var audioCPU: [Double] = []
        next = MonotonicClock.now()
        for _ in 0 ..< max(10, Int(seconds * 50)) {
            next = next + .milliseconds(20)
            MonotonicClock.sleep(until: next)
            let before = MonotonicClock.threadCPUNanoseconds()
            receiver.send(audioPacket, from: sender, segmentSize: 0, datagrams: 1)
            audioCPU.append(Double(MonotonicClock.threadCPUNanoseconds() - before) / 1000)
        }
        let received = receiver.stop()
        let sent = cycles * segments + audioCPU.count - receiver.dropped
        if received != sent { print("note: the viewer received \(received) of \(sent) datagrams sent (\(receiver.dropped) refused by a full send buffer)") }

        let sleep = Percentiles(sleepCPU)
        let send = Percentiles(sendCPU)
        let audio = Percentiles(audioCPU)
        printTable("this machine's floor: thread CPU (µs) per sleep/wake at \(fps) Hz, per frame sent (\(segments) datagrams, \(datagramSize) B but the last, one UDP GSO sendmsg to a loopback viewer), per 20 ms audio packet",
                   header: ["", "mean µs", "p50 µs", "p95 µs", "samples"],
                   rows: [["sleep + wake", format(sleep.mean, decimals: 1), format(sleep.p50, decimals: 1), format(sleep.p95, decimals: 1), String(sleep.count)],
                          ["frame send", format(send.mean, decimals: 1), format(send.p50, decimals: 1), format(send.p95, decimals: 1), String(send.count)],
                          ["audio packet send", format(audio.mean, decimals: 1), format(audio.p50, decimals: 1), format(audio.p95, decimals: 1), String(audio.count)]])
        let json = JSONValue.object([
            ("benchmark", .string("machine-floor")), ("fps", .int(fps)), ("bitrate_kbps", .int(bitrate)),
            ("datagrams_per_frame", .int(segments)), ("datagram_bytes", .int(datagramSize)),
            ("datagrams_sent", .int(sent)), ("datagrams_received", .int(received)), ("datagrams_dropped", .int(receiver.dropped)),
            ("sleep_wake_us", sleep.json), ("frame_send_us", send.json), ("audio_send_us", audio.json),
        ])
        writeFile(jsonPath, json.serialized() + "\n")
        print("json: \(jsonPath)")
    }
}

/// A UDP socket on 127.0.0.1 and a thread reading it, as a viewer on the same machine would.
private final class LoopbackSink: @unchecked Sendable {
    private let descriptor: CInt
    private var address = sockaddr_in()
    private let stopFlag = StopFlag()
    private var reader: DedicatedThread?
    private let count = ReceivedCount()

    private final class ReceivedCount: @unchecked Sendable {
        var value = 0
    }

    init() {
        descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { fail("cannot open the receiving socket") }
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        var size: CInt = 1 << 22
        setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<CInt>.size))
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
        }
        guard bound else { fail("cannot bind the receiving socket on 127.0.0.1") }
        let readable = descriptor, stopFlag = stopFlag, count = count
        reader = DedicatedThread.start(name: "rtcam-bench") {
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while !stopFlag.isStopped {
                let got = buffer.withUnsafeMutableBytes { recv(readable, $0.baseAddress, $0.count, 0) }
                if got > 0 { count.value += 1 }
            }
        }
    }

    /// Datagrams a full send buffer refused (EAGAIN, ENOBUFS): counted, as the daemon counts them.
    private(set) var dropped = 0

    func send(_ bytes: [UInt8], from sender: CInt, segmentSize: Int, datagrams: Int) {
        let sent = bytes.withUnsafeBytes { raw in
            var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress), iov_len: raw.count)
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    rtcam_udp_send(sender, $0, socklen_t(MemoryLayout<sockaddr_in>.size), &vector, 1, UInt16(segmentSize))
                }
            }
        }
        guard sent < 0 else { return }
        let code = Int32(-sent)
        if code == EAGAIN || code == ENOBUFS {
            dropped += datagrams
        } else {
            fail("sendmsg to the loopback viewer failed: \(String(cString: strerror(code)))\(segmentSize > 0 ? " (UDP GSO)" : "")")
        }
    }

    /// Stops the reader; the datagrams it received.
    func stop() -> Int {
        MonotonicClock.sleep(until: MonotonicClock.now() + .milliseconds(200))   // the reader drains its queue first
        stopFlag.stop()
        reader?.join()
        close(descriptor)
        return count.value
    }
}
