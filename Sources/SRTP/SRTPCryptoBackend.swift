internal import CSRTP
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

// libsrtp's crypto kernel lets an application replace the implementation behind a cipher or
// authentication type id (srtp_replace_cipher_type / srtp_replace_auth_type, cipher.h and auth.h),
// after libsrtp's known-answer self-test of the replacement passes. rtcam replaces the two that
// AES_CM_128_HMAC_SHA1_80 uses (SRTP_AES_ICM_128, SRTP_HMAC_SHA1): libsrtp keeps doing SRTP itself
// (key derivation, RFC 3711 §4.3; packet index and ROC, §3.3.1; replay window, §3.3.2; tags) and
// calls the block cipher and MAC given here. Why: Debian's libsrtp2 uses NSS, which sets up and
// tears down a PKCS#11 context for every packet's IV (measured: ~70 % of a protect is NSS
// overhead, ~57 KB of NSS objects per viewer).
//
// The types are libsrtp's own (CSRTP's shim includes cipher.h and auth.h). The callbacks are
// file-level functions, which Swift passes as C function pointers; each srtp_cipher_t/srtp_auth_t
// `state` is a retained Swift object (Unmanaged), released by the matching dealloc.

/// AES-128 encryption of whole 16-byte blocks, in place (ECB; the counter mode is done here).
public protocol SRTPBlockEncryptor: AnyObject {
    func encryptBlocks(_ blocks: UnsafeMutableRawPointer, count: Int)
}

/// HMAC-SHA1 (RFC 2104) with the key it was made with.
public protocol SRTPMessageAuthenticator: AnyObject {
    func start()
    func update(_ bytes: UnsafeRawBufferPointer)
    /// Writes the 20-byte MAC.
    func finish(into digest: UnsafeMutableRawPointer)
}

/// Where AES-128 and HMAC-SHA1 come from (WebRTCSession gives mbedTLS's).
public struct SRTPCryptoBackend: Sendable {
    public var makeAES128: @Sendable (_ key: UnsafeRawBufferPointer) -> (any SRTPBlockEncryptor)?
    public var makeHMACSHA1: @Sendable (_ key: UnsafeRawBufferPointer) -> (any SRTPMessageAuthenticator)?

    public init(makeAES128: @escaping @Sendable (UnsafeRawBufferPointer) -> (any SRTPBlockEncryptor)?,
                makeHMACSHA1: @escaping @Sendable (UnsafeRawBufferPointer) -> (any SRTPMessageAuthenticator)?) {
        self.makeAES128 = makeAES128
        self.makeHMACSHA1 = makeHMACSHA1
    }
}

extension SRTPSession {
    /// Has libsrtp use `backend` for AES-CM-128 and HMAC-SHA1 in every session created afterwards
    /// (process-wide; sessions that exist keep what they have). Returns whether libsrtp accepted
    /// both after its known-answer self-tests (RFC 3711 B.2 keystream, RFC 2202 HMAC-SHA1 case 1);
    /// a refused one stays on libsrtp's own. Installing again replaces the backend.
    ///
    /// The backend is checked against the same known answers before it is made the process's: the
    /// one in use is shared by every session's callbacks, so a wrong one must never be visible, not
    /// even between a swap and libsrtp's refusal (a re-install that fails keeps the previous one).
    @discardableResult
    public static func installCryptoBackend(_ backend: SRTPCryptoBackend) -> Bool {
        guard libraryInitialisationStatus == 0, passesKnownAnswers(backend) else { return false }
        installedBackend.withLock { $0 = backend }
        let cipher = srtp_replace_cipher_type(counterModeType, srtp_cipher_type_id_t(SRTP_AES_ICM_128))
        let auth = srtp_replace_auth_type(hmacSHA1Type, srtp_auth_type_id_t(SRTP_HMAC_SHA1))
        return cipher == srtp_err_status_ok && auth == srtp_err_status_ok
    }

