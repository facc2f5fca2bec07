// The mbedTLS headers rtcam uses, and every call whose spelling differs between mbedTLS 2.28
// (Debian 12, Raspberry Pi OS bookworm) and 3.6 (Debian 13, Raspberry Pi OS trixie). The DTLS target
// calls the rtcam_mbedtls_* functions below for those and mbedTLS directly for everything that is
// the same in both; this file is the only place that looks at MBEDTLS_VERSION_NUMBER.
// No pkg-config file ships with either version, so module.modulemap links the libraries by name.
#ifndef RTCAM_CMBEDTLS_SHIM_H
#define RTCAM_CMBEDTLS_SHIM_H

#include <mbedtls/version.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_cookie.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>
#include <mbedtls/pk.h>
#include <mbedtls/ecp.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/md.h>
#include <mbedtls/sha256.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/error.h>
#include <mbedtls/timing.h>
#include <mbedtls/debug.h>
#include <mbedtls/pem.h>
#include <mbedtls/aes.h>
#include <mbedtls/platform_util.h>
#include <string.h>

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define RTCAM_MBEDTLS_3 1
#include <psa/crypto.h>
#elif MBEDTLS_VERSION_NUMBER < 0x021C0000
#error "rtcam needs mbedTLS 2.28 or 3.6"
#endif

#if !defined(MBEDTLS_SSL_DTLS_SRTP)
#error "rtcam needs mbedTLS built with MBEDTLS_SSL_DTLS_SRTP (Debian's is)"
#endif

/// The linked library's version (MBEDTLS_VERSION_NUMBER of the headers: 0x021C0300 is 2.28.3).
static inline unsigned rtcam_mbedtls_version_number(void) { return MBEDTLS_VERSION_NUMBER; }

/// Once per process before any other call. 3.x: starts the PSA crypto core, which its TLS code may
/// use internally. Returns 0 or an error code.
static inline int rtcam_mbedtls_initialize(void) {
#if RTCAM_MBEDTLS_3
    return psa_crypto_init() == PSA_SUCCESS ? 0 : MBEDTLS_ERR_SSL_INTERNAL_ERROR;
#else
    return 0;
#endif
}

// MARK: SSL

/// DTLS 1.2 only (RFC 8827 §6.5) — 3.x also knows TLS 1.3, which has no DTLS in mbedTLS.
static inline void rtcam_mbedtls_ssl_conf_dtls12_only(mbedtls_ssl_config *conf) {
#if RTCAM_MBEDTLS_3
    mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
#else
    mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
#endif
}

/// What the RFC 5705 exporter needs: the key export callback hands over the TLS 1.2 master secret and
/// the randoms during the handshake and rtcam runs the TLS PRF itself (2.28 has no exporter). 3.6's
/// own mbedtls_ssl_export_keying_material is not used: Debian 13's 3.6.6 crashes in it after a DTLS
/// 1.2 handshake (NULL dereference at 0x1a2, measured with gdb on amd64).
typedef struct rtcam_mbedtls_exporter {
    unsigned char master_secret[48];
    unsigned char randoms[64];  // client_random || server_random
    int prf;                    // mbedtls_tls_prf_types
    int has_secret;
} rtcam_mbedtls_exporter;

/// Zeroes the kept secret (after use, on failure, at close).
static inline void rtcam_mbedtls_exporter_clear(rtcam_mbedtls_exporter *exporter) {
    mbedtls_platform_zeroize(exporter, sizeof *exporter);
}

static inline void rtcam_mbedtls_exporter_keep(rtcam_mbedtls_exporter *exporter, const unsigned char *master_secret,
                                               const unsigned char client_random[32],
                                               const unsigned char server_random[32], mbedtls_tls_prf_types prf) {
    memcpy(exporter->master_secret, master_secret, 48);
    memcpy(exporter->randoms, client_random, 32);
    memcpy(exporter->randoms + 32, server_random, 32);
    exporter->prf = (int) prf;
    exporter->has_secret = 1;
}

