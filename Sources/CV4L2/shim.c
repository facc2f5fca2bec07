#include "cv4l2.h"
#include <sys/ioctl.h>
#include <string.h>

const unsigned long cv4l2_VIDIOC_QUERYCAP = VIDIOC_QUERYCAP;
const unsigned long cv4l2_VIDIOC_ENUM_FMT = VIDIOC_ENUM_FMT;
const unsigned long cv4l2_VIDIOC_ENUM_FRAMESIZES = VIDIOC_ENUM_FRAMESIZES;
const unsigned long cv4l2_VIDIOC_ENUM_FRAMEINTERVALS = VIDIOC_ENUM_FRAMEINTERVALS;
const unsigned long cv4l2_VIDIOC_G_FMT = VIDIOC_G_FMT;
const unsigned long cv4l2_VIDIOC_S_FMT = VIDIOC_S_FMT;
const unsigned long cv4l2_VIDIOC_G_PARM = VIDIOC_G_PARM;
const unsigned long cv4l2_VIDIOC_S_PARM = VIDIOC_S_PARM;
const unsigned long cv4l2_VIDIOC_REQBUFS = VIDIOC_REQBUFS;
const unsigned long cv4l2_VIDIOC_QUERYBUF = VIDIOC_QUERYBUF;
const unsigned long cv4l2_VIDIOC_QBUF = VIDIOC_QBUF;
const unsigned long cv4l2_VIDIOC_DQBUF = VIDIOC_DQBUF;
const unsigned long cv4l2_VIDIOC_EXPBUF = VIDIOC_EXPBUF;
const unsigned long cv4l2_VIDIOC_STREAMON = VIDIOC_STREAMON;
const unsigned long cv4l2_VIDIOC_STREAMOFF = VIDIOC_STREAMOFF;
const unsigned long cv4l2_VIDIOC_S_CTRL = VIDIOC_S_CTRL;
const unsigned long cv4l2_VIDIOC_G_CTRL = VIDIOC_G_CTRL;
const unsigned long cv4l2_VIDIOC_S_EXT_CTRLS = VIDIOC_S_EXT_CTRLS;
const unsigned long cv4l2_VIDIOC_ENCODER_CMD = VIDIOC_ENCODER_CMD;
const unsigned long cv4l2_VIDIOC_SUBSCRIBE_EVENT = VIDIOC_SUBSCRIBE_EVENT;
const unsigned long cv4l2_VIDIOC_DQEVENT = VIDIOC_DQEVENT;
const unsigned long cv4l2_VIDIOC_G_EXT_CTRLS = VIDIOC_G_EXT_CTRLS;
const unsigned long cv4l2_VIDIOC_TRY_ENCODER_CMD = VIDIOC_TRY_ENCODER_CMD;
const unsigned long cv4l2_VIDIOC_UNSUBSCRIBE_EVENT = VIDIOC_UNSUBSCRIBE_EVENT;
const unsigned long cv4l2_VIDIOC_QUERYCTRL = VIDIOC_QUERYCTRL;
const unsigned long cv4l2_VIDIOC_QUERYMENU = VIDIOC_QUERYMENU;