    /// The known answers libsrtp's self-test uses (the test cases in the type tables below), run on
    /// `backend` alone: RFC 3711 B.2's keystream through this file's counter mode, RFC 2202 case 1.
    static func passesKnownAnswers(_ backend: SRTPCryptoBackend) -> Bool {
        let cipherTest = counterModeType.pointee.test_data.pointee
        let counterMode = CounterModeState()
        guard counterMode.setKey(cipherTest.key, backend: backend) else { return false }
        counterMode.setIV(cipherTest.idx)
        var keystream = [UInt8](repeating: 0, count: Int(cipherTest.plaintext_length_octets))
        let expectedCiphertext = Array(UnsafeBufferPointer(start: cipherTest.ciphertext,
                                                           count: Int(cipherTest.ciphertext_length_octets)))
        let encrypted = keystream.withUnsafeMutableBufferPointer { buffer in
            counterMode.apply(buffer.baseAddress!, count: buffer.count)
        }
        guard encrypted, keystream == expectedCiphertext else { return false }

        let authTest = hmacSHA1Type.pointee.test_data.pointee
        let key = UnsafeRawBufferPointer(start: authTest.key, count: Int(authTest.key_length_octets))
        guard let authenticator = backend.makeHMACSHA1(key) else { return false }
        authenticator.start()
        authenticator.update(UnsafeRawBufferPointer(start: authTest.data, count: Int(authTest.data_length_octets)))
        var digest = [UInt8](repeating: 0, count: 20)
        digest.withUnsafeMutableBytes { authenticator.finish(into: $0.baseAddress!) }
        let expectedTag = Array(UnsafeBufferPointer(start: authTest.tag, count: Int(authTest.tag_length_octets)))
        return Array(digest.prefix(expectedTag.count)) == expectedTag
    }
}

private let installedBackend = Mutex<SRTPCryptoBackend?>(nil)

// MARK: - The type tables

// libsrtp keeps pointers to the tables, their test cases and descriptions for the life of the
// process: they are allocated once (global `let`s: lazily, exactly once) and never freed, and
// never written after initialisation, hence `nonisolated(unsafe)`.

