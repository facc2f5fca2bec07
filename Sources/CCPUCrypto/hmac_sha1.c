// See include/rtcam_hmac_sha1.h. SHA-1 per FIPS 180-4 §6.1; HMAC per RFC 2104.
#include "rtcam_hmac_sha1.h"

#include <string.h>

#include "cpu_features.h"

#if defined(__x86_64__)
#include <immintrin.h>

// Four rounds with the round function of group `group` (0-19): sha1rnds4 takes it as an immediate.
#define RTCAM_SHA1_RNDS4(abcd, ew, group)                                     \
    ((group) < 5 ? _mm_sha1rnds4_epu32((abcd), (ew), 0)                       \
     : (group) < 10 ? _mm_sha1rnds4_epu32((abcd), (ew), 1)                    \
     : (group) < 15 ? _mm_sha1rnds4_epu32((abcd), (ew), 2)                    \
                    : _mm_sha1rnds4_epu32((abcd), (ew), 3))

__attribute__((target("sha,sse4.1,ssse3")))
static void compress_sha_ni(uint32_t state[5], const uint8_t *blocks, size_t count) {
    // Lane 3 holds A (and E, and W[t]) : the instructions' order. Reversing all 16 bytes of a
    // message load both byte-swaps each big-endian word and puts W[t] in lane 3.
    const __m128i reverse = _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
    __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)state), 0x1B);
    __m128i e = _mm_set_epi32((int)state[4], 0, 0, 0);
    for (; count > 0; count--, blocks += 64) {
        const __m128i abcd_before = abcd, e_before = e;
        __m128i w[4];   // w[g % 4]: W[4g .. 4g+3] of group g
        __m128i previous = abcd;
        // Unrolled in full: the group number is then a constant everywhere (the round function's
        // immediate, which of w[] each step reads), so w[] lives in registers, not on the stack.
#pragma clang loop unroll(full)
        for (int group = 0; group < 20; group++) {
            __m128i words;
            if (group < 4) {
                words = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(blocks + 16 * group)), reverse);
            } else {
                // W[t] = rotl1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]), four at a time.
                words = _mm_sha1msg2_epu32(
                    _mm_xor_si128(_mm_sha1msg1_epu32(w[group % 4], w[(group + 1) % 4]), w[(group + 2) % 4]),
                    w[(group + 3) % 4]);
            }
            w[group % 4] = words;
            // E for these four rounds: the state's E for the first group, then A of four rounds
            // back rotated by 30 (sha1nexte), each with the group's words added.
            const __m128i ew = group == 0 ? _mm_add_epi32(e, words) : _mm_sha1nexte_epu32(previous, words);
            previous = abcd;
            abcd = RTCAM_SHA1_RNDS4(abcd, ew, group);
        }
        e = _mm_sha1nexte_epu32(previous, e_before);
        abcd = _mm_add_epi32(abcd, abcd_before);
    }
    _mm_storeu_si128((__m128i *)state, _mm_shuffle_epi32(abcd, 0x1B));
    state[4] = (uint32_t)_mm_extract_epi32(e, 3);
}
#elif defined(__aarch64__)
#include <arm_neon.h>

// FIPS 180-4 §6.1.2 on ARMv8's SHA-1 instructions, four rounds per instruction. Lane 0 holds A
// (vld1q of the state words in order). SHA1H gives rotl30(A), which is E four rounds later.
__attribute__((target("sha2")))
static void compress_armv8(uint32_t state[5], const uint8_t *blocks, size_t count) {
    static const uint32_t constants[4] = {0x5A827999u, 0x6ED9EBA1u, 0x8F1BBCDCu, 0xCA62C1D6u};
    uint32x4_t abcd = vld1q_u32(state);
    uint32_t e = state[4];
    for (; count > 0; count--, blocks += 64) {
        const uint32x4_t abcd_before = abcd;
        const uint32_t e_before = e;
        uint32x4_t w[4];   // w[g % 4]: W[4g .. 4g+3] of group g
#pragma clang loop unroll(full)
        for (int group = 0; group < 20; group++) {
            if (group < 4) {
                w[group] = vreinterpretq_u32_u8(vrev32q_u8(vld1q_u8(blocks + 16 * group)));
            } else {
                // W[t] = rotl1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]) for four t: SHA1SU0 XORs the
                // groups four, three (shifted by two words) and two back, SHA1SU1 the one before.
                w[group % 4] = vsha1su1q_u32(vsha1su0q_u32(w[group % 4], w[(group + 1) % 4], w[(group + 2) % 4]),
                                             w[(group + 3) % 4]);
            }
            const uint32x4_t words = vaddq_u32(w[group % 4], vdupq_n_u32(constants[group / 5]));
            const uint32_t next_e = vsha1h_u32(vgetq_lane_u32(abcd, 0));
            if (group < 5) abcd = vsha1cq_u32(abcd, e, words);        // Ch
            else if (group < 10) abcd = vsha1pq_u32(abcd, e, words);  // Parity
            else if (group < 15) abcd = vsha1mq_u32(abcd, e, words);  // Maj
            else abcd = vsha1pq_u32(abcd, e, words);                  // Parity
            e = next_e;
        }
        abcd = vaddq_u32(abcd, abcd_before);
        e += e_before;
    }
    vst1q_u32(state, abcd);
    state[4] = e;
}
#endif