const uint32_t cv4l2_V4L2_PIX_FMT_YUYV = V4L2_PIX_FMT_YUYV;
const uint32_t cv4l2_V4L2_PIX_FMT_NV12 = V4L2_PIX_FMT_NV12;
const uint32_t cv4l2_V4L2_PIX_FMT_YUV420 = V4L2_PIX_FMT_YUV420;
const uint32_t cv4l2_V4L2_PIX_FMT_MJPEG = V4L2_PIX_FMT_MJPEG;
const uint32_t cv4l2_V4L2_PIX_FMT_H264 = V4L2_PIX_FMT_H264;
const uint32_t cv4l2_V4L2_PIX_FMT_UYVY = V4L2_PIX_FMT_UYVY;
const uint32_t cv4l2_V4L2_PIX_FMT_RGB24 = V4L2_PIX_FMT_RGB24;
const uint32_t cv4l2_V4L2_PIX_FMT_JPEG = V4L2_PIX_FMT_JPEG;
const uint32_t cv4l2_V4L2_PIX_FMT_FWHT = V4L2_PIX_FMT_FWHT;
const uint32_t cv4l2_V4L2_CID_MPEG_VIDEO_BITRATE = V4L2_CID_MPEG_VIDEO_BITRATE;
const uint32_t cv4l2_V4L2_CID_MPEG_VIDEO_H264_I_PERIOD = V4L2_CID_MPEG_VIDEO_H264_I_PERIOD;
const uint32_t cv4l2_V4L2_CID_MPEG_VIDEO_H264_PROFILE = V4L2_CID_MPEG_VIDEO_H264_PROFILE;
const uint32_t cv4l2_V4L2_CID_MPEG_VIDEO_H264_LEVEL = V4L2_CID_MPEG_VIDEO_H264_LEVEL;
const uint32_t cv4l2_V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER = V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER;
const uint32_t cv4l2_V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME = V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME;
const uint32_t cv4l2_V4L2_CID_MPEG_VIDEO_GOP_SIZE = V4L2_CID_MPEG_VIDEO_GOP_SIZE;
const uint32_t cv4l2_V4L2_CID_FWHT_I_FRAME_QP = V4L2_CID_FWHT_I_FRAME_QP;
const uint32_t cv4l2_V4L2_CID_FWHT_P_FRAME_QP = V4L2_CID_FWHT_P_FRAME_QP;
const uint32_t cv4l2_V4L2_FWHT_FL_I_FRAME = V4L2_FWHT_FL_I_FRAME;
const uint32_t cv4l2_V4L2_CTRL_CLASS_CODEC = V4L2_CTRL_CLASS_CODEC;
const uint32_t cv4l2_V4L2_BUF_FLAG_KEYFRAME = V4L2_BUF_FLAG_KEYFRAME;
const uint32_t cv4l2_V4L2_BUF_FLAG_ERROR = V4L2_BUF_FLAG_ERROR;
const uint32_t cv4l2_V4L2_BUF_FLAG_LAST = V4L2_BUF_FLAG_LAST;
const uint32_t cv4l2_V4L2_BUF_FLAG_TIMESTAMP_MASK = V4L2_BUF_FLAG_TIMESTAMP_MASK;
const uint32_t cv4l2_V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC = V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC;
const uint32_t cv4l2_V4L2_BUF_FLAG_TIMESTAMP_COPY = V4L2_BUF_FLAG_TIMESTAMP_COPY;
const uint32_t cv4l2_V4L2_CAP_VIDEO_CAPTURE = V4L2_CAP_VIDEO_CAPTURE;
const uint32_t cv4l2_V4L2_CAP_VIDEO_CAPTURE_MPLANE = V4L2_CAP_VIDEO_CAPTURE_MPLANE;
const uint32_t cv4l2_V4L2_CAP_VIDEO_M2M = V4L2_CAP_VIDEO_M2M;
const uint32_t cv4l2_V4L2_CAP_VIDEO_M2M_MPLANE = V4L2_CAP_VIDEO_M2M_MPLANE;
const uint32_t cv4l2_V4L2_CAP_META_CAPTURE = V4L2_CAP_META_CAPTURE;
const uint32_t cv4l2_V4L2_CAP_STREAMING = V4L2_CAP_STREAMING;
const uint32_t cv4l2_V4L2_CAP_DEVICE_CAPS = V4L2_CAP_DEVICE_CAPS;
const uint32_t cv4l2_V4L2_CAP_TIMEPERFRAME = V4L2_CAP_TIMEPERFRAME;
const uint32_t cv4l2_V4L2_BUF_TYPE_VIDEO_CAPTURE = V4L2_BUF_TYPE_VIDEO_CAPTURE;
const uint32_t cv4l2_V4L2_BUF_TYPE_VIDEO_OUTPUT = V4L2_BUF_TYPE_VIDEO_OUTPUT;
const uint32_t cv4l2_V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
const uint32_t cv4l2_V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE;
const uint32_t cv4l2_V4L2_BUF_TYPE_META_CAPTURE = V4L2_BUF_TYPE_META_CAPTURE;
const uint32_t cv4l2_V4L2_MEMORY_MMAP = V4L2_MEMORY_MMAP;
const uint32_t cv4l2_V4L2_MEMORY_DMABUF = V4L2_MEMORY_DMABUF;
const uint32_t cv4l2_V4L2_FMT_FLAG_COMPRESSED = V4L2_FMT_FLAG_COMPRESSED;
const uint32_t cv4l2_V4L2_FMT_FLAG_EMULATED = V4L2_FMT_FLAG_EMULATED;
const uint32_t cv4l2_V4L2_FRMSIZE_TYPE_DISCRETE = V4L2_FRMSIZE_TYPE_DISCRETE;
const uint32_t cv4l2_V4L2_FRMSIZE_TYPE_CONTINUOUS = V4L2_FRMSIZE_TYPE_CONTINUOUS;
const uint32_t cv4l2_V4L2_FRMSIZE_TYPE_STEPWISE = V4L2_FRMSIZE_TYPE_STEPWISE;
const uint32_t cv4l2_V4L2_FRMIVAL_TYPE_DISCRETE = V4L2_FRMIVAL_TYPE_DISCRETE;
const uint32_t cv4l2_V4L2_FRMIVAL_TYPE_CONTINUOUS = V4L2_FRMIVAL_TYPE_CONTINUOUS;
const uint32_t cv4l2_V4L2_FRMIVAL_TYPE_STEPWISE = V4L2_FRMIVAL_TYPE_STEPWISE;
const uint32_t cv4l2_V4L2_ENC_CMD_START = V4L2_ENC_CMD_START;
const uint32_t cv4l2_V4L2_ENC_CMD_STOP = V4L2_ENC_CMD_STOP;
const uint32_t cv4l2_V4L2_EVENT_EOS = V4L2_EVENT_EOS;
const uint32_t cv4l2_V4L2_EVENT_SOURCE_CHANGE = V4L2_EVENT_SOURCE_CHANGE;
const uint32_t cv4l2_V4L2_MPEG_VIDEO_H264_PROFILE_BASELINE = V4L2_MPEG_VIDEO_H264_PROFILE_BASELINE;
const uint32_t cv4l2_V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE = V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE;
const uint32_t cv4l2_V4L2_MPEG_VIDEO_H264_PROFILE_MAIN = V4L2_MPEG_VIDEO_H264_PROFILE_MAIN;
const uint32_t cv4l2_V4L2_MPEG_VIDEO_H264_PROFILE_HIGH = V4L2_MPEG_VIDEO_H264_PROFILE_HIGH;
const uint32_t cv4l2_V4L2_MPEG_VIDEO_H264_LEVEL_3_1 = V4L2_MPEG_VIDEO_H264_LEVEL_3_1;
const uint32_t cv4l2_V4L2_MPEG_VIDEO_H264_LEVEL_4_0 = V4L2_MPEG_VIDEO_H264_LEVEL_4_0;
const uint32_t cv4l2_V4L2_MPEG_VIDEO_H264_LEVEL_4_2 = V4L2_MPEG_VIDEO_H264_LEVEL_4_2;
const uint32_t cv4l2_V4L2_FIELD_NONE = V4L2_FIELD_NONE;
const uint32_t cv4l2_VIDEO_MAX_PLANES = VIDEO_MAX_PLANES;

