#ifndef RTCAM_TURBOJPEG_H
#define RTCAM_TURBOJPEG_H

// libjpeg-turbo's TurboJPEG compressor and decompressor, opened with dlopen the first time a still is asked for
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
    // The decompressor (a camera's own MJPEG decoded for the H.264 encoder).
    void *(*init_decompress)(void);
    int (*decompress_header)(void *, const unsigned char *, unsigned long, int *, int *, int *, int *);
    int (*decompress_to_yuv_planes)(void *, const unsigned char *, unsigned long, unsigned char **, int, int *, int, int);
    int (*error_code)(void *);
    int (*plane_width)(int, int, int);
    int (*plane_height)(int, int, int);
    const char *load_error;
} rtcam_turbojpeg;

// The functions, loaded once (thread-safe); a NULL init_compress means load_error says why.
const rtcam_turbojpeg *rtcam_turbojpeg_get(void);

int rtcam_tj_samp_420(void);
int rtcam_tj_samp_422(void);
int rtcam_tj_samp_444(void);
int rtcam_tj_samp_440(void);
int rtcam_tj_samp_411(void);
int rtcam_tj_samp_gray(void);
int rtcam_tj_flag_fastdct(void);
int rtcam_tj_error_warning(void);

#endif
