import RTCBase
import Testing
@testable import CameraServer

@Suite struct JSONValueTests {
    @Test func parsesEveryKindOfValue() throws {
        let value = try JSONValue(parsing: #" {"a": [1, -2.5e3, true, false, null], "b": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "c": {}} "#)
        #expect(value["a"] == .array([.number(1), .number(-2500), .bool(true), .bool(false), .null]))
        #expect(value["b"]?.stringValue == "x\"\\/\u{08}\u{0C}\n\r\té😀")
        #expect(value["c"] == .object([]))
        if case let .array(items)? = value["a"] { #expect(items[0].intValue == 1) } else { Issue.record("not an array") }
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "tru", "01x", "\"unterminated", "\"\\x\"", "\"\\ud800\"",
        "1 2", "{\"a\":1}}", "\"tab\there\"", "-", "1.", "1e", "[" + String(repeating: "[", count: 40) + "]",
    ])
    func rejectsMalformedInput(_ text: String) {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue(parsing: text) }
    }

    @Test func survivesRandomBytes() {
        var random = SeededRandom(seed: 42)
        let alphabet = Array(#"{}[]":,0123456789.eE+-truefalsn\u "#.utf8)
        for _ in 0..<5000 {
            let length = Int(random.next() % 40)
            let bytes = (0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }
            _ = try? JSONValue(parsing: String(decoding: bytes, as: UTF8.self))
        }
    }

    @Test func writerOutputParsesBack() throws {
        var writer = JSONWriter()
        writer.beginObject()
        writer.field("text", "line\nbreak \"quoted\" \u{01}")
        writer.field("number", 42)
        writer.field("missing", nil as String?)
        writer.key("list")
        writer.beginArray()
        writer.value(1.5)
        writer.value(true)
        writer.endArray()
        writer.endObject()
        let parsed = try JSONValue(parsing: writer.text)
        #expect(parsed["text"]?.stringValue == "line\nbreak \"quoted\" \u{01}")
        #expect(parsed["number"]?.intValue == 42)
        #expect(parsed["missing"] == .null)
        #expect(parsed["list"] == .array([.number(1.5), .bool(true)]))
    }
}
