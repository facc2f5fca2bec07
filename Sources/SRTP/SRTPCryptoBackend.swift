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
// CSRTP's header includes only srtp.h, so the structs of cipher.h/auth.h are laid out here by
// the C rules (natural alignment, in declaration order) and the two functions are looked up with
// dlsym. The layouts are those of libsrtp 2.x (2.3-2.6 identical).

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
    @discardableResult
    public static func installCryptoBackend(_ backend: SRTPCryptoBackend) -> Bool {
        guard libraryInitialisationStatus == 0, let tables = LibSRTPTypeTables.shared else { return false }
        installedBackend.withLock { $0 = backend }
        let cipher = tables.replaceCipher(tables.cipherType, SRTP_AES_ICM_128_ID)
        let auth = tables.replaceAuth(tables.authType, SRTP_HMAC_SHA1_ID)
        return cipher == 0 && auth == 0
    }
}

private let SRTP_AES_ICM_128_ID: UInt32 = 1  // crypto_types.h
private let SRTP_HMAC_SHA1_ID: UInt32 = 3    // crypto_types.h
private let installedBackend = Mutex<SRTPCryptoBackend?>(nil)

// MARK: - C layouts

/// Offsets of a C struct's fields, in order, with natural alignment (every ABI Debian ships).
private struct CStructLayout {
    private(set) var size = 0
    private var alignment = 1
    static let pointerSize = MemoryLayout<UnsafeRawPointer>.size

    mutating func pointer() -> Int { field(size: Self.pointerSize, alignment: Self.pointerSize) }
    mutating func int32() -> Int { field(size: 4, alignment: 4) }

    private mutating func field(size fieldSize: Int, alignment fieldAlignment: Int) -> Int {
        size = (size + fieldAlignment - 1) / fieldAlignment * fieldAlignment
        let offset = size
        size += fieldSize
        alignment = max(alignment, fieldAlignment)
        return offset
    }

    var totalSize: Int { (size + alignment - 1) / alignment * alignment }
}

/// srtp_cipher_t { const srtp_cipher_type_t *type; void *state; int key_len; int algorithm; }
private enum CipherLayout {
    private static let offsets: [Int] = {
        var layout = CStructLayout()
        return [layout.pointer(), layout.pointer(), layout.int32(), layout.int32(), layout.totalSize]
    }()
    static var type: Int { offsets[0] }
    static var state: Int { offsets[1] }
    static var keyLength: Int { offsets[2] }
    static var algorithm: Int { offsets[3] }
    static var size: Int { offsets[4] }
}

/// srtp_auth_t { const srtp_auth_type_t *type; void *state; int out_len; int key_len; int prefix_len; }
private enum AuthLayout {
    private static let offsets: [Int] = {
        var layout = CStructLayout()
        return [layout.pointer(), layout.pointer(), layout.int32(), layout.int32(), layout.int32(), layout.totalSize]
    }()
    static var type: Int { offsets[0] }
    static var state: Int { offsets[1] }
    static var outLength: Int { offsets[2] }
    static var keyLength: Int { offsets[3] }
    static var prefixLength: Int { offsets[4] }
    static var size: Int { offsets[5] }
}

typealias CipherAlloc = @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int32, Int32) -> srtp_err_status_t
typealias CipherDealloc = @convention(c) (UnsafeMutableRawPointer?) -> srtp_err_status_t
typealias CipherInit = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<UInt8>?) -> srtp_err_status_t
typealias CipherEncrypt = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt32>?) -> srtp_err_status_t
typealias CipherSetIV = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UInt8>?, UInt32) -> srtp_err_status_t
typealias AuthAlloc = @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int32, Int32) -> srtp_err_status_t
typealias AuthDealloc = @convention(c) (UnsafeMutableRawPointer?) -> srtp_err_status_t
typealias AuthInit = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<UInt8>?, Int32) -> srtp_err_status_t
typealias AuthCompute = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<UInt8>?, Int32, Int32, UnsafeMutablePointer<UInt8>?) -> srtp_err_status_t
typealias AuthUpdate = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<UInt8>?, Int32) -> srtp_err_status_t
typealias AuthStart = @convention(c) (UnsafeMutableRawPointer?) -> srtp_err_status_t
typealias ReplaceType = @convention(c) (UnsafeRawPointer?, UInt32) -> UInt32

