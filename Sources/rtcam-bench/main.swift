#if canImport(Glibc)
import Glibc
#endif

// rtcam-bench: the measuring tools behind `make bench` (Tests/Benchmarks/run_all.py drives them
// against the daemon and the peers). Numbers only mean something from a release build.
let usage = """
usage: rtcam-bench <command> [options]

  x264      x264 alone: the daemon's test pattern encoded with the daemon's X264Encoder settings,
            paced at the frame rate; CPU from getrusage.
            --size 1280x720 --fps 30 --bitrate 2000 --seconds 10 [--opus] [--json out/bench/x264.json]
            [--reduced-layer KBPS: also the second, half-size encoding for slow viewers (issue 24)]
            [--threads N: x264 sliced threads, as the daemon with RTCAM_X264_THREADS=N]
  loadgen   N real WebRTC viewers (ICE, DTLS client, SRTP, RTP/RTCP with NACK) against a daemon.
            --url http://127.0.0.1:8080 --viewers N --seconds S [--threads T] [--connect-rate 50]
            [--connect-timeout 30] [--rcvbuf 1048576] [--json out/bench/loadgen.json] [--quiet]
            [--report-every SECONDS: an INTERVAL line with the viewers' lowest and median fps]
  srtp      SRTP protect/unprotect throughput on one core (AES-GCM and AES-CM/HMAC-SHA1-80).
            --seconds 2 [--payload 1172] [--json out/bench/srtp.json]
  mjpeg     A USB webcam's MJPEG for a viewer: 4:2:2 JPEGs (libjpeg-turbo, quality 85) decoded to I420
            by the daemon's JPEGDecoder, then x264 with the daemon's settings, paced; thread CPU per step.
            --size 1280x720 --fps 30 --seconds 10 [--quality 85] [--no-x264] [--json out/bench/mjpeg.json]
  floor     What this machine's kernel charges any streamer per frame: a thread's CPU to sleep and
            wake at the frame rate, to send one frame's datagrams (one UDP GSO sendmsg to a viewer
            on loopback) and one 20 ms audio packet.
            --fps 30 --bitrate 2000 --seconds 4 [--json out/bench/floor.json]
"""

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    print(usage)
    exit(2)
}
let options = Options(arguments.dropFirst(2))
switch arguments[1] {
case "x264": EncoderBench.run(options)
case "loadgen": LoadGenerator.run(options)
case "srtp": SRTPBench.run(options)
case "mjpeg": MJPEGBench.run(options)
case "floor": MachineFloorBench.run(options)
case "-h", "--help", "help": print(usage)
default:
    fail("unknown command '\(arguments[1])'\n\(usage)")
}
