#include "cv4l2.h"
#include <sys/ioctl.h>

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

int cv4l2_ioctl(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