/// The srtp_cipher_type_t and srtp_auth_type_t rtcam registers, with their test cases: built once,
/// never freed (libsrtp keeps pointers to them).
private final class LibSRTPTypeTables: @unchecked Sendable {
    static let shared = LibSRTPTypeTables()

    let cipherType: UnsafeMutableRawPointer
    let authType: UnsafeMutableRawPointer
    let replaceCipher: ReplaceType
    let replaceAuth: ReplaceType

    private init?() {
        guard let replaceCipher = dlsym(nil, "srtp_replace_cipher_type"),
              let replaceAuth = dlsym(nil, "srtp_replace_auth_type") else { return nil }
        self.replaceCipher = unsafeBitCast(replaceCipher, to: ReplaceType.self)
        self.replaceAuth = unsafeBitCast(replaceAuth, to: ReplaceType.self)
        cipherType = Self.makeCipherType()
        authType = Self.makeAuthType()
    }

    private static func bytes(_ values: [UInt8]) -> UnsafeMutablePointer<UInt8> {
        let pointer = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, values.count))
        pointer.initialize(from: values, count: values.count)
        return pointer
    }

    private static func hex(_ text: String) -> [UInt8] {
        let digits = Array(text.utf8)
        return stride(from: 0, to: digits.count, by: 2).map { index in
            func value(_ c: UInt8) -> UInt8 { c >= 65 ? (c | 0x20) - 87 : c - 48 }
            return value(digits[index]) << 4 | value(digits[index + 1])
        }
    }

    /// srtp_cipher_type_t { alloc, dealloc, init, set_aad, encrypt, decrypt, set_iv, get_tag,
    /// const char *description, const srtp_cipher_test_case_t *test_data, srtp_cipher_type_id_t id }
    private static func makeCipherType() -> UnsafeMutableRawPointer {
        // srtp_cipher_test_case_t { int key_length_octets; const uint8_t *key; uint8_t *idx;
        // unsigned plaintext_length_octets; const uint8_t *plaintext; unsigned
        // ciphertext_length_octets; const uint8_t *ciphertext; int aad_length_octets; const
        // uint8_t *aad; int tag_length_octets; const srtp_cipher_test_case_t *next_test_case; }
        var test = CStructLayout()
        let tKeyLength = test.int32(), tKey = test.pointer(), tIndex = test.pointer()
        let tPlainLength = test.int32(), tPlain = test.pointer(), tCipherLength = test.int32()
        let tCipher = test.pointer(), tAADLength = test.int32(), tAAD = test.pointer()
        let tTagLength = test.int32(), tNext = test.pointer()
        let testCase = UnsafeMutableRawPointer.allocate(byteCount: test.totalSize, alignment: 16)
        testCase.initializeMemory(as: UInt8.self, repeating: 0, count: test.totalSize)
        // RFC 3711 B.2: session key, salt F0..FD; the first two keystream blocks of index 0.
        let key = hex("2B7E151628AED2A6ABF7158809CF4F3C") + hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD")
        let keystream = hex("E03EAD0935C95E80E166B16DD92B4EB4D23513162B02D0F72A43A2FE4A5F97AB")
        testCase.storeBytes(of: Int32(key.count), toByteOffset: tKeyLength, as: Int32.self)
        testCase.storeBytes(of: UnsafeRawPointer(bytes(key)), toByteOffset: tKey, as: UnsafeRawPointer.self)
        testCase.storeBytes(of: UnsafeRawPointer(bytes([UInt8](repeating: 0, count: 16))), toByteOffset: tIndex,
                            as: UnsafeRawPointer.self)
        testCase.storeBytes(of: UInt32(keystream.count), toByteOffset: tPlainLength, as: UInt32.self)
        testCase.storeBytes(of: UnsafeRawPointer(bytes([UInt8](repeating: 0, count: keystream.count))),
                            toByteOffset: tPlain, as: UnsafeRawPointer.self)
        testCase.storeBytes(of: UInt32(keystream.count), toByteOffset: tCipherLength, as: UInt32.self)
        testCase.storeBytes(of: UnsafeRawPointer(bytes(keystream)), toByteOffset: tCipher, as: UnsafeRawPointer.self)
        _ = (tAADLength, tAAD, tTagLength, tNext)  // zero: no AAD, no tag, no next case

        var type = CStructLayout()
        let alloc = type.pointer(), dealloc = type.pointer(), initialise = type.pointer(), setAAD = type.pointer()
        let encrypt = type.pointer(), decrypt = type.pointer(), setIV = type.pointer(), getTag = type.pointer()
        let description = type.pointer(), testData = type.pointer(), id = type.int32()
        let table = UnsafeMutableRawPointer.allocate(byteCount: type.totalSize, alignment: 16)
        table.initializeMemory(as: UInt8.self, repeating: 0, count: type.totalSize)
        table.storeBytes(of: cipherAlloc, toByteOffset: alloc, as: CipherAlloc.self)
        table.storeBytes(of: cipherDealloc, toByteOffset: dealloc, as: CipherDealloc.self)
        table.storeBytes(of: cipherInit, toByteOffset: initialise, as: CipherInit.self)
        table.storeBytes(of: cipherEncrypt, toByteOffset: encrypt, as: CipherEncrypt.self)
        table.storeBytes(of: cipherEncrypt, toByteOffset: decrypt, as: CipherEncrypt.self)  // CTR: the same
        table.storeBytes(of: cipherSetIV, toByteOffset: setIV, as: CipherSetIV.self)
        _ = (setAAD, getTag)  // NULL: not an AEAD
        table.storeBytes(of: UnsafeRawPointer(strdup("AES-128 integer counter mode (rtcam)")!),
                         toByteOffset: description, as: UnsafeRawPointer.self)
        table.storeBytes(of: UnsafeRawPointer(testCase), toByteOffset: testData, as: UnsafeRawPointer.self)
        table.storeBytes(of: SRTP_AES_ICM_128_ID, toByteOffset: id, as: UInt32.self)
        return table
    }

    /// srtp_auth_type_t { alloc, dealloc, init, compute, update, start, const char *description,
    /// const srtp_auth_test_case_t *test_data, srtp_auth_type_id_t id }
    private static func makeAuthType() -> UnsafeMutableRawPointer {
        // srtp_auth_test_case_t { int key_length_octets; const uint8_t *key; int
        // data_length_octets; const uint8_t *data; int tag_length_octets; const uint8_t *tag;
        // const srtp_auth_test_case_t *next_test_case; }
        var test = CStructLayout()
        let tKeyLength = test.int32(), tKey = test.pointer(), tDataLength = test.int32(), tData = test.pointer()
        let tTagLength = test.int32(), tTag = test.pointer(), tNext = test.pointer()
        let testCase = UnsafeMutableRawPointer.allocate(byteCount: test.totalSize, alignment: 16)
        testCase.initializeMemory(as: UInt8.self, repeating: 0, count: test.totalSize)
        // RFC 2202 §3 test case 1.
        let key = [UInt8](repeating: 0x0B, count: 20)
        let data = Array("Hi There".utf8)
        let tag = hex("b617318655057264e28bc0b6fb378c8ef146be00")
        testCase.storeBytes(of: Int32(key.count), toByteOffset: tKeyLength, as: Int32.self)
        testCase.storeBytes(of: UnsafeRawPointer(bytes(key)), toByteOffset: tKey, as: UnsafeRawPointer.self)
        testCase.storeBytes(of: Int32(data.count), toByteOffset: tDataLength, as: Int32.self)
        testCase.storeBytes(of: UnsafeRawPointer(bytes(data)), toByteOffset: tData, as: UnsafeRawPointer.self)
        testCase.storeBytes(of: Int32(tag.count), toByteOffset: tTagLength, as: Int32.self)
        testCase.storeBytes(of: UnsafeRawPointer(bytes(tag)), toByteOffset: tTag, as: UnsafeRawPointer.self)
        _ = tNext

        var type = CStructLayout()
        let alloc = type.pointer(), dealloc = type.pointer(), initialise = type.pointer(), compute = type.pointer()
        let update = type.pointer(), start = type.pointer(), description = type.pointer()
        let testData = type.pointer(), id = type.int32()
        let table = UnsafeMutableRawPointer.allocate(byteCount: type.totalSize, alignment: 16)
        table.initializeMemory(as: UInt8.self, repeating: 0, count: type.totalSize)
        table.storeBytes(of: authAlloc, toByteOffset: alloc, as: AuthAlloc.self)
        table.storeBytes(of: authDealloc, toByteOffset: dealloc, as: AuthDealloc.self)
        table.storeBytes(of: authInit, toByteOffset: initialise, as: AuthInit.self)
        table.storeBytes(of: authCompute, toByteOffset: compute, as: AuthCompute.self)
        table.storeBytes(of: authUpdate, toByteOffset: update, as: AuthUpdate.self)
        table.storeBytes(of: authStart, toByteOffset: start, as: AuthStart.self)
        table.storeBytes(of: UnsafeRawPointer(strdup("HMAC-SHA1 (rtcam)")!), toByteOffset: description,
                         as: UnsafeRawPointer.self)
        table.storeBytes(of: UnsafeRawPointer(testCase), toByteOffset: testData, as: UnsafeRawPointer.self)
        table.storeBytes(of: SRTP_HMAC_SHA1_ID, toByteOffset: id, as: UInt32.self)
        return table
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

private let statusOK = srtp_err_status_ok
private let statusFail = srtp_err_status_fail

private func cipherState(_ state: UnsafeMutableRawPointer?) -> CounterModeState? {
    state.map { Unmanaged<CounterModeState>.fromOpaque($0).takeUnretainedValue() }
}

private let cipherAlloc: CipherAlloc = { pointer, keyLength, _ in
    // 16-byte key + 14-byte salt; the 192/256-bit ICM types are other ids, left to libsrtp.
    guard let pointer, keyLength == 30, let tables = LibSRTPTypeTables.shared else { return srtp_err_status_bad_param }
    guard let cipher = calloc(1, CipherLayout.size) else { return srtp_err_status_alloc_fail }
    cipher.storeBytes(of: UnsafeRawPointer(tables.cipherType), toByteOffset: CipherLayout.type, as: UnsafeRawPointer.self)
    cipher.storeBytes(of: Unmanaged.passRetained(CounterModeState()).toOpaque(), toByteOffset: CipherLayout.state,
                      as: UnsafeMutableRawPointer.self)
    cipher.storeBytes(of: keyLength, toByteOffset: CipherLayout.keyLength, as: Int32.self)
    cipher.storeBytes(of: Int32(SRTP_AES_ICM_128_ID), toByteOffset: CipherLayout.algorithm, as: Int32.self)
    pointer.pointee = cipher
    return statusOK
}

private let cipherDealloc: CipherDealloc = { cipher in
    guard let cipher else { return srtp_err_status_bad_param }
    let state = cipher.load(fromByteOffset: CipherLayout.state, as: UnsafeMutableRawPointer?.self)
    if let state { Unmanaged<CounterModeState>.fromOpaque(state).release() }
    memset(cipher, 0, CipherLayout.size)
    free(cipher)
    return statusOK
}

private let cipherInit: CipherInit = { state, key in
    guard let state = cipherState(state), let key, let backend = installedBackend.withLock({ $0 }) else {
        return statusFail
    }
    return state.setKey(key, backend: backend) ? statusOK : statusFail
}

private let cipherEncrypt: CipherEncrypt = { state, buffer, length in
    guard let state = cipherState(state), let length else { return srtp_err_status_bad_param }
    guard length.pointee > 0 else { return statusOK }
    guard let buffer else { return srtp_err_status_bad_param }
    return state.apply(buffer, count: Int(length.pointee)) ? statusOK : srtp_err_status_terminus
}

private let cipherSetIV: CipherSetIV = { state, iv, _ in
    guard let state = cipherState(state), let iv else { return srtp_err_status_bad_param }
    state.setIV(iv)
    return statusOK
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

private let authAlloc: AuthAlloc = { pointer, keyLength, outLength in
    guard let pointer, (0...20).contains(keyLength), (0...20).contains(outLength),
          let tables = LibSRTPTypeTables.shared else { return srtp_err_status_bad_param }
    guard let auth = calloc(1, AuthLayout.size) else { return srtp_err_status_alloc_fail }
    auth.storeBytes(of: UnsafeRawPointer(tables.authType), toByteOffset: AuthLayout.type, as: UnsafeRawPointer.self)
    auth.storeBytes(of: Unmanaged.passRetained(AuthenticatorState()).toOpaque(), toByteOffset: AuthLayout.state,
                    as: UnsafeMutableRawPointer.self)
    auth.storeBytes(of: outLength, toByteOffset: AuthLayout.outLength, as: Int32.self)
    auth.storeBytes(of: keyLength, toByteOffset: AuthLayout.keyLength, as: Int32.self)
    auth.storeBytes(of: Int32(0), toByteOffset: AuthLayout.prefixLength, as: Int32.self)
    pointer.pointee = auth
    return statusOK
}

private let authDealloc: AuthDealloc = { auth in
    guard let auth else { return srtp_err_status_bad_param }
    let state = auth.load(fromByteOffset: AuthLayout.state, as: UnsafeMutableRawPointer?.self)
    if let state { Unmanaged<AuthenticatorState>.fromOpaque(state).release() }
    memset(auth, 0, AuthLayout.size)
    free(auth)
    return statusOK
}

private let authInit: AuthInit = { state, key, keyLength in
    guard let state = authState(state), let key, keyLength > 0, let backend = installedBackend.withLock({ $0 }) else {
        return statusFail
    }
    state.authenticator = backend.makeHMACSHA1(UnsafeRawBufferPointer(start: key, count: Int(keyLength)))
    return state.authenticator == nil ? statusFail : statusOK
}

private let authStart: AuthStart = { state in
    guard let authenticator = authState(state)?.authenticator else { return statusFail }
    authenticator.start()
    return statusOK
}

private let authUpdate: AuthUpdate = { state, buffer, length in
    guard let authenticator = authState(state)?.authenticator, length >= 0 else { return statusFail }
    if let buffer, length > 0 { authenticator.update(UnsafeRawBufferPointer(start: buffer, count: Int(length))) }
    return statusOK
}

private let authCompute: AuthCompute = { state, buffer, length, tagLength, tag in
    guard let state = authState(state), let authenticator = state.authenticator, length >= 0,
          (0...20).contains(tagLength), let tag
    else { return statusFail }
    if let buffer, length > 0 { authenticator.update(UnsafeRawBufferPointer(start: buffer, count: Int(length))) }
    authenticator.finish(into: state.digest)
    tag.update(from: state.digest.assumingMemoryBound(to: UInt8.self), count: Int(tagLength))
    return statusOK
}
