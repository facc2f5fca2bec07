internal import CV4L2

/// Compares the numbers the Swift side hard-codes (fourccs, control ids, flags, enum values) with
/// the kernel header this build compiled against. Empty means they agree. Run by the tests and
/// cheap enough for a daemon self-check.
public enum V4L2HeaderCheck {
    public static func mismatches() -> [String] {
        var problems: [String] = []
        func check(_ name: String, _ swift: UInt32, _ header: UInt32) {
            if swift != header { problems.append("\(name): Swift \(swift) != header \(header)") }
        }
        check("PIX_FMT_YUYV", V4L2PixelFormat.yuyv.rawValue, cv4l2_V4L2_PIX_FMT_YUYV)
        check("PIX_FMT_UYVY", V4L2PixelFormat.uyvy.rawValue, cv4l2_V4L2_PIX_FMT_UYVY)
        check("PIX_FMT_NV12", V4L2PixelFormat.nv12.rawValue, cv4l2_V4L2_PIX_FMT_NV12)
        check("PIX_FMT_YUV420", V4L2PixelFormat.yuv420.rawValue, cv4l2_V4L2_PIX_FMT_YUV420)
        check("PIX_FMT_MJPEG", V4L2PixelFormat.mjpeg.rawValue, cv4l2_V4L2_PIX_FMT_MJPEG)
        check("PIX_FMT_JPEG", V4L2PixelFormat.jpeg.rawValue, cv4l2_V4L2_PIX_FMT_JPEG)
        check("PIX_FMT_H264", V4L2PixelFormat.h264.rawValue, cv4l2_V4L2_PIX_FMT_H264)
        check("PIX_FMT_RGB24", V4L2PixelFormat.rgb24.rawValue, cv4l2_V4L2_PIX_FMT_RGB24)
        check("PIX_FMT_FWHT", V4L2PixelFormat.fwht.rawValue, cv4l2_V4L2_PIX_FMT_FWHT)
        check("fourcc(MJPG)", V4L2PixelFormat(fourCC: "MJPG").rawValue, cv4l2_fourcc(77, 74, 80, 71))

        check("CID_MPEG_VIDEO_BITRATE", V4L2ControlID.videoBitrate.rawValue, cv4l2_V4L2_CID_MPEG_VIDEO_BITRATE)
        check("CID_H264_I_PERIOD", V4L2ControlID.h264IFramePeriod.rawValue, cv4l2_V4L2_CID_MPEG_VIDEO_H264_I_PERIOD)
        check("CID_H264_PROFILE", V4L2ControlID.h264Profile.rawValue, cv4l2_V4L2_CID_MPEG_VIDEO_H264_PROFILE)
        check("CID_H264_LEVEL", V4L2ControlID.h264Level.rawValue, cv4l2_V4L2_CID_MPEG_VIDEO_H264_LEVEL)
        check("CID_REPEAT_SEQ_HEADER", V4L2ControlID.repeatSequenceHeader.rawValue, cv4l2_V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER)
        check("CID_FORCE_KEY_FRAME", V4L2ControlID.forceKeyFrame.rawValue, cv4l2_V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME)
        check("CID_GOP_SIZE", V4L2ControlID.gopSize.rawValue, cv4l2_V4L2_CID_MPEG_VIDEO_GOP_SIZE)
        check("CID_FWHT_I_FRAME_QP", V4L2ControlID.fwhtIFrameQP.rawValue, cv4l2_V4L2_CID_FWHT_I_FRAME_QP)
        check("CID_FWHT_P_FRAME_QP", V4L2ControlID.fwhtPFrameQP.rawValue, cv4l2_V4L2_CID_FWHT_P_FRAME_QP)
        check("FWHT_FL_I_FRAME", V4L2FWHTHeader.iFrameFlag, cv4l2_V4L2_FWHT_FL_I_FRAME)
        check("CTRL_CLASS_CODEC", V4L2ControlID.codecClass, cv4l2_V4L2_CTRL_CLASS_CODEC)

        check("BUF_FLAG_KEYFRAME", V4L2BufferFlags.keyFrame.rawValue, cv4l2_V4L2_BUF_FLAG_KEYFRAME)
        check("BUF_FLAG_ERROR", V4L2BufferFlags.error.rawValue, cv4l2_V4L2_BUF_FLAG_ERROR)
        check("BUF_FLAG_LAST", V4L2BufferFlags.last.rawValue, cv4l2_V4L2_BUF_FLAG_LAST)
        check("BUF_FLAG_TIMESTAMP_MASK", V4L2BufferFlags.timestampMask.rawValue, cv4l2_V4L2_BUF_FLAG_TIMESTAMP_MASK)
        check("BUF_FLAG_TIMESTAMP_MONOTONIC", V4L2BufferFlags.timestampMonotonic.rawValue, cv4l2_V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC)
        check("BUF_FLAG_TIMESTAMP_COPY", V4L2BufferFlags.timestampCopy.rawValue, cv4l2_V4L2_BUF_FLAG_TIMESTAMP_COPY)

        check("CAP_VIDEO_CAPTURE", V4L2CapabilityFlags.videoCapture.rawValue, cv4l2_V4L2_CAP_VIDEO_CAPTURE)
        check("CAP_VIDEO_CAPTURE_MPLANE", V4L2CapabilityFlags.videoCaptureMultiplanar.rawValue, cv4l2_V4L2_CAP_VIDEO_CAPTURE_MPLANE)
        check("CAP_VIDEO_M2M", V4L2CapabilityFlags.videoM2M.rawValue, cv4l2_V4L2_CAP_VIDEO_M2M)
        check("CAP_VIDEO_M2M_MPLANE", V4L2CapabilityFlags.videoM2MMultiplanar.rawValue, cv4l2_V4L2_CAP_VIDEO_M2M_MPLANE)
        check("CAP_META_CAPTURE", V4L2CapabilityFlags.metaCapture.rawValue, cv4l2_V4L2_CAP_META_CAPTURE)
        check("CAP_STREAMING", V4L2CapabilityFlags.streaming.rawValue, cv4l2_V4L2_CAP_STREAMING)
        check("CAP_DEVICE_CAPS", V4L2CapabilityFlags.deviceCaps.rawValue, cv4l2_V4L2_CAP_DEVICE_CAPS)

        check("BUF_TYPE_VIDEO_CAPTURE", V4L2BufferType.videoCapture.rawValue, cv4l2_V4L2_BUF_TYPE_VIDEO_CAPTURE)
        check("BUF_TYPE_VIDEO_OUTPUT", V4L2BufferType.videoOutput.rawValue, cv4l2_V4L2_BUF_TYPE_VIDEO_OUTPUT)
        check("BUF_TYPE_VIDEO_CAPTURE_MPLANE", V4L2BufferType.videoCaptureMultiplanar.rawValue, cv4l2_V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE)
        check("BUF_TYPE_VIDEO_OUTPUT_MPLANE", V4L2BufferType.videoOutputMultiplanar.rawValue, cv4l2_V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE)
        check("BUF_TYPE_META_CAPTURE", V4L2BufferType.metaCapture.rawValue, cv4l2_V4L2_BUF_TYPE_META_CAPTURE)
        check("MEMORY_MMAP", V4L2Memory.mmap.rawValue, cv4l2_V4L2_MEMORY_MMAP)
        check("MEMORY_DMABUF", V4L2Memory.dmabuf.rawValue, cv4l2_V4L2_MEMORY_DMABUF)

        check("ENC_CMD_START", V4L2EncoderCommand.start.rawValue, cv4l2_V4L2_ENC_CMD_START)
        check("ENC_CMD_STOP", V4L2EncoderCommand.stop.rawValue, cv4l2_V4L2_ENC_CMD_STOP)
        check("EVENT_EOS", V4L2EventType.endOfStream.rawValue, cv4l2_V4L2_EVENT_EOS)
        check("EVENT_SOURCE_CHANGE", V4L2EventType.sourceChange.rawValue, cv4l2_V4L2_EVENT_SOURCE_CHANGE)

        check("H264_PROFILE_BASELINE", UInt32(V4L2H264Profile.baseline.rawValue), cv4l2_V4L2_MPEG_VIDEO_H264_PROFILE_BASELINE)
        check("H264_PROFILE_CONSTRAINED_BASELINE", UInt32(V4L2H264Profile.constrainedBaseline.rawValue), cv4l2_V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE)
        check("H264_PROFILE_MAIN", UInt32(V4L2H264Profile.main.rawValue), cv4l2_V4L2_MPEG_VIDEO_H264_PROFILE_MAIN)
        check("H264_PROFILE_HIGH", UInt32(V4L2H264Profile.high.rawValue), cv4l2_V4L2_MPEG_VIDEO_H264_PROFILE_HIGH)
        check("H264_LEVEL_3_1", UInt32(V4L2H264Level.level3_1.rawValue), cv4l2_V4L2_MPEG_VIDEO_H264_LEVEL_3_1)
        check("H264_LEVEL_4_0", UInt32(V4L2H264Level.level4_0.rawValue), cv4l2_V4L2_MPEG_VIDEO_H264_LEVEL_4_0)
        check("H264_LEVEL_4_2", UInt32(V4L2H264Level.level4_2.rawValue), cv4l2_V4L2_MPEG_VIDEO_H264_LEVEL_4_2)
        check("FIELD_NONE", 1, cv4l2_V4L2_FIELD_NONE)
        return problems
    }

    /// Swift format → C `struct v4l2_format` → Swift, through the shim's packed-struct accessors.
    public static func formatRoundTrip(_ format: V4L2Format) -> V4L2Format { KernelV4L2Device.roundTrip(format) }
}
