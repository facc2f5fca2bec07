import OutputFormats
import RTCBase
import SystemSupport

/// GET /metrics: the daemon's counters in the Prometheus text format 0.0.4 (issue 21). Every number
/// here is one /api/status already keeps (or a counter kept for this); nothing is sampled for it.
enum MetricsText {
    static func render(hub: StreamHub, media: MediaPipeline, stills: StillFrames, streams: Int,
                       rtspSessions: Int, uptimeSeconds: Double, extra: (inout PrometheusText) -> Void = { _ in }) -> String {
        var text = PrometheusText()
        let status = media.status()
        let viewers = hub.viewerStatuses()
        text.metric("rtcam_uptime_seconds", .gauge, help: "Seconds since the daemon started.", uptimeSeconds)
        text.family("rtcam_viewers", .gauge, help: "Clients watching now, by protocol.")
        text.sample("rtcam_viewers", [("protocol", "webrtc")], viewers.count)
        text.sample("rtcam_viewers", [("protocol", "rtsp")], rtspSessions)
        text.sample("rtcam_viewers", [("protocol", "mjpeg")], streams)

        text.family("rtcam_viewer_sent_bytes_total", .counter, help: "Bytes sent to a WebRTC viewer (SRTP and SRTCP); its bitrate is the rate of this.")
        for viewer in viewers { text.sample("rtcam_viewer_sent_bytes_total", [("viewer", viewer.id)], viewer.bytesSent) }
        text.family("rtcam_viewer_sent_packets_total", .counter, help: "RTP packets sent to a WebRTC viewer.")
        for viewer in viewers { text.sample("rtcam_viewer_sent_packets_total", [("viewer", viewer.id)], viewer.packetsSent) }
        text.family("rtcam_viewer_rtt_seconds", .gauge, help: "Round-trip time from the viewer's last RTCP receiver report.")
        for viewer in viewers {
            if let rtt = viewer.roundTripTimeMilliseconds { text.sample("rtcam_viewer_rtt_seconds", [("viewer", viewer.id)], rtt / 1000) }
        }
        text.family("rtcam_viewer_fraction_lost", .gauge, help: "Fraction of video packets lost, from the viewer's last receiver report (0-1).")
        for viewer in viewers { text.sample("rtcam_viewer_fraction_lost", [("viewer", viewer.id)], viewer.fractionLost) }
        text.family("rtcam_viewer_retransmitted_packets_total", .counter, help: "Packets resent after a NACK.")
        for viewer in viewers { text.sample("rtcam_viewer_retransmitted_packets_total", [("viewer", viewer.id)], viewer.retransmittedPackets) }
        text.family("rtcam_viewer_keyframe_requests_total", .counter, help: "PLI/FIR received from a viewer.")
        for viewer in viewers { text.sample("rtcam_viewer_keyframe_requests_total", [("viewer", viewer.id)], viewer.keyframeRequests) }
        text.family("rtcam_srtp_protect_failures_total", .counter, help: "Packets SRTP refused to protect, over the current viewers.")
        text.sample("rtcam_srtp_protect_failures_total", [], viewers.reduce(0) { $0 + $1.srtpProtectFailures })
        text.family("rtcam_srtcp_failures_total", .counter, help: "Incoming SRTCP packets that failed authentication, over the current viewers.")
        text.sample("rtcam_srtcp_failures_total", [], viewers.reduce(0) { $0 + $1.srtcpFailures })
        text.family("rtcam_rejected_datagrams_total", .counter, help: "Incoming datagrams a session rejected, over the current viewers.")
        text.sample("rtcam_rejected_datagrams_total", [], viewers.reduce(0) { $0 + $1.rejectedDatagrams })

        text.metric("rtcam_frames_captured_total", .counter, help: "Pictures the source gave (camera buffers, test-pattern frames drawn), used or not.", status.framesCaptured)
        text.metric("rtcam_frames_encoded_total", .counter, help: "H.264 frames sent to the viewers since the pipeline started.", status.framesEncoded)
        text.metric("rtcam_frames_dropped_total", .counter, help: "Camera frames that could not be used.", status.framesDropped)
        text.metric("rtcam_keyframes_forced_total", .counter, help: "Keyframes the encoder was asked for.", status.keyframesForced)
        text.metric("rtcam_periodic_keyframes_held_total", .counter,
                    help: "Periodic IDRs x264 held back while a viewer's link was in a congestion episode.", status.periodicKeyframesHeld)
        text.metric("rtcam_reduced_layer_keyframes_held_total", .counter,
                    help: "Periodic IDRs of the reduced encoding held back while a viewer's link was in a congestion episode.",
                    status.reducedLayerKeyframesHeld)
        text.metric("rtcam_periodic_keyframe_longest_hold_seconds", .gauge,
                    help: "The longest time a held periodic IDR waited (0: none yet).", (status.longestKeyframeHold ?? .zero).millisecondsDouble / 1000)
        text.metric("rtcam_camera_lost", .gauge, help: "1 while the camera is gone (unplugged) and being reopened, else 0.",
                    status.camera.state == "lost" ? 1 : 0)
        text.metric("rtcam_camera_losses_total", .counter, help: "Times the camera went away since the pipeline started.", status.camera.losses)
        text.metric("rtcam_video_frames_per_second", .gauge, help: "Encoded frame rate over the last second.", status.framesPerSecond)
        text.metric("rtcam_video_bitrate_bits_per_second", .gauge, help: "Encoded video bitrate over the last second.", status.bitrateKbps * 1000)
        text.metric("rtcam_encoder_cpu_seconds_total", .counter, help: "CPU time of the video encoder (x264 calls).", status.encoderCPUSeconds)
        text.metric("rtcam_audio_encoder_cpu_seconds_total", .counter, help: "CPU time of the Opus encoder.", status.audioEncoderCPUSeconds)
        if let jpeg = status.cameraJPEG {
            text.metric("rtcam_camera_jpeg_decoded_total", .counter, help: "The camera's JPEGs (MJPEG) decoded for the H.264 encoder or a scaled still.", jpeg.decoded)
            text.metric("rtcam_camera_jpeg_bad_total", .counter, help: "The camera's JPEGs refused and skipped (truncated, corrupt, wrong size).", jpeg.badFrames)
            text.metric("rtcam_jpeg_decode_cpu_seconds_total", .counter, help: "CPU time decoding the camera's JPEGs.", status.jpegDecodeCPUSeconds)
        }
        if let microphone = status.microphone {
            text.metric("rtcam_audio_frames_captured_total", .counter, help: "Audio frames read from the microphone.",
                        Int(clamping: microphone.framesRead))
            text.metric("rtcam_audio_xruns_total", .counter, help: "ALSA capture overruns recovered.", microphone.xrunsRecovered)
            text.metric("rtcam_audio_frames_lost_total", .counter, help: "Audio frames lost (overruns, skipped backlog).",
                        Int(clamping: microphone.framesLost))
        }
        let stillCounts = stills.counts
        text.metric("rtcam_jpeg_encoded_total", .counter, help: "JPEG stills coded (snapshots and MJPEG; one per frame and width).", stillCounts.encoded)
        text.metric("rtcam_snapshots_served_total", .counter, help: "Snapshot requests answered with a JPEG.", stillCounts.served)

        let socket = hub.mediaSocketCounters
        text.metric("rtcam_datagrams_sent_total", .counter, help: "UDP datagrams sent on the media socket.", socket.datagramsSent)
        text.metric("rtcam_datagrams_dropped_total", .counter, help: "UDP datagrams refused by a full send buffer.", socket.datagramsDropped)
        text.metric("rtcam_datagram_send_errors_total", .counter, help: "UDP sends that failed for another reason.", socket.sendErrors)

        text.family("rtcam_http_responses_total", .counter, help: "HTTP responses by status code.")
        for (code, count) in HTTPResponseCounts.shared.snapshot {
            text.sample("rtcam_http_responses_total", [("code", String(code))], count)
        }
        extra(&text)
        return text.text
    }

