#include <srtp2/srtp.h>
// The crypto kernel's types and srtp_replace_cipher_type / srtp_replace_auth_type, for
// SRTP/SRTPCryptoBackend.swift (both headers include srtp.h and crypto_types.h themselves).
#include <srtp2/cipher.h>
#include <srtp2/auth.h>
