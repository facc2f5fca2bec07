#ifndef RTCAM_TURBOJPEG_H
#define RTCAM_TURBOJPEG_H

// libjpeg-turbo's TurboJPEG compressor, opened with dlopen the first time a still is asked for
// instead of linked: an idle camera (nobody asked for a snapshot or MJPEG) maps none of it
// (issue 21: the JPEG library must not cost at idle; linked, the loader's work on it kept ~90 KB
// resident). The .deb still depends on libturbojpeg0 (board/debian-package/build-deb.sh); the
// header it is built against is libturbojpeg0-dev's. Only the JPEG target imports this.

typedef struct {
    void *(*init_compress)(void);
    int (*destroy)(void *);
    int (*compress_from_yuv_planes)(void *, const unsigned char **, int, const int *, int, int,
                                    unsigned char **, unsigned long *, int, int);
    void (*free_buffer)(unsigned char *);
    char *(*error_string)(void *);
    const char *load_error;
} rtcam_turbojpeg;

// The functions, loaded once (thread-safe); a NULL init_compress means load_error says why.
const rtcam_turbojpeg *rtcam_turbojpeg_get(void);

int rtcam_tj_samp_420(void);
int rtcam_tj_flag_fastdct(void);

#endif
