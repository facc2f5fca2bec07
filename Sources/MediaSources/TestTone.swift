public import RTCBase

/// A synthetic microphone: a 48 kHz S16 sine (440 Hz, −12 dBFS by default) with a 5 ms full-scale
/// click at every whole second of the sample clock, so a receiver can measure audio latency and
/// A/V sync against the video timestamp strip. `samples(startingAt:count:)` is pure.
public struct TestToneSource: Sendable {
    public static let sampleRate = 48_000
    /// 5 ms at 48 kHz.
    public static let clickSampleCount = 240
    /// Period (in samples) of the click's square wave: 3 kHz.
    static let clickPeriod = 16

    public let channels: Int
    public let frequency: Int
    /// Peak amplitude of the sine.
    public let amplitude: Int16
    /// One full period of the sine at the sample rate (the waveform repeats exactly after it).
    private let period: [Int16]

    /// `channels` 1 or 2, an integer `frequency` in 1 ... 24000 Hz, `levelDBFS` ≤ 0 (peak level).
    public init(channels: Int = 1, frequency: Int = 440, levelDBFS: Double = -12) {
        precondition(channels == 1 || channels == 2, "channels must be 1 or 2")
        precondition(frequency > 0 && frequency <= Self.sampleRate / 2, "frequency out of range")
        self.channels = channels
        self.frequency = frequency
        let linear = min(1, ToneMath.power10(levelDBFS / 20))
        let amplitude = Int16(clamping: Int((linear * 32767).rounded()))
        self.amplitude = amplitude
        // frequency/sampleRate in lowest terms: the sine repeats after sampleRate/gcd samples.
        let periodLength = Self.sampleRate / ToneMath.gcd(Self.sampleRate, frequency)
        var table = [Int16](repeating: 0, count: periodLength)
        for index in 0 ..< periodLength {
            let phase = 2 * Double.pi * Double(frequency) * Double(index) / Double(Self.sampleRate)
            table[index] = Int16((Double(amplitude) * ToneMath.sine(phase)).rounded())
        }
        period = table
    }

    /// The sample index (per channel) at `time` on a sample clock that started at time zero.
    public static func sampleIndex(at time: MonotonicTime) -> Int64 {
        Int64(clamping: time.nanoseconds / 1_000_000_000 * UInt64(sampleRate)
            + time.nanoseconds % 1_000_000_000 * UInt64(sampleRate) / 1_000_000_000)
    }

    /// The time of sample `index` (inverse of `sampleIndex(at:)`).
    public static func time(ofSample index: Int64) -> MonotonicTime {
        let clamped = UInt64(max(0, index))
        return MonotonicTime(nanoseconds: clamped / UInt64(sampleRate) * 1_000_000_000
            + clamped % UInt64(sampleRate) * 1_000_000_000 / UInt64(sampleRate))
    }

    /// `count` sample frames from `sampleIndex` on, interleaved (`count * channels` values).
    public func samples(startingAt sampleIndex: Int64, count: Int) -> [Int16] {
        let count = max(0, count)
        let total = count * channels
        let periodLength = Int64(period.count)
        return [Int16](unsafeUninitializedCapacity: total) { output, initialized in
            period.withUnsafeBufferPointer { table in
                for frame in 0 ..< count {
                    let index = sampleIndex &+ Int64(frame)
                    let inSecond = Self.floorMod(index, Int64(Self.sampleRate))
                    let value: Int16
                    if inSecond < Int64(Self.clickSampleCount) {
                        value = (inSecond / Int64(Self.clickPeriod / 2)) % 2 == 0 ? 32767 : -32767
                    } else {
                        value = table[Int(Self.floorMod(index, periodLength))]
                    }
                    for channel in 0 ..< channels { output[frame * channels + channel] = value }
                }
            }
            initialized = total
        }
    }

    private static func floorMod(_ value: Int64, _ modulus: Int64) -> Int64 {
        let remainder = value % modulus
        return remainder < 0 ? remainder + modulus : remainder
    }
}

/// Small numeric helpers (no Foundation/Glibc in this target).
enum ToneMath {
    static func gcd(_ a: Int, _ b: Int) -> Int {
        var (a, b) = (abs(a), abs(b))
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }

    /// sin(x): reduce to [-π, π], fold to [-π/2, π/2], Taylor series to x^17 (error < 1e-12).
    static func sine(_ x: Double) -> Double {
        let twoPi = 2 * Double.pi
        var r = x - (x / twoPi).rounded() * twoPi
        if r > Double.pi / 2 { r = Double.pi - r } else if r < -Double.pi / 2 { r = -Double.pi - r }
        let r2 = r * r
        var term = r
        var sum = r
        var n = 1.0
        for _ in 0 ..< 8 {
            term *= -r2 / ((n + 1) * (n + 2))
            n += 2
            sum += term
        }
        return sum
    }

    /// 10^x via e^(x ln 10); e^y by halving until small, a Taylor series, and squaring back.
    static func power10(_ x: Double) -> Double {
        var y = x * 2.302585092994046
        var squarings = 0
        while abs(y) > 0.5 { y /= 2; squarings += 1 }
        var term = 1.0, sum = 1.0
        for k in 1 ... 16 { term *= y / Double(k); sum += term }
        for _ in 0 ..< squarings { sum *= sum }
        return sum
    }
}
