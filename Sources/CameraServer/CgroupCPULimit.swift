#if canImport(Glibc)
import Glibc
#endif

/// The CPU limit a cgroup puts on this process (a container's, or systemd's `CPUQuota=`), in cores.
///
/// Under such a quota the encoder's wall time says little about the room left: below the quota a
/// frame takes its CPU time, above it the kernel stops the whole process until the next period
/// (up to 90 ms of 100 at 10 %). So a size that encodes in 10 % of the frame interval may still use
/// all of the quota, and the next size up would not fit. CPU adaptation steps up only when the
/// process's share of its limit leaves room too (EncoderLoadAdaptation.processLoad).
enum CgroupCPULimit {
    /// Where this process's limit is written, from `/proc/self/cgroup`: the v2 group's `cpu.max`,
    /// or the v1 `cpu` controller's `cpu.cfs_quota_us` (with `cpu.cfs_period_us` beside it).
    static func limitFiles(procSelfCgroup: String) -> [String] {
        var files: [String] = []
        for line in procSelfCgroup.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let path = fields[2] == "/" ? "" : String(fields[2])
            if fields[0] == "0", fields[1].isEmpty {
                files.append("/sys/fs/cgroup\(path)/cpu.max")
            } else if fields[1].split(separator: ",").contains("cpu") {
                files.append("/sys/fs/cgroup/\(fields[1])\(path)/cpu.cfs_quota_us")
                if fields[1] != "cpu" { files.append("/sys/fs/cgroup/cpu\(path)/cpu.cfs_quota_us") }
            }
        }
        return files
    }

    /// `cpu.max` ("10000 100000": 0.1 cores; "max 100000": no limit).
    static func cores(cpuMax: String) -> Double? {
        let fields = cpuMax.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count >= 2, let quota = Double(fields[0]), let period = Double(fields[1]), quota > 0, period > 0 else { return nil }
        return quota / period
    }

    /// v1: `cpu.cfs_quota_us` (-1: no limit) over `cpu.cfs_period_us`.
    static func cores(quotaMicroseconds: String, periodMicroseconds: String) -> Double? {
        func number(_ text: String) -> Double? { Double(text.split(separator: "\n").first.map(String.init) ?? "") }
        guard let quota = number(quotaMicroseconds), let period = number(periodMicroseconds), quota > 0, period > 0 else { return nil }
        return quota / period
    }

    /// This process's limit now (nil: none, or unreadable).
    static func current() -> Double? {
        guard let groups = StateFiles.read("/proc/self/cgroup", maximumSize: 1 << 16) else { return nil }
        for file in limitFiles(procSelfCgroup: groups) {
            guard let text = StateFiles.read(file, maximumSize: 256) else { continue }
            if file.hasSuffix("cpu.max") { return cores(cpuMax: text) }
            let period = String(file.dropLast("cpu.cfs_quota_us".count)) + "cpu.cfs_period_us"
            guard let periodText = StateFiles.read(period, maximumSize: 256) else { continue }
            return cores(quotaMicroseconds: text, periodMicroseconds: periodText)
        }
        return nil
    }

    /// CPU time of the whole process (every thread), in nanoseconds.
    static func processCPUNanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }
}