    /// malloc's own figures (RTCAM_DEBUG_HEAP=1 only): in use against what the arenas hold, so that
    /// growing memory can be told apart as a leak (in use grows) or fragmentation (only arenas grow).
    static func heap(_ heap: HeapStatistics, into text: inout PrometheusText) {
        text.metric("rtcam_heap_arena_bytes", .gauge, help: "Bytes malloc's arenas hold from the system (mallinfo2 arena).", heap.arenaBytes)
        text.metric("rtcam_heap_in_use_bytes", .gauge, help: "Bytes allocated from the arenas and not freed (mallinfo2 uordblks).", heap.inUseBytes)
        text.metric("rtcam_heap_free_bytes", .gauge, help: "Free bytes inside the arenas (mallinfo2 fordblks).", heap.freeBytes)
        text.metric("rtcam_heap_mmapped_bytes", .gauge, help: "Bytes of allocations mmapped one by one (mallinfo2 hblkhd).", heap.mmappedBytes)
        text.metric("rtcam_heap_mmapped_chunks", .gauge, help: "Allocations mmapped one by one (mallinfo2 hblks).", heap.mmappedChunks)
        text.metric("rtcam_heap_top_releasable_bytes", .gauge, help: "Bytes malloc_trim could give back from the main arena's top (mallinfo2 keepcost).", heap.topReleasableBytes)
        text.family("rtcam_heap_arena_system_bytes", .gauge, help: "Bytes one malloc arena holds from the system (malloc_info).")
        for arena in heap.arenas { text.sample("rtcam_heap_arena_system_bytes", [("arena", String(arena.number))], arena.systemBytes) }
        text.family("rtcam_heap_arena_in_use_bytes", .gauge, help: "Bytes allocated from one malloc arena and not freed (malloc_info).")
        for arena in heap.arenas { text.sample("rtcam_heap_arena_in_use_bytes", [("arena", String(arena.number))], arena.inUseBytes) }
    }
}
