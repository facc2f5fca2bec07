// mbedTLS 2.28 (Debian 12) headers rtcam uses. No pkg-config file ships, so the libraries are linked
// by name in module.modulemap.
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
