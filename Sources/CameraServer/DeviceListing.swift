/// Cameras and microphones the settings page can offer. (V4L2 enumeration is wired in with the
/// capture layer; until then the synthetic sources are what there is.)
enum DeviceListing {
    static func json() -> String {
        var json = JSONWriter()
        json.beginObject()
        json.key("cameras")
        json.beginArray()
        json.beginObject()
        json.field("source", "test-pattern")
        json.field("name", "Test pattern (synthetic)")
        json.key("sizes")
        json.beginArray()
        for (width, height) in [(640, 360), (640, 480), (1280, 720), (1920, 1080)] {
            json.beginObject()
            json.field("width", width)
            json.field("height", height)
            json.key("fps")
            json.beginArray()
            for rate in [15, 25, 30] { json.value(rate) }
            json.endArray()
            json.endObject()
        }
        json.endArray()
        json.endObject()
        json.endArray()
        json.key("microphones")
        json.beginArray()
        json.beginObject()
        json.field("source", "test-tone")
        json.field("name", "Test tone (synthetic)")
        json.endObject()
        json.endArray()
        json.endObject()
        return json.text
    }
}