/// AES-CM-128 with the RFC 3711 B.2 known answer: session key, salt F0..FD, index 0; the first two
/// keystream blocks (as the ciphertext of 32 zero bytes).
nonisolated(unsafe) private let counterModeType = allocated(srtp_cipher_type_t(
    alloc: cipherAlloc, dealloc: cipherDealloc, init: cipherInit, set_aad: nil,
    encrypt: cipherEncrypt, decrypt: cipherEncrypt,  // counter mode: decryption is the same XOR
    set_iv: cipherSetIV, get_tag: nil,               // NULL set_aad/get_tag: not an AEAD
    description: permanentCString("AES-128 integer counter mode (rtcam)"),
    test_data: allocated(srtp_cipher_test_case_t(
        key_length_octets: 30,
        key: permanentBytes(hex("2B7E151628AED2A6ABF7158809CF4F3C") + hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD")),
        idx: permanentBytes([UInt8](repeating: 0, count: 16)),
        plaintext_length_octets: 32, plaintext: permanentBytes([UInt8](repeating: 0, count: 32)),
        ciphertext_length_octets: 32,
        ciphertext: permanentBytes(hex("E03EAD0935C95E80E166B16DD92B4EB4D23513162B02D0F72A43A2FE4A5F97AB")),
        aad_length_octets: 0, aad: nil, tag_length_octets: 0, next_test_case: nil)),
    id: srtp_cipher_type_id_t(SRTP_AES_ICM_128)))

/// HMAC-SHA1 with RFC 2202 §3 test case 1.
nonisolated(unsafe) private let hmacSHA1Type = allocated(srtp_auth_type_t(
    alloc: authAlloc, dealloc: authDealloc, init: authInit, compute: authCompute, update: authUpdate,
    start: authStart, description: permanentCString("HMAC-SHA1 (rtcam)"),
    test_data: allocated(srtp_auth_test_case_t(
        key_length_octets: 20, key: permanentBytes([UInt8](repeating: 0x0B, count: 20)),
        data_length_octets: 8, data: permanentBytes(Array("Hi There".utf8)),
        tag_length_octets: 20, tag: permanentBytes(hex("b617318655057264e28bc0b6fb378c8ef146be00")),
        next_test_case: nil)),
    id: srtp_auth_type_id_t(SRTP_HMAC_SHA1)))

/// `value` on the heap: the tables for good, each srtp_cipher_t/srtp_auth_t until its dealloc.
private func allocated<T>(_ value: T) -> UnsafeMutablePointer<T> {
    let pointer = UnsafeMutablePointer<T>.allocate(capacity: 1)
    pointer.initialize(to: value)
    return pointer
}

/// Mutable only because the test case's `idx` is `uint8_t *`; libsrtp does not write it.
private func permanentBytes(_ bytes: [UInt8]) -> UnsafeMutablePointer<UInt8> {
    let pointer = UnsafeMutablePointer<UInt8>.allocate(capacity: bytes.count)
    pointer.initialize(from: bytes, count: bytes.count)
    return pointer
}

private func permanentCString(_ text: String) -> UnsafePointer<CChar> { UnsafePointer(strdup(text)!) }

private func hex(_ text: String) -> [UInt8] {
    let digits = Array(text.utf8)
    return stride(from: 0, to: digits.count, by: 2).map { index in
        func value(_ c: UInt8) -> UInt8 { c >= 65 ? (c | 0x20) - 87 : c - 48 }
        return value(digits[index]) << 4 | value(digits[index + 1])
    }
}

// MARK: - AES-ICM (RFC 3711 §4.1.1)

/// One AES-CM-128 transform: keystream block i = AES(K, (salt·2^16) XOR IV + i), the 16-bit block
/// counter in the last two bytes; keystream left over from a partial block is used first by the
/// next call (libsrtp's semantics), and 2^16 - 1 blocks per IV is the limit (RFC 3711 §4.1.1).
private final class CounterModeState {
    /// offset (salt, 16) | counter (16) | leftover keystream (16) | scratch blocks
    private let storage: UnsafeMutableRawPointer
    private static let scratchBlocks = 16
    private static let size = 48 + scratchBlocks * 16
    private var leftoverStart = 16   // 16: none left
    private var blocksSinceIV = 0
    var encryptor: (any SRTPBlockEncryptor)?

    init() {
        storage = .allocate(byteCount: Self.size, alignment: 16)
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: Self.size)
    }

    deinit {
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: Self.size)
        storage.deallocate()
    }

    /// 16-byte key then 14-byte salt (libsrtp's SRTP_AES_ICM_128_KEY_LEN_WSALT).
    func setKey(_ key: UnsafePointer<UInt8>, backend: SRTPCryptoBackend) -> Bool {
        encryptor = backend.makeAES128(UnsafeRawBufferPointer(start: key, count: 16))
        let offset = storage.assumingMemoryBound(to: UInt8.self)
        offset.update(from: key + 16, count: 14)
        offset[14] = 0
        offset[15] = 0
        return encryptor != nil
    }

    func setIV(_ iv: UnsafePointer<UInt8>) {
        let bytes = storage.assumingMemoryBound(to: UInt8.self)
        for index in 0..<16 { bytes[16 + index] = bytes[index] ^ iv[index] }
        leftoverStart = 16
        blocksSinceIV = 0
    }

    /// XORs `count` bytes at `buffer` with the keystream; false past the per-IV block limit.
    func apply(_ buffer: UnsafeMutablePointer<UInt8>, count: Int) -> Bool {
        guard let encryptor else { return false }
        // Properties are read once into locals and written back once: each access to a class's
        // stored property is a dynamic exclusivity check, too many for a per-byte loop.
        let bytes = storage.assumingMemoryBound(to: UInt8.self)
        var leftover = leftoverStart
        var done = 0
        while leftover < 16 && done < count {
            buffer[done] ^= bytes[32 + leftover]
            leftover += 1
            done += 1
        }
        leftoverStart = leftover
        guard done < count else { return true }
        let blocksNeeded = (count - done + 15) / 16
        guard blocksSinceIV + blocksNeeded <= 0xFFFF else { return false }
        blocksSinceIV += blocksNeeded
        // The counter block as two words in memory order; the 16-bit block counter is its last
        // two bytes, big-endian (the top 16 bits of the second word on a little-endian load).
        let high = storage.load(fromByteOffset: 16, as: UInt64.self)
        let lowWord = storage.load(fromByteOffset: 24, as: UInt64.self)
        var blockCounter = UInt16(bytes[30]) << 8 | UInt16(bytes[31])
        let scratch = storage + 48
        while done < count {
            let blocks = min((count - done + 15) / 16, Self.scratchBlocks)
            for block in 0..<blocks {
                var word = lowWord
                withUnsafeMutableBytes(of: &word) { wordBytes in
                    wordBytes[6] = UInt8(blockCounter >> 8)
                    wordBytes[7] = UInt8(blockCounter & 0xFF)
                }
                scratch.storeBytes(of: high, toByteOffset: block * 16, as: UInt64.self)
                scratch.storeBytes(of: word, toByteOffset: block * 16 + 8, as: UInt64.self)
                blockCounter &+= 1
            }
            encryptor.encryptBlocks(scratch, count: blocks)
            let length = min(count - done, blocks * 16)
            let target = UnsafeMutableRawPointer(buffer + done)
            var index = 0
            while index + 8 <= length {
                let word = target.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                    ^ scratch.load(fromByteOffset: index, as: UInt64.self)
                target.storeBytes(of: word, toByteOffset: index, as: UInt64.self)
                index += 8
            }
            while index < length {
                buffer[done + index] ^= scratch.load(fromByteOffset: index, as: UInt8.self)
                index += 1
            }
            if length < blocks * 16 {
                // Keep the rest of the last block's keystream for the next call.
                let used = length % 16
                (storage + 32 + used).copyMemory(from: scratch + (blocks - 1) * 16 + used, byteCount: 16 - used)
                leftoverStart = used
            }
            done += length
        }
        bytes[30] = UInt8(blockCounter >> 8)
        bytes[31] = UInt8(blockCounter & 0xFF)
        return true
    }
}

