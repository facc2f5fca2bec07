#ifndef CV4L2_H
#define CV4L2_H
#include <linux/videodev2.h>
#include <stdint.h>

// VIDIOC_* request codes are function-like macros Swift cannot import; these constants expose them.
extern const unsigned long cv4l2_VIDIOC_QUERYCAP;
extern const unsigned long cv4l2_VIDIOC_ENUM_FMT;
extern const unsigned long cv4l2_VIDIOC_ENUM_FRAMESIZES;
extern const unsigned long cv4l2_VIDIOC_ENUM_FRAMEINTERVALS;
extern const unsigned long cv4l2_VIDIOC_G_FMT;
extern const unsigned long cv4l2_VIDIOC_S_FMT;
extern const unsigned long cv4l2_VIDIOC_G_PARM;
extern const unsigned long cv4l2_VIDIOC_S_PARM;
extern const unsigned long cv4l2_VIDIOC_REQBUFS;
extern const unsigned long cv4l2_VIDIOC_QUERYBUF;
extern const unsigned long cv4l2_VIDIOC_QBUF;
extern const unsigned long cv4l2_VIDIOC_DQBUF;
extern const unsigned long cv4l2_VIDIOC_EXPBUF;
extern const unsigned long cv4l2_VIDIOC_STREAMON;
extern const unsigned long cv4l2_VIDIOC_STREAMOFF;
extern const unsigned long cv4l2_VIDIOC_S_CTRL;
extern const unsigned long cv4l2_VIDIOC_G_CTRL;
extern const unsigned long cv4l2_VIDIOC_S_EXT_CTRLS;
extern const unsigned long cv4l2_VIDIOC_ENCODER_CMD;
extern const unsigned long cv4l2_VIDIOC_SUBSCRIBE_EVENT;
extern const unsigned long cv4l2_VIDIOC_DQEVENT;

extern const unsigned long cv4l2_VIDIOC_G_EXT_CTRLS;
extern const unsigned long cv4l2_VIDIOC_TRY_ENCODER_CMD;
extern const unsigned long cv4l2_VIDIOC_UNSUBSCRIBE_EVENT;
extern const unsigned long cv4l2_VIDIOC_QUERYCTRL;
extern const unsigned long cv4l2_VIDIOC_QUERYMENU;

