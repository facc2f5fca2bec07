import RTCBase

/// A small JSON writer (no Foundation: JSONEncoder would pull it in, DESIGN.md).
struct JSONWriter {
    private(set) var text = ""
    private var needsComma: [Bool] = [false]

    mutating func beginObject() { separator(); text += "{"; needsComma.append(false) }
    mutating func endObject() { text += "}"; needsComma.removeLast() }
    mutating func beginArray() { separator(); text += "["; needsComma.append(false) }
    mutating func endArray() { text += "]"; needsComma.removeLast() }

    mutating func key(_ name: String) {
        separator()
        text += name.jsonQuoted + ":"
        needsComma[needsComma.count - 1] = false
    }

    /// Inserts already-serialized JSON as a value.
    mutating func raw(_ json: String) { separator(); text += json }

    mutating func value(_ string: String?) { separator(); text += string.map(\.jsonQuoted) ?? "null" }
    mutating func value(_ number: Int) { separator(); text += String(number) }
    mutating func value(_ number: Double?) {
        separator()
        guard let number, number.isFinite else { text += "null"; return }
        text += String((number * 1000).rounded() / 1000)
    }
    mutating func value(_ flag: Bool) { separator(); text += flag ? "true" : "false" }

    mutating func field(_ name: String, _ string: String?) { key(name); value(string) }
    mutating func field(_ name: String, _ number: Int) { key(name); value(number) }
    mutating func field(_ name: String, _ number: Double?) { key(name); value(number) }
    mutating func field(_ name: String, _ flag: Bool) { key(name); value(flag) }

    private mutating func separator() {
        if needsComma[needsComma.count - 1] { text += "," }
        needsComma[needsComma.count - 1] = true
    }
}

/// {"error": message}
func errorJSON(_ message: String) -> String {
    var json = JSONWriter()
    json.beginObject()
    json.field("error", message)
    json.endObject()
    return json.text
}
