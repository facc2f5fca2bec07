"""GStreamer's rtspsrc (Debian 12's 1.22) reads rtcam's RTSP stream for a few seconds and prints, as
JSON, what it decoded: video frames and their size, audio buffers and their rate.

    /usr/bin/python3 gst_rtsp_client.py rtsp://127.0.0.1:PORT/ --protocol tcp|udp --seconds 3

Runs in Debian's python3 (python3-gi), not the interop venv.
"""

import argparse
import json
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--protocol", choices=["tcp", "udp"], default="tcp")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--user")
    parser.add_argument("--password")
    arguments = parser.parse_args()
    Gst.init(None)
    errors: list[str] = []
    # rtspsrc adds its two pads from two streaming threads at once; parse-launch's delayed links
    # ("source. ! ...") race there and now and then leave a pad unlinked or linked to the wrong branch
    # (seen about 1 run in 10 on a loaded machine). So each pad is linked here, by its media type.
    pipeline = Gst.Pipeline.new("client")
    source = Gst.ElementFactory.make("rtspsrc", "source")
    source.set_property("location", arguments.url)
    Gst.util_set_object_arg(source, "protocols", arguments.protocol)
    source.set_property("latency", 200)
    if arguments.user:
        source.set_property("user-id", arguments.user)
        source.set_property("user-pw", arguments.password)
    branches = {
        "video": Gst.parse_bin_from_description(
            "rtph264depay ! h264parse ! avdec_h264 ! videoconvert ! video/x-raw,format=I420 ! "
            "appsink name=video emit-signals=true sync=false", True),
        "audio": Gst.parse_bin_from_description(
            "rtpopusdepay ! opusdec ! audioconvert ! appsink name=audio emit-signals=true sync=false", True),
    }
    pipeline.add(source)
    for branch in branches.values():
        pipeline.add(branch)
    link_lock = threading.Lock()

    def on_pad_added(_, pad):
        caps = pad.get_current_caps() or pad.query_caps(None)
        media = caps.get_structure(0).get_value("media") if caps.get_size() else None
        with link_lock:
            branch = branches.get(media)
            if branch is None or branch.get_static_pad("sink").is_linked():
                return
            result = pad.link(branch.get_static_pad("sink"))
            if result != Gst.PadLinkReturn.OK:
                errors.append(f"could not link the {media} pad: {result.value_nick}")

    source.connect("pad-added", on_pad_added)
    result = {"video_frames": 0, "audio_buffers": 0, "audio_samples": 0, "width": None, "height": None,
              "rate": None, "errors": errors, "cnames": []}
    first = {}

    def on_video(sink):
        sample = sink.emit("pull-sample")
        structure = sample.get_caps().get_structure(0)
        result["width"], result["height"] = structure.get_value("width"), structure.get_value("height")
        first.setdefault("video", time.monotonic())
        result["video_frames"] += 1
        return Gst.FlowReturn.OK

    def on_audio(sink):
        sample = sink.emit("pull-sample")
        structure = sample.get_caps().get_structure(0)
        result["rate"] = structure.get_value("rate")
        channels = structure.get_value("channels") or 1
        buffer = sample.get_buffer()
        result["audio_buffers"] += 1
        result["audio_samples"] += buffer.get_size() // (2 * channels) if structure.get_value("format") == "S16LE" else 0
        first.setdefault("audio", time.monotonic())
        return Gst.FlowReturn.OK

    # RTCP from the server: rtpbin reports each SSRC's SDES (sent with rtcam's Sender Reports).
    def on_sdes(rtpbin, session, ssrc):
        source = rtpbin.emit("get-internal-session", session).emit("get-source-by-ssrc", ssrc)
        sdes = source.get_property("sdes") if source is not None else None
        cname = sdes.get_value("cname") if sdes is not None and sdes.has_field("cname") else None
        if cname and [session, cname] not in result["cnames"]:
            result["cnames"].append([session, cname])

    source.connect("new-manager", lambda _, manager: manager.connect("on-ssrc-sdes", on_sdes))
    branches["video"].get_by_name("video").connect("new-sample", on_video)
    branches["audio"].get_by_name("audio").connect("new-sample", on_audio)
    loop = GLib.MainLoop()
    bus = pipeline.get_bus()
    bus.add_signal_watch()

    def on_message(_, message):
        if message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            result["errors"].append(f"{error.message} ({debug})")
            loop.quit()

    bus.connect("message", on_message)
    pipeline.set_state(Gst.State.PLAYING)
    start = time.monotonic()

    def check():
        # Count for `seconds` after the first video frame (or give up after 10 s without one).
        if "video" in first and time.monotonic() - first["video"] >= arguments.seconds:
            loop.quit()
            return False
        if time.monotonic() - start > 10 + arguments.seconds:
            result["errors"].append("timed out")
            loop.quit()
            return False
        return True

    GLib.timeout_add(50, check)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    result["seconds"] = arguments.seconds
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