private func cipherState(_ state: UnsafeMutableRawPointer?) -> CounterModeState? {
    state.map { Unmanaged<CounterModeState>.fromOpaque($0).takeUnretainedValue() }
}

private func cipherAlloc(_ cipher: UnsafeMutablePointer<srtp_cipher_pointer_t?>?, _ keyLength: Int32,
                         _ tagLength: Int32) -> srtp_err_status_t {
    // 16-byte key + 14-byte salt; the 192/256-bit ICM types are other ids, left to libsrtp.
    guard let cipher, keyLength == 30 else { return srtp_err_status_bad_param }
    cipher.pointee = allocated(srtp_cipher_t(
        type: counterModeType, state: Unmanaged.passRetained(CounterModeState()).toOpaque(),
        key_len: keyLength, algorithm: Int32(SRTP_AES_ICM_128)))
    return srtp_err_status_ok
}

private func cipherDealloc(_ cipher: srtp_cipher_pointer_t?) -> srtp_err_status_t {
    guard let cipher else { return srtp_err_status_bad_param }
    if let state = cipher.pointee.state { Unmanaged<CounterModeState>.fromOpaque(state).release() }
    cipher.deinitialize(count: 1)
    cipher.deallocate()
    return srtp_err_status_ok
}

private func cipherInit(_ state: UnsafeMutableRawPointer?, _ key: UnsafePointer<UInt8>?) -> srtp_err_status_t {
    guard let state = cipherState(state), let key, let backend = installedBackend.withLock({ $0 }) else {
        return srtp_err_status_fail
    }
    return state.setKey(key, backend: backend) ? srtp_err_status_ok : srtp_err_status_fail
}

/// Encrypt and decrypt both: XOR with the keystream.
private func cipherEncrypt(_ state: UnsafeMutableRawPointer?, _ buffer: UnsafeMutablePointer<UInt8>?,
                           _ length: UnsafeMutablePointer<UInt32>?) -> srtp_err_status_t {
    guard let state = cipherState(state), let length else { return srtp_err_status_bad_param }
    guard length.pointee > 0 else { return srtp_err_status_ok }
    guard let buffer else { return srtp_err_status_bad_param }
    return state.apply(buffer, count: Int(length.pointee)) ? srtp_err_status_ok : srtp_err_status_terminus
}