// Plain #defines re-exported so the V4L2 target can check its Swift-side values against the kernel header.
extern const uint32_t cv4l2_V4L2_PIX_FMT_YUYV;
extern const uint32_t cv4l2_V4L2_PIX_FMT_NV12;
extern const uint32_t cv4l2_V4L2_PIX_FMT_YUV420;
extern const uint32_t cv4l2_V4L2_PIX_FMT_MJPEG;
extern const uint32_t cv4l2_V4L2_PIX_FMT_H264;
extern const uint32_t cv4l2_V4L2_PIX_FMT_UYVY;
extern const uint32_t cv4l2_V4L2_PIX_FMT_RGB24;
extern const uint32_t cv4l2_V4L2_PIX_FMT_JPEG;
extern const uint32_t cv4l2_V4L2_PIX_FMT_FWHT;
extern const uint32_t cv4l2_V4L2_CID_MPEG_VIDEO_BITRATE;
extern const uint32_t cv4l2_V4L2_CID_MPEG_VIDEO_H264_I_PERIOD;
extern const uint32_t cv4l2_V4L2_CID_MPEG_VIDEO_H264_PROFILE;
extern const uint32_t cv4l2_V4L2_CID_MPEG_VIDEO_H264_LEVEL;
extern const uint32_t cv4l2_V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER;
extern const uint32_t cv4l2_V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME;
extern const uint32_t cv4l2_V4L2_CID_MPEG_VIDEO_GOP_SIZE;
extern const uint32_t cv4l2_V4L2_CID_FWHT_I_FRAME_QP;
extern const uint32_t cv4l2_V4L2_CID_FWHT_P_FRAME_QP;
extern const uint32_t cv4l2_V4L2_FWHT_FL_I_FRAME;
extern const uint32_t cv4l2_V4L2_CTRL_CLASS_CODEC;
extern const uint32_t cv4l2_V4L2_BUF_FLAG_KEYFRAME;
extern const uint32_t cv4l2_V4L2_BUF_FLAG_ERROR;
extern const uint32_t cv4l2_V4L2_BUF_FLAG_LAST;
extern const uint32_t cv4l2_V4L2_BUF_FLAG_TIMESTAMP_MASK;
extern const uint32_t cv4l2_V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC;
extern const uint32_t cv4l2_V4L2_BUF_FLAG_TIMESTAMP_COPY;
extern const uint32_t cv4l2_V4L2_CAP_VIDEO_CAPTURE;
extern const uint32_t cv4l2_V4L2_CAP_VIDEO_CAPTURE_MPLANE;
extern const uint32_t cv4l2_V4L2_CAP_VIDEO_M2M;
extern const uint32_t cv4l2_V4L2_CAP_VIDEO_M2M_MPLANE;
extern const uint32_t cv4l2_V4L2_CAP_META_CAPTURE;
extern const uint32_t cv4l2_V4L2_CAP_STREAMING;
extern const uint32_t cv4l2_V4L2_CAP_DEVICE_CAPS;
extern const uint32_t cv4l2_V4L2_CAP_TIMEPERFRAME;
extern const uint32_t cv4l2_V4L2_BUF_TYPE_VIDEO_CAPTURE;
extern const uint32_t cv4l2_V4L2_BUF_TYPE_VIDEO_OUTPUT;
extern const uint32_t cv4l2_V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
extern const uint32_t cv4l2_V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE;
extern const uint32_t cv4l2_V4L2_BUF_TYPE_META_CAPTURE;
extern const uint32_t cv4l2_V4L2_MEMORY_MMAP;
extern const uint32_t cv4l2_V4L2_MEMORY_DMABUF;
extern const uint32_t cv4l2_V4L2_FMT_FLAG_COMPRESSED;
extern const uint32_t cv4l2_V4L2_FMT_FLAG_EMULATED;
extern const uint32_t cv4l2_V4L2_FRMSIZE_TYPE_DISCRETE;
extern const uint32_t cv4l2_V4L2_FRMSIZE_TYPE_CONTINUOUS;
extern const uint32_t cv4l2_V4L2_FRMSIZE_TYPE_STEPWISE;
extern const uint32_t cv4l2_V4L2_FRMIVAL_TYPE_DISCRETE;
extern const uint32_t cv4l2_V4L2_FRMIVAL_TYPE_CONTINUOUS;
extern const uint32_t cv4l2_V4L2_FRMIVAL_TYPE_STEPWISE;
extern const uint32_t cv4l2_V4L2_ENC_CMD_START;
extern const uint32_t cv4l2_V4L2_ENC_CMD_STOP;
extern const uint32_t cv4l2_V4L2_EVENT_EOS;
extern const uint32_t cv4l2_V4L2_EVENT_SOURCE_CHANGE;
extern const uint32_t cv4l2_V4L2_MPEG_VIDEO_H264_PROFILE_BASELINE;
extern const uint32_t cv4l2_V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE;
extern const uint32_t cv4l2_V4L2_MPEG_VIDEO_H264_PROFILE_MAIN;
extern const uint32_t cv4l2_V4L2_MPEG_VIDEO_H264_PROFILE_HIGH;
extern const uint32_t cv4l2_V4L2_MPEG_VIDEO_H264_LEVEL_3_1;
extern const uint32_t cv4l2_V4L2_MPEG_VIDEO_H264_LEVEL_4_0;
extern const uint32_t cv4l2_V4L2_MPEG_VIDEO_H264_LEVEL_4_2;
extern const uint32_t cv4l2_V4L2_FIELD_NONE;
extern const uint32_t cv4l2_VIDEO_MAX_PLANES;

/// ioctl without varargs (Swift cannot call variadic C functions).
int cv4l2_ioctl(int fd, unsigned long request, void *arg);
/// The fourcc of four ASCII characters (the v4l2_fourcc macro).
uint32_t cv4l2_fourcc(char a, char b, char c, char d);

/// Plain view of a video format (single- or multi-planar; struct v4l2_pix_format_mplane is packed,
/// so its fields are read and written here, not from Swift).
struct cv4l2_format_info {
    uint32_t type, width, height, pixelformat, field, colorspace, num_planes;
};
void cv4l2_format_set(struct v4l2_format *format, const struct cv4l2_format_info *info);
void cv4l2_format_set_plane(struct v4l2_format *format, uint32_t plane, uint32_t bytesperline, uint32_t sizeimage);
void cv4l2_format_get(const struct v4l2_format *format, struct cv4l2_format_info *info);
void cv4l2_format_get_plane(const struct v4l2_format *format, uint32_t plane, uint32_t *bytesperline, uint32_t *sizeimage);

/// struct v4l2_ext_control is packed: size of one element, and a setter for element `i` of an array.
unsigned long cv4l2_ext_control_size(void);
void cv4l2_ext_control_set(void *controls, uint32_t i, uint32_t id, int32_t value);
#endif
