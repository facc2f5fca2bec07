// The settings API's JSON bodies (PUT /api/settings and friends), JSONValue's parser; the request
// line and headers before them are NIOHTTP1's (llhttp), whose limits HTTPConnectionGuard sets.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let value = try? JSONValue(parsing: String(decoding: bytes, as: UTF8.self)) { _ = value == value }
    return 0
}
