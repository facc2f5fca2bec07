// AES-128 encryption (FIPS 197) on the CPU's AES instructions (x86-64's AES-NI, ARMv8's AESE/AESMC),
// several blocks in flight at once, for SRTP's counter-mode keystream: mbedTLS 2.28 uses AES-NI too but one block per call,
// so the instruction's latency is paid 75 times for a 1200-byte packet. Where the CPU lacks the
// instructions, rtcam_aes_accelerated() is 0 and callers keep mbedTLS's AES.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rtcam_aes128 {
    _Alignas(16) uint8_t round_keys[11 * 16];
} rtcam_aes128;

// 1 when this CPU has the instructions (checked once), else 0.
int rtcam_aes_accelerated(void);

// Expands `key` (16 bytes). Only when accelerated.
void rtcam_aes128_set_key(rtcam_aes128 *context, const uint8_t key[16]);

// Encrypts `count` 16-byte blocks in place, each on its own (ECB). Only when accelerated.
void rtcam_aes128_encrypt_blocks(const rtcam_aes128 *context, uint8_t *blocks, size_t count);

#ifdef __cplusplus
}
#endif