#if RTCAM_MBEDTLS_3
static inline void rtcam_mbedtls_export_keys_3(void *opaque, mbedtls_ssl_key_export_type type,
                                               const unsigned char *secret, size_t secret_length,
                                               const unsigned char client_random[32],
                                               const unsigned char server_random[32],
                                               mbedtls_tls_prf_types prf) {
    if (type != MBEDTLS_SSL_KEY_EXPORT_TLS12_MASTER_SECRET || secret_length != 48) return;
    rtcam_mbedtls_exporter_keep((rtcam_mbedtls_exporter *) opaque, secret, client_random, server_random, prf);
}
#else
static inline int rtcam_mbedtls_export_keys_228(void *opaque, const unsigned char *master_secret,
                                                const unsigned char *key_block, size_t mac_length,
                                                size_t key_length, size_t iv_length,
                                                const unsigned char client_random[32],
                                                const unsigned char server_random[32],
                                                mbedtls_tls_prf_types prf) {
    (void) key_block; (void) mac_length; (void) key_length; (void) iv_length;
    rtcam_mbedtls_exporter_keep((rtcam_mbedtls_exporter *) opaque, master_secret, client_random, server_random, prf);
    return 0;
}
#endif

/// Installs what `rtcam_mbedtls_export_keying_material` needs; call after mbedtls_ssl_setup and
/// after every mbedtls_ssl_session_reset (3.x keeps the callback on the context, 2.28 on the
/// configuration). `exporter` must live as long as `ssl` and `conf`.
static inline void rtcam_mbedtls_install_exporter(mbedtls_ssl_config *conf, mbedtls_ssl_context *ssl,
                                                  rtcam_mbedtls_exporter *exporter) {
#if RTCAM_MBEDTLS_3
    (void) conf;
    mbedtls_ssl_set_export_keys_cb(ssl, rtcam_mbedtls_export_keys_3, exporter);
#else
    (void) ssl;
    mbedtls_ssl_conf_export_keys_ext_cb(conf, rtcam_mbedtls_export_keys_228, exporter);
#endif
}

/// RFC 5705 §4 keying material without a context, after a finished handshake (RFC 5764 §4.2 uses the
/// label "EXTRACTOR-dtls_srtp"): PRF(master_secret, label, client_random + server_random); the kept
/// secret is zeroed. Returns 0 or an mbedTLS error code.
static inline int rtcam_mbedtls_export_keying_material(rtcam_mbedtls_exporter *exporter, const char *label,
                                                       unsigned char *out, size_t length) {
    if (!exporter->has_secret) return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    int result = mbedtls_ssl_tls_prf((mbedtls_tls_prf_types) exporter->prf, exporter->master_secret,
                                     sizeof exporter->master_secret, label, exporter->randoms,
                                     sizeof exporter->randoms, out, length);
    rtcam_mbedtls_exporter_clear(exporter);
    return result;
}

/// The SRTP protection profile the handshake chose (RFC 5764 §4.1.3), MBEDTLS_TLS_SRTP_UNSET if none.
static inline uint16_t rtcam_mbedtls_ssl_srtp_profile(const mbedtls_ssl_context *ssl) {
    mbedtls_dtls_srtp_info info;
    mbedtls_ssl_get_dtls_srtp_negotiation_result(ssl, &info);
#if RTCAM_MBEDTLS_3
    return info.MBEDTLS_PRIVATE(chosen_dtls_srtp_profile);
#else
    return info.chosen_dtls_srtp_profile;
#endif
}

// MARK: Crypto and X.509

static inline int rtcam_mbedtls_sha256(const unsigned char *input, size_t length, unsigned char output[32]) {
#if RTCAM_MBEDTLS_3
    return mbedtls_sha256(input, length, output, 0);
#else
    return mbedtls_sha256_ret(input, length, output, 0);
#endif
}

/// PBKDF2-HMAC-SHA-256 (RFC 8018 §5.2).
static inline int rtcam_mbedtls_pbkdf2_hmac_sha256(const unsigned char *password, size_t password_length,
                                                   const unsigned char *salt, size_t salt_length,
                                                   unsigned iterations, uint32_t length, unsigned char *output) {
#if RTCAM_MBEDTLS_3
    return mbedtls_pkcs5_pbkdf2_hmac_ext(MBEDTLS_MD_SHA256, password, password_length, salt, salt_length,
                                         iterations, length, output);
#else
    mbedtls_md_context_t md;
    mbedtls_md_init(&md);
    int result = mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
    if (result == 0) {
        result = mbedtls_pkcs5_pbkdf2_hmac(&md, password, password_length, salt, salt_length,
                                           iterations, length, output);
    }
    mbedtls_md_free(&md);
    return result;
#endif
}