private func cipherSetIV(_ state: UnsafeMutableRawPointer?, _ iv: UnsafeMutablePointer<UInt8>?,
                         _ direction: srtp_cipher_direction_t) -> srtp_err_status_t {
    guard let state = cipherState(state), let iv else { return srtp_err_status_bad_param }
    state.setIV(iv)
    return srtp_err_status_ok
}

// MARK: - HMAC-SHA1 (RFC 2104, RFC 3711 §4.2.1)

private final class AuthenticatorState {
    var authenticator: (any SRTPMessageAuthenticator)?
    /// The full 20-byte MAC before truncation to the tag length.
    let digest = UnsafeMutableRawPointer.allocate(byteCount: 20, alignment: 8)

    deinit {
        digest.initializeMemory(as: UInt8.self, repeating: 0, count: 20)
        digest.deallocate()
    }
}

private func authState(_ state: UnsafeMutableRawPointer?) -> AuthenticatorState? {
    state.map { Unmanaged<AuthenticatorState>.fromOpaque($0).takeUnretainedValue() }
}

private func authAlloc(_ auth: UnsafeMutablePointer<srtp_auth_pointer_t?>?, _ keyLength: Int32,
                       _ outLength: Int32) -> srtp_err_status_t {
    guard let auth, (0...20).contains(keyLength), (0...20).contains(outLength) else {
        return srtp_err_status_bad_param
    }
    auth.pointee = allocated(srtp_auth_t(
        type: hmacSHA1Type, state: Unmanaged.passRetained(AuthenticatorState()).toOpaque(),
        out_len: outLength, key_len: keyLength, prefix_len: 0))
    return srtp_err_status_ok
}

private func authDealloc(_ auth: srtp_auth_pointer_t?) -> srtp_err_status_t {
    guard let auth else { return srtp_err_status_bad_param }
    if let state = auth.pointee.state { Unmanaged<AuthenticatorState>.fromOpaque(state).release() }
    auth.deinitialize(count: 1)
    auth.deallocate()
    return srtp_err_status_ok
}

private func authInit(_ state: UnsafeMutableRawPointer?, _ key: UnsafePointer<UInt8>?,
                      _ keyLength: Int32) -> srtp_err_status_t {
    guard let state = authState(state), let key, keyLength > 0, let backend = installedBackend.withLock({ $0 }) else {
        return srtp_err_status_fail
    }
    state.authenticator = backend.makeHMACSHA1(UnsafeRawBufferPointer(start: key, count: Int(keyLength)))
    return state.authenticator == nil ? srtp_err_status_fail : srtp_err_status_ok
}

private func authStart(_ state: UnsafeMutableRawPointer?) -> srtp_err_status_t {
    guard let authenticator = authState(state)?.authenticator else { return srtp_err_status_fail }
    authenticator.start()
    return srtp_err_status_ok
}

private func authUpdate(_ state: UnsafeMutableRawPointer?, _ buffer: UnsafePointer<UInt8>?,
                        _ length: Int32) -> srtp_err_status_t {
    guard let authenticator = authState(state)?.authenticator, length >= 0 else { return srtp_err_status_fail }
    if let buffer, length > 0 { authenticator.update(UnsafeRawBufferPointer(start: buffer, count: Int(length))) }
    return srtp_err_status_ok
}

private func authCompute(_ state: UnsafeMutableRawPointer?, _ buffer: UnsafePointer<UInt8>?, _ length: Int32,
                         _ tagLength: Int32, _ tag: UnsafeMutablePointer<UInt8>?) -> srtp_err_status_t {
    guard let state = authState(state), let authenticator = state.authenticator, length >= 0,
          (0...20).contains(tagLength), let tag
    else { return srtp_err_status_fail }
    if let buffer, length > 0 { authenticator.update(UnsafeRawBufferPointer(start: buffer, count: Int(length))) }
    authenticator.finish(into: state.digest)
    tag.update(from: state.digest.assumingMemoryBound(to: UInt8.self), count: Int(tagLength))
    return srtp_err_status_ok
}
