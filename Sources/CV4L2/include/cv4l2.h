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

/// ioctl without varargs (Swift cannot call variadic C functions).
int cv4l2_ioctl(int fd, unsigned long request, void *arg);
#endif