int cv4l2_ioctl(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }

uint32_t cv4l2_fourcc(char a, char b, char c, char d) { return v4l2_fourcc(a, b, c, d); }

void cv4l2_format_set(struct v4l2_format *format, const struct cv4l2_format_info *info) {
    memset(format, 0, sizeof *format);
    format->type = info->type;
    if (V4L2_TYPE_IS_MULTIPLANAR(info->type)) {
        format->fmt.pix_mp.width = info->width;
        format->fmt.pix_mp.height = info->height;
        format->fmt.pix_mp.pixelformat = info->pixelformat;
        format->fmt.pix_mp.field = info->field;
        format->fmt.pix_mp.colorspace = info->colorspace;
        format->fmt.pix_mp.num_planes = (uint8_t)(info->num_planes > VIDEO_MAX_PLANES ? VIDEO_MAX_PLANES : info->num_planes);
    } else {
        format->fmt.pix.width = info->width;
        format->fmt.pix.height = info->height;
        format->fmt.pix.pixelformat = info->pixelformat;
        format->fmt.pix.field = info->field;
        format->fmt.pix.colorspace = info->colorspace;
    }
}

void cv4l2_format_set_plane(struct v4l2_format *format, uint32_t plane, uint32_t bytesperline, uint32_t sizeimage) {
    if (V4L2_TYPE_IS_MULTIPLANAR(format->type)) {
        if (plane >= VIDEO_MAX_PLANES) return;
        format->fmt.pix_mp.plane_fmt[plane].bytesperline = bytesperline;
        format->fmt.pix_mp.plane_fmt[plane].sizeimage = sizeimage;
    } else if (plane == 0) {
        format->fmt.pix.bytesperline = bytesperline;
        format->fmt.pix.sizeimage = sizeimage;
    }
}

void cv4l2_format_get(const struct v4l2_format *format, struct cv4l2_format_info *info) {
    info->type = format->type;
    if (V4L2_TYPE_IS_MULTIPLANAR(format->type)) {
        info->width = format->fmt.pix_mp.width;
        info->height = format->fmt.pix_mp.height;
        info->pixelformat = format->fmt.pix_mp.pixelformat;
        info->field = format->fmt.pix_mp.field;
        info->colorspace = format->fmt.pix_mp.colorspace;
        info->num_planes = format->fmt.pix_mp.num_planes;
    } else {
        info->width = format->fmt.pix.width;
        info->height = format->fmt.pix.height;
        info->pixelformat = format->fmt.pix.pixelformat;
        info->field = format->fmt.pix.field;
        info->colorspace = format->fmt.pix.colorspace;
        info->num_planes = 1;
    }
}

void cv4l2_format_get_plane(const struct v4l2_format *format, uint32_t plane, uint32_t *bytesperline, uint32_t *sizeimage) {
    *bytesperline = 0;
    *sizeimage = 0;
    if (V4L2_TYPE_IS_MULTIPLANAR(format->type)) {
        if (plane >= VIDEO_MAX_PLANES) return;
        *bytesperline = format->fmt.pix_mp.plane_fmt[plane].bytesperline;
        *sizeimage = format->fmt.pix_mp.plane_fmt[plane].sizeimage;
    } else if (plane == 0) {
        *bytesperline = format->fmt.pix.bytesperline;
        *sizeimage = format->fmt.pix.sizeimage;
    }
}

unsigned long cv4l2_ext_control_size(void) { return sizeof(struct v4l2_ext_control); }

void cv4l2_ext_control_set(void *controls, uint32_t i, uint32_t id, int32_t value) {
    struct v4l2_ext_control *control = (struct v4l2_ext_control *)controls + i;
    memset(control, 0, sizeof *control);
    control->id = id;
    control->value = value;
}