/// Parses an unencrypted private key (PEM with its NUL counted in `length`, or DER). 3.x wants an
/// RNG for the blinding of the key-pair check it runs.
static inline int rtcam_mbedtls_pk_parse_key(mbedtls_pk_context *key, const unsigned char *bytes, size_t length,
                                             int (*f_rng)(void *, unsigned char *, size_t), void *p_rng) {
#if RTCAM_MBEDTLS_3
    return mbedtls_pk_parse_key(key, bytes, length, NULL, 0, f_rng, p_rng);
#else
    (void) f_rng; (void) p_rng;
    return mbedtls_pk_parse_key(key, bytes, length, NULL, 0);
#endif
}

/// Signs a hash into `signature` (at most `capacity` bytes; the length is written to `*length`).
static inline int rtcam_mbedtls_pk_sign(mbedtls_pk_context *key, mbedtls_md_type_t md, const unsigned char *hash,
                                        size_t hash_length, unsigned char *signature, size_t capacity, size_t *length,
                                        int (*f_rng)(void *, unsigned char *, size_t), void *p_rng) {
#if RTCAM_MBEDTLS_3
    return mbedtls_pk_sign(key, md, hash, hash_length, signature, capacity, length, f_rng, p_rng);
#else
    // 2.28 has no capacity argument; an ECDSA signature is at most MBEDTLS_ECDSA_MAX_LEN bytes.
    if (mbedtls_pk_can_do(key, MBEDTLS_PK_ECDSA) && capacity < MBEDTLS_ECDSA_MAX_LEN) return MBEDTLS_ERR_PK_BAD_INPUT_DATA;
    return mbedtls_pk_sign(key, md, hash, hash_length, signature, length, f_rng, p_rng);
#endif
}

static inline int rtcam_mbedtls_pk_check_pair(const mbedtls_pk_context *public_key, const mbedtls_pk_context *private_key,
                                              int (*f_rng)(void *, unsigned char *, size_t), void *p_rng) {
#if RTCAM_MBEDTLS_3
    return mbedtls_pk_check_pair(public_key, private_key, f_rng, p_rng);
#else
    (void) f_rng; (void) p_rng;
    return mbedtls_pk_check_pair(public_key, private_key);
#endif
}

/// The EC key pair inside a context set up for MBEDTLS_PK_ECKEY, NULL for any other type.
static inline mbedtls_ecp_keypair *rtcam_mbedtls_pk_ec_keypair(mbedtls_pk_context *key) {
    return mbedtls_pk_get_type(key) == MBEDTLS_PK_ECKEY ? mbedtls_pk_ec(*key) : NULL;
}

/// A certificate's serial number from its big-endian bytes (RFC 5280 §4.1.2.2).
static inline int rtcam_mbedtls_x509write_crt_set_serial(mbedtls_x509write_cert *writer, const unsigned char *bytes,
                                                         size_t length) {
#if RTCAM_MBEDTLS_3
    return mbedtls_x509write_crt_set_serial_raw(writer, (unsigned char *) bytes, length);
#else
    mbedtls_mpi serial;
    mbedtls_mpi_init(&serial);
    int result = mbedtls_mpi_read_binary(&serial, bytes, length);
    if (result == 0) result = mbedtls_x509write_crt_set_serial(writer, &serial);
    mbedtls_mpi_free(&serial);
    return result;
#endif
}

/// A parsed certificate's signature value.
static inline const mbedtls_x509_buf *rtcam_mbedtls_x509_crt_signature(const mbedtls_x509_crt *certificate) {
#if RTCAM_MBEDTLS_3
    return &certificate->MBEDTLS_PRIVATE(sig);
#else
    return &certificate->sig;
#endif
}

#endif
