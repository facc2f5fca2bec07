// The TLS (HTTPS) touch points of mbedTLS that differ between 2.28 (Debian 12) and 3.6 (Debian 13),
// beside shim.h's DTLS ones.
#ifndef RTCAM_CMBEDTLS_TLS_SHIM_H
#define RTCAM_CMBEDTLS_TLS_SHIM_H

#include "shim.h"
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509.h>

/// TLS 1.2 and later only (1.3 where the library has it: 3.6).
static inline void rtcam_tls_conf_versions(mbedtls_ssl_config *conf) {
#if RTCAM_MBEDTLS_3
    mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
#else
    mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
#endif
}

/// The HTTPS suites, strongest first, 0-terminated: TLS 1.2 ECDHE-ECDSA with AES-GCM and
/// ChaCha20-Poly1305 (forward secrecy, AEAD; certificates are ECDSA), and on 3.6 the TLS 1.3 ones.
static inline const int *rtcam_tls_ciphersuites(void) {
    static const int suites[] = {
#if RTCAM_MBEDTLS_3 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
        MBEDTLS_TLS1_3_AES_128_GCM_SHA256, MBEDTLS_TLS1_3_AES_256_GCM_SHA384, MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
#endif
        MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, 0,
    };
    return suites;
}

/// Stateless session resumption (RFC 5077): tickets sealed with AES-256-GCM, valid a day.
static inline int rtcam_tls_conf_tickets(mbedtls_ssl_config *conf, mbedtls_ssl_ticket_context *tickets,
                                         int (*f_rng)(void *, unsigned char *, size_t), void *p_rng) {
    int result = mbedtls_ssl_ticket_setup(tickets, f_rng, p_rng, MBEDTLS_CIPHER_AES_256_GCM, 86400);
    if (result != 0) return result;
    mbedtls_ssl_conf_session_tickets_cb(conf, mbedtls_ssl_ticket_write, mbedtls_ssl_ticket_parse, tickets);
    return 0;
}

/// Whether the key is an elliptic-curve one (the only kind the suites above can use).
static inline int rtcam_tls_key_is_ec(mbedtls_pk_context *key) {
    return mbedtls_pk_can_do(key, MBEDTLS_PK_ECDSA);
}

/// Whether a read's result says only that a TLS 1.3 NewSessionTicket arrived (3.x; reading goes on).
/// 2.28 has no such result (and no TLS 1.3).
static inline int rtcam_tls_is_new_session_ticket(int result) {
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
    return result == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET;
#else
    (void) result;
    return 0;
#endif
}

/// The negotiated protocol and suite, e.g. "TLSv1.2" and "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256".
static inline const char *rtcam_tls_version(const mbedtls_ssl_context *ssl) { return mbedtls_ssl_get_version(ssl); }
static inline const char *rtcam_tls_ciphersuite(const mbedtls_ssl_context *ssl) { return mbedtls_ssl_get_ciphersuite(ssl); }

/// The subjectAltName extension (RFC 5280 §4.2.1.6), its value given as DER (a GeneralNames SEQUENCE).
static inline int rtcam_x509write_crt_set_subject_alt_names(mbedtls_x509write_cert *writer, const unsigned char *der,
                                                            size_t length) {
    return mbedtls_x509write_crt_set_extension(writer, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                               MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, der, length);
}

/// extendedKeyUsage serverAuth (RFC 5280 §4.2.1.12), what a browser checks a server certificate for.
static inline int rtcam_x509write_crt_set_server_auth(mbedtls_x509write_cert *writer) {
    static const unsigned char value[] = {0x30, 0x0A, 0x06, 0x08, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01};
    return mbedtls_x509write_crt_set_extension(writer, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                                               MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0, value, sizeof value);
}

#endif
