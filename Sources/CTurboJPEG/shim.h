#include <turbojpeg.h>

// TurboJPEG's enum values and flags as typed values (TJSAMP_* is an enum Swift imports as a struct
// on some versions, TJFLAG_* are macros).
static inline int rtcam_tj_samp_420(void) { return TJSAMP_420; }
static inline int rtcam_tj_flag_fastdct(void) { return TJFLAG_FASTDCT; }
