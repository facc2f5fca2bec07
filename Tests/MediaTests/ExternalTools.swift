#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Testing

/// Runs FFmpeg's tools as an independent decoder. They are required: CI installs Debian's ffmpeg,
/// and a missing tool fails the test with a message instead of skipping it.
enum ExternalTools {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Absolute path of `name` on PATH, or nil.
    static func find(_ name: String) -> String? {
        guard let path = getenv("PATH") else { return nil }
        for directory in String(cString: path).split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// The tool's path; throws (failing the test, never skipping it) with a message saying how to fix it.
    static func require(_ name: String) throws -> String {
        guard let path = find(name) else {
            throw Failure(description: "\(name) is not on PATH: the independent H.264 decoder check needs FFmpeg (apt-get install ffmpeg)")
        }
        return path
    }

    /// Runs `command` through /bin/sh and returns its stdout; throws with the exit status otherwise.
    static func run(_ command: String) throws -> [UInt8] {
        guard let pipe = popen(command, "r") else { throw Failure(description: "popen failed for \(command)") }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, pipe) }
            if count == 0 { break }
            output.append(contentsOf: chunk[0 ..< count])
        }
        let status = pclose(pipe)
        guard status == 0 else {
            throw Failure(description: "`\(command)` exited with status \(status): \(String(decoding: output.prefix(2000), as: UTF8.self))")
        }
        return output
    }

    /// Writes `bytes` to a fresh file under /tmp and returns its path.
    static func writeTemporaryFile(_ bytes: [UInt8], suffix: String) throws -> String {
        var template = Array("/tmp/rtcam-media-XXXXXX\(suffix)".utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemps($0.baseAddress!, Int32(suffix.utf8.count)) }
        guard descriptor >= 0 else { throw Failure(description: "mkstemps failed: errno \(errno)") }
        defer { close(descriptor) }
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, $0.count - written) }
            guard result > 0 else { throw Failure(description: "write failed: errno \(errno)") }
            written += result
        }
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    static func remove(_ path: String) { unlink(path) }

    /// `key=value` lines of `ffprobe -of default=noprint_wrappers=1`.
    static func keyValues(_ output: [UInt8]) -> [String: String] {
        var result: [String: String] = [:]
        for line in String(decoding: output, as: UTF8.self).split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            result[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return result
    }
}
