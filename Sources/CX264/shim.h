#include <stdint.h>
#include <x264.h>

// x264_encoder_open is a macro that pastes the build number onto the symbol name
// (x264_encoder_open_164 here), which Swift cannot import. This wrapper gives Swift one stable name.
static inline x264_t *rtcam_x264_encoder_open(x264_param_t *param) {
    return x264_encoder_open(param);
}

// The X264_* constants the X264 target needs, as typed values (some are macros with casts or
// expressions that Swift does not import reliably).
static inline int rtcam_x264_csp_i420(void) { return X264_CSP_I420; }
static inline int rtcam_x264_csp_nv12(void) { return X264_CSP_NV12; }
static inline int rtcam_x264_type_auto(void) { return X264_TYPE_AUTO; }
static inline int rtcam_x264_type_idr(void) { return X264_TYPE_IDR; }
static inline int rtcam_x264_rc_abr(void) { return X264_RC_ABR; }
static inline int rtcam_x264_log_error(void) { return X264_LOG_ERROR; }
static inline int rtcam_x264_build(void) { return X264_BUILD; }
static inline int rtcam_x264_keyint_max_infinite(void) { return X264_KEYINT_MAX_INFINITE; }
