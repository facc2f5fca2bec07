import RTCBase
import RTP
import SRTP
import WebRTCSession
import SystemSupport

/// `rtcam-bench srtp`: SRTP protect (and unprotect) throughput on one core through rtcam's own
/// `SRTPSession` (libsrtp2), with packets the size the daemon sends: ≤ 1200-byte datagrams.
enum SRTPBench {
    static func run(_ options: Options) {
        let seconds = options.double("seconds", default: 2)
        let payloadSize = options.int("payload", default: 1200 - 12 - 16)
        let jsonPath = options.string("json", default: "out/bench/srtp.json")
        var random = SeededRandom(seed: 0x5A7B)
        var rows: [[String]] = []
        var results: [JSONValue] = []
        // libsrtp's own crypto (Debian: NSS) first, then AES-CM/HMAC-SHA1 through mbedTLS, then on
        // the CPU's AES and SHA instructions as the daemon uses them where it can
        // (WebRTCSession.SRTPCrypto): sessions keep the crypto they were made with.
        var runs: [(SRTPProfile, String)] = [(.aeadAes128Gcm, "libsrtp"), (.aes128CmHmacSha1_80, "libsrtp"),
                                             (.aes128CmHmacSha1_80, "mbedtls")]
        if AcceleratedAES128.isAvailable && AcceleratedHMACSHA1.isAvailable {
            runs.append((.aes128CmHmacSha1_80, "cpu: " + CPUCryptoPath.name))
        }
        for (profile, crypto) in runs {
            if crypto != "libsrtp" && !SRTPCrypto.installOwnCrypto(cpuInstructions: crypto.hasPrefix("cpu: ")) {
                fail("libsrtp refused rtcam's AES/HMAC-SHA1")
            }
            let keys = SRTPKeyingMaterial(profile: profile, exported: random.bytes(profile.keyingMaterialLength))
            guard let sender = try? SRTPSession(keys: keys, isClient: false),
                  let receiver = try? SRTPSession(keys: keys, isClient: true) else {
                fail("SRTPSession refused \(profile)")
            }
            var packet = RTPPacket(payloadType: 96, marker: false, sequenceNumber: 0, timestamp: 90_000,
                                   ssrc: 0x1234_5678, payload: random.bytes(payloadSize)).serialized()
            // Protect: a new sequence number per packet, as the fan-out does.
            var protectedCopies: [[UInt8]] = []
            var sequence: UInt16 = 0
            var bytes = 0
            /// Calls `protect` with a fresh packet, 256 at a time, for `seconds` of wall time; the
            /// packets protected and the thread's CPU seconds.
            func timed(_ protect: ([UInt8]) -> Void) -> (packets: Int, cpu: Double) {
                var count = 0
                let cpuStart = MonotonicClock.threadCPUNanoseconds()
                let end = MonotonicClock.now() + .nanoseconds(Int64(seconds * 1e9))
                repeat {
                    for _ in 0 ..< 256 {
                        sequence &+= 1
                        packet[2] = UInt8(sequence >> 8)
                        packet[3] = UInt8(sequence & 0xFF)
                        protect(packet)
                    }
                    count += 256
                } while MonotonicClock.now() < end
                return (count, Double(MonotonicClock.threadCPUNanoseconds() - cpuStart) / 1e9)
            }
            let (count, protectCPU) = timed { packet in
                guard let protected = try? sender.protectRTP(packet) else { fail("protect failed") }
                bytes += protected.count
                if protectedCopies.count < 1024 { protectedCopies.append(protected) }
            }
            // The daemon's path: each viewer's packets protected in place into one reused batch,
            // with the viewer's payload type, emptied after a frame's 8 packets.
            var batch = DatagramBatch()
            let (batched, batchCPU) = timed { packet in
                if batch.count == 8 { batch.removeAll() }
                do {
                    try batch.append { (storage: inout [UInt8]) throws(SRTPError) in
                        try sender.protectRTP(packet, appendingTo: &storage) { RTPFixedHeader.setPayloadType(102, in: $0) }
                    }
                } catch {
                    fail("protect into a batch failed: \(error)")
                }
            }
            let batchNs = batchCPU * 1e9 / Double(batched)
            // Unprotect: the load generator's per-packet cost (fresh receiver per 1024 so no replay).
            var unprotected = 0
            let cpuUnprotect = MonotonicClock.threadCPUNanoseconds()
            let unprotectEnd = MonotonicClock.now() + .nanoseconds(Int64(seconds * 1e9))
            while MonotonicClock.now() < unprotectEnd {
                guard let fresh = try? SRTPSession(keys: keys, isClient: true) else { fail("SRTPSession") }
                for copy in protectedCopies { if (try? fresh.unprotectRTP(copy)) != nil { unprotected += 1 } }
            }
            _ = receiver
            let unprotectCPU = Double(MonotonicClock.threadCPUNanoseconds() - cpuUnprotect) / 1e9
            let packetsPerSecond = Double(count) / protectCPU
            let megabitsPerSecond = Double(bytes) * 8 / 1e6 / protectCPU
            let nanosecondsPerPacket = protectCPU * 1e9 / Double(count)
            let unprotectNs = unprotectCPU * 1e9 / Double(max(1, unprotected))
            // 2 Mb/s of 1200-byte packets is about 210 packets per second per viewer.
            let viewersPerCore = packetsPerSecond / 210
            rows.append([String(describing: profile), crypto, String(packet.count), format(packetsPerSecond / 1000, decimals: 1),
                         format(megabitsPerSecond, decimals: 0), format(nanosecondsPerPacket, decimals: 0),
                         format(batchNs, decimals: 0), format(unprotectNs, decimals: 0), format(viewersPerCore, decimals: 0)])
            results.append(.object([
                ("profile", .string(String(describing: profile))), ("crypto", .string(crypto)),
                ("rtp_bytes", .int(packet.count)),
                ("protect_packets", .int(count)), ("protect_cpu_s", .double(protectCPU)),
                ("protect_packets_per_s", .double(packetsPerSecond)), ("protect_mbit_per_s", .double(megabitsPerSecond)),
                ("protect_ns_per_packet", .double(nanosecondsPerPacket)), ("protect_into_batch_ns_per_packet", .double(batchNs)),
                ("unprotect_ns_per_packet", .double(unprotectNs)),
                ("viewers_per_core_at_2mbps", .double(viewersPerCore)),
            ]))
        }
        printTable("SRTP on one core (rtcam SRTPSession over libsrtp2: 'protect' into a new array per packet, 'into batch' in place into a reused buffer as the daemon sends)",
                   header: ["profile", "crypto", "RTP bytes", "kpkt/s", "Mb/s", "ns/pkt protect", "ns/pkt into batch", "ns/pkt unprotect", "2 Mb/s viewers/core"],
                   rows: rows)
        writeFile(jsonPath, JSONValue.object([("benchmark", .string("srtp")), ("results", .array(results))]).serialized() + "\n")
        print("json: \(jsonPath)")
    }
}