int rtcam_sha1_accelerated(void) {
    return (rtcam_cpu_crypto_features() & rtcam_cpu_sha1) != 0;
}

// The SHA-1 compression function over `count` 64-byte blocks (only when accelerated).
static void sha1_compress(uint32_t state[5], const uint8_t *blocks, size_t count) {
#if defined(__x86_64__)
    compress_sha_ni(state, blocks, count);
#elif defined(__aarch64__)
    compress_armv8(state, blocks, count);
#else
    (void)state; (void)blocks; (void)count;
#endif
}

static const uint32_t initial_state[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};

static void store_be32(uint8_t *out, uint32_t value) {
    out[0] = (uint8_t)(value >> 24); out[1] = (uint8_t)(value >> 16);
    out[2] = (uint8_t)(value >> 8); out[3] = (uint8_t)value;
}

// Pads and finishes a hash whose last `buffered` bytes wait in `block`; `length` counts every byte.
static void finish_hash(uint32_t state[5], uint8_t block[64], uint32_t buffered, uint64_t length, uint8_t digest[20]) {
    block[buffered++] = 0x80;
    if (buffered > 56) {
        memset(block + buffered, 0, 64 - buffered);
        sha1_compress(state, block, 1);
        buffered = 0;
    }
    memset(block + buffered, 0, 56 - buffered);
    const uint64_t bits = length * 8;
    store_be32(block + 56, (uint32_t)(bits >> 32));
    store_be32(block + 60, (uint32_t)bits);
    sha1_compress(state, block, 1);
    for (int i = 0; i < 5; i++) store_be32(digest + 4 * i, state[i]);
}

void rtcam_hmac_sha1_set_key(rtcam_hmac_sha1 *context, const uint8_t *key, size_t length) {
    uint8_t padded[64] = {0};
    if (length > 64) {
        // RFC 2104 §2: a key longer than the block is replaced by its hash.
        uint32_t state[5];
        memcpy(state, initial_state, sizeof state);
        const size_t whole = length / 64;
        sha1_compress(state, key, whole);
        uint8_t tail[64];
        memcpy(tail, key + whole * 64, length - whole * 64);
        finish_hash(state, tail, (uint32_t)(length - whole * 64), length, padded);
        explicit_bzero(tail, sizeof tail);
        explicit_bzero(state, sizeof state);
    } else if (length > 0) {
        memcpy(padded, key, length);
    }
    uint8_t pad[64];
    for (int i = 0; i < 64; i++) pad[i] = padded[i] ^ 0x36;
    memcpy(context->inner, initial_state, sizeof context->inner);
    sha1_compress(context->inner, pad, 1);
    for (int i = 0; i < 64; i++) pad[i] = padded[i] ^ 0x5c;
    memcpy(context->outer, initial_state, sizeof context->outer);
    sha1_compress(context->outer, pad, 1);
    explicit_bzero(pad, sizeof pad);
    explicit_bzero(padded, sizeof padded);
    rtcam_hmac_sha1_start(context);
}

void rtcam_hmac_sha1_start(rtcam_hmac_sha1 *context) {
    memcpy(context->state, context->inner, sizeof context->state);
    context->length = 64;
    context->buffered = 0;
}

void rtcam_hmac_sha1_update(rtcam_hmac_sha1 *context, const uint8_t *bytes, size_t length) {
    context->length += length;
    if (context->buffered > 0) {
        const size_t take = length < 64 - context->buffered ? length : 64 - context->buffered;
        memcpy(context->block + context->buffered, bytes, take);
        context->buffered += (uint32_t)take;
        bytes += take;
        length -= take;
        if (context->buffered < 64) return;
        sha1_compress(context->state, context->block, 1);
        context->buffered = 0;
    }
    const size_t whole = length / 64;
    if (whole > 0) sha1_compress(context->state, bytes, whole);
    memcpy(context->block, bytes + whole * 64, length - whole * 64);
    context->buffered = (uint32_t)(length - whole * 64);
}

void rtcam_hmac_sha1_finish(rtcam_hmac_sha1 *context, uint8_t digest[20]) {
    uint8_t inner_digest[20];
    finish_hash(context->state, context->block, context->buffered, context->length, inner_digest);
    memcpy(context->state, context->outer, sizeof context->state);
    memcpy(context->block, inner_digest, 20);
    finish_hash(context->state, context->block, 20, 64 + 20, digest);
    explicit_bzero(inner_digest, sizeof inner_digest);
    rtcam_hmac_sha1_start(context);
}
