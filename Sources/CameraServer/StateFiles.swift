#if canImport(Glibc)
import Glibc
#endif
import RTCBase

/// Files in the state directory: read whole, and written atomically (temporary file, fsync, rename,
/// fsync of the directory) so a power cut never leaves a half-written configuration behind. The
/// temporary file has a random name and is created with O_EXCL|O_NOFOLLOW, so a link or file planted
/// under a predictable name cannot redirect the write.
enum StateFiles {
    struct Failure: Error, CustomStringConvertible {
        var operation: String
        var path: String
        var code: Int32
        var description: String { "\(operation) \(path): \(String(cString: strerror(code)))" }
    }

    static func ensureDirectory(_ path: String) throws {
        var info = stat()
        if stat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else { throw Failure(operation: "not a directory:", path: path, code: ENOTDIR) }
            return
        }
        guard mkdir(path, 0o700) == 0 || errno == EEXIST else { throw Failure(operation: "mkdir", path: path, code: errno) }
    }

    /// The file's text, or nil when it does not exist or cannot be read.
    static func read(_ path: String, maximumSize: Int = 1 << 20) -> String? {
        readBytes(path, maximumSize: maximumSize).flatMap { String(validating: $0, as: UTF8.self) }
    }

    /// The file's bytes, or nil when it does not exist, cannot be read or is larger than `maximumSize`.
    static func readBytes(_ path: String, maximumSize: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while bytes.count <= maximumSize {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if count == 0 { break }
            bytes += chunk[0..<count]
        }
        guard bytes.count <= maximumSize else { return nil }
        return bytes
    }

    static func writeAtomically(_ path: String, contents: String, mode: mode_t = 0o600) throws {
        var random = SystemRandomNumberGenerator()
        var temporary = ""
        var fd: Int32 = -1
        for _ in 0..<8 {  // a name already taken (EEXIST) is very unlikely; try a few
            temporary = path + ".tmp-" + Hex.encode(random.bytes(8))
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw Failure(operation: "open", path: temporary, code: errno) }
        var bytes = Array(contents.utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeMutableBytes { buffer in
                Glibc.write(fd, buffer.baseAddress! + written, buffer.count - written)
            }
            if count < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                unlink(temporary)
                throw Failure(operation: "write", path: temporary, code: code)
            }
            written += count
        }
        bytes.removeAll()
        guard fsync(fd) == 0 else {
            let code = errno
            close(fd)
            unlink(temporary)
            throw Failure(operation: "fsync", path: temporary, code: code)
        }
        close(fd)
        guard Glibc.rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw Failure(operation: "rename", path: path, code: code)
        }
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let directoryFD = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            fsync(directoryFD)
            close(directoryFD)
        }
    }
}

extension StateFiles {
    /// Deletes `path`; one that is not there is fine.
    static func remove(_ path: String) throws {
        if unlink(path) != 0 && errno != ENOENT { throw Failure(operation: "unlink", path: path, code: errno) }
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    /// Whether `path` is a directory this process may create files in.
    static func isWritableDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR && access(path, W_OK | X_OK) == 0
    }

    /// Deletes the temporary files of writes that never finished (the process was killed between
    /// `open` and `rename`): `<name>.tmp-<16 hex digits>` directly in `directory`. Returns how many.
    @discardableResult
    static func removeUnfinishedWrites(in directory: String) -> Int {
        guard let handle = opendir(directory) else { return 0 }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            let suffix = name.suffix(16)
            if suffix.count == 16, suffix.allSatisfy(\.isHexDigit), name.dropLast(16).hasSuffix(".tmp-") { names.append(name) }
        }
        closedir(handle)
        for name in names { unlink(directory + "/" + name) }
        return names.count
    }

    static func rename(_ from: String, to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw Failure(operation: "rename", path: from, code: errno) }
    }
}
