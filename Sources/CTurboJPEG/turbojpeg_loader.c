#include "rtcam_turbojpeg.h"

#include <dlfcn.h>
#include <pthread.h>
#include <turbojpeg.h>

static rtcam_turbojpeg api;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
    void *library = dlopen("libturbojpeg.so.0", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        api.load_error = dlerror();
        return;
    }
    api.init_compress = (void *(*)(void))dlsym(library, "tjInitCompress");
    api.destroy = (int (*)(void *))dlsym(library, "tjDestroy");
    api.compress_from_yuv_planes =
        (int (*)(void *, const unsigned char **, int, const int *, int, int, unsigned char **, unsigned long *, int, int))
            dlsym(library, "tjCompressFromYUVPlanes");
    api.free_buffer = (void (*)(unsigned char *))dlsym(library, "tjFree");
    api.error_string = (char *(*)(void *))dlsym(library, "tjGetErrorStr2");
    api.init_decompress = (void *(*)(void))dlsym(library, "tjInitDecompress");
    api.decompress_header = (int (*)(void *, const unsigned char *, unsigned long, int *, int *, int *, int *))
        dlsym(library, "tjDecompressHeader3");
    api.decompress_to_yuv_planes =
        (int (*)(void *, const unsigned char *, unsigned long, unsigned char **, int, int *, int, int))
            dlsym(library, "tjDecompressToYUVPlanes");
    api.error_code = (int (*)(void *))dlsym(library, "tjGetErrorCode");
    api.plane_width = (int (*)(int, int, int))dlsym(library, "tjPlaneWidth");
    api.plane_height = (int (*)(int, int, int))dlsym(library, "tjPlaneHeight");
    if (!api.init_compress || !api.destroy || !api.compress_from_yuv_planes || !api.free_buffer || !api.error_string
        || !api.init_decompress || !api.decompress_header || !api.decompress_to_yuv_planes || !api.error_code
        || !api.plane_width || !api.plane_height) {
        api.load_error = "libturbojpeg.so.0 lacks a TurboJPEG 2.x function";
        api.init_compress = NULL;
        api.init_decompress = NULL;
    }
}

const rtcam_turbojpeg *rtcam_turbojpeg_get(void) {
    pthread_once(&once, load);
    return &api;
}

int rtcam_tj_samp_420(void) { return TJSAMP_420; }
int rtcam_tj_samp_422(void) { return TJSAMP_422; }
int rtcam_tj_samp_444(void) { return TJSAMP_444; }
int rtcam_tj_samp_440(void) { return TJSAMP_440; }
int rtcam_tj_samp_411(void) { return TJSAMP_411; }
int rtcam_tj_samp_gray(void) { return TJSAMP_GRAY; }
int rtcam_tj_flag_fastdct(void) { return TJFLAG_FASTDCT; }
int rtcam_tj_error_warning(void) { return TJERR_WARNING; }
