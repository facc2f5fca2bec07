// HMAC-SHA1 (RFC 2104 over FIPS 180-4 SHA-1) on the CPU's SHA instructions, for SRTP's per-packet
// authentication tag. mbedTLS 2.28 computes SHA-1 in portable C, which was a third of the daemon's
// CPU at 100 viewers; x86-64's SHA extensions (SHA-NI) and ARMv8's SHA1 instructions (Pi 5) do a
// block in a fraction of that.
// Where the CPU lacks them, rtcam_sha1_accelerated() is 0 and callers keep mbedTLS's HMAC.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rtcam_hmac_sha1 {
    uint32_t inner[5];     // SHA-1 state after the block key XOR ipad
    uint32_t outer[5];     // SHA-1 state after the block key XOR opad
    uint32_t state[5];     // the message being authenticated
    uint64_t length;       // bytes hashed into state, the ipad block included
    uint32_t buffered;     // bytes waiting in block
    uint8_t block[64];
} rtcam_hmac_sha1;

// 1 when this CPU has the instructions (checked once), else 0.
int rtcam_sha1_accelerated(void);

// Keys the context (any key length; a key longer than a block is hashed first). Only when accelerated.
void rtcam_hmac_sha1_set_key(rtcam_hmac_sha1 *context, const uint8_t *key, size_t length);
void rtcam_hmac_sha1_start(rtcam_hmac_sha1 *context);
void rtcam_hmac_sha1_update(rtcam_hmac_sha1 *context, const uint8_t *bytes, size_t length);
void rtcam_hmac_sha1_finish(rtcam_hmac_sha1 *context, uint8_t digest[20]);

#ifdef __cplusplus
}
#endif
