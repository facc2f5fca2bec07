/// Sample-rate conversion for the talkback speaker (issue 17): Opus decodes at 48 kHz and a speaker
/// that takes another rate (44.1 kHz USB speakers, 32 kHz I2S amps) gets the stream converted here.
/// Band-limited interpolation (a Kaiser-windowed sinc, Smith's "bandlimited interpolation"): the
/// cut-off follows the lower of the two rates, so downsampling does not alias. Mono, streaming: the
/// state carries over between calls so chunks join without a click.
public struct Resampler: Sendable {
    public let inputRate: Int
    public let outputRate: Int
    /// Zero crossings of the sinc on each side of a sample.
    static let zeroCrossings = 8
    /// Table resolution per zero crossing.
    static let resolution = 128

    private let step: Double
    private let cutoff: Double
    private let table: [Float]
    /// Input samples kept from earlier calls (the filter's left half).
    private var history: [Float]
    /// Position of the next output sample, in input samples from the start of `history`.
    private var position: Double

    public init(inputRate: Int, outputRate: Int) {
        precondition(inputRate > 0 && outputRate > 0)
        self.inputRate = inputRate
        self.outputRate = outputRate
        step = Double(inputRate) / Double(outputRate)
        cutoff = min(1, Double(outputRate) / Double(inputRate)) * 0.95
        table = Self.makeTable()
        let width = Int((Double(Self.zeroCrossings) / cutoff).rounded(.up))
        history = [Float](repeating: 0, count: 2 * width)
        position = Double(width)
    }

    public var isIdentity: Bool { inputRate == outputRate }

    /// The filter's half width in input samples.
    private var width: Int { Int((Double(Self.zeroCrossings) / cutoff).rounded(.up)) }

    public mutating func process(_ input: [Int16]) -> [Int16] {
        if isIdentity { return input }
        var buffer = history
        buffer.reserveCapacity(history.count + input.count)
        for sample in input { buffer.append(Float(sample)) }
        let width = self.width
        var output: [Int16] = []
        output.reserveCapacity(Int(Double(input.count) / step) + 2)
        let scale = Float(cutoff)
        while Int(position) + width < buffer.count {
            let center = Int(position)
            let fraction = position - Double(center)
            var sum: Float = 0
            for tap in (center - width + 1)...(center + width) {
                let distance = (Double(tap) - Double(center) - fraction) * cutoff
                sum += buffer[tap] * kernel(abs(distance))
            }
            let value = (sum * scale).rounded()
            output.append(Int16(max(-32768, min(32767, value))))
            position += step
        }
        // Keep what the next call's first outputs need.
        let keepFrom = max(0, Int(position) - width)
        history = Array(buffer[keepFrom...])
        position -= Double(keepFrom)
        return output
    }

    /// The windowed sinc at `distance` zero crossings (linear interpolation in the table).
    private func kernel(_ distance: Double) -> Float {
        let index = distance * Double(Self.resolution)
        let base = Int(index)
        guard base + 1 < table.count else { return 0 }
        let fraction = Float(index - Double(base))
        return table[base] + (table[base + 1] - table[base]) * fraction
    }

    /// sinc(x)·Kaiser(β = 8) for x in 0...zeroCrossings, `resolution` points per crossing.
    static func makeTable() -> [Float] {
        let count = zeroCrossings * resolution + 2
        let beta = 8.0
        let denominator = besselI0(beta)
        var table = [Float](repeating: 0, count: count)
        for index in 0..<count {
            let x = Double(index) / Double(resolution)
            guard x < Double(zeroCrossings) else { continue }
            let sinc = x == 0 ? 1 : sine(Double.pi * x) / (Double.pi * x)
            let ratio = x / Double(zeroCrossings)
            let window = besselI0(beta * (1 - ratio * ratio).squareRoot()) / denominator
            table[index] = Float(sinc * window)
        }
        return table
    }

    /// The modified Bessel function of the first kind, order 0 (its series).
    static func besselI0(_ x: Double) -> Double {
        var sum = 1.0, term = 1.0
        let half = x / 2
        for k in 1..<50 {
            term *= (half / Double(k)) * (half / Double(k))
            sum += term
            if term < sum * 1e-12 { break }
        }
        return sum
    }

    /// sin(x) without Foundation: reduced to [-π, π], then its Taylor series.
    static func sine(_ x: Double) -> Double {
        let twoPi = 2 * Double.pi
        var y = x - (x / twoPi).rounded() * twoPi
        if y > Double.pi { y -= twoPi }
        var term = y, sum = y
        let square = y * y
        for n in 1..<20 {
            term *= -square / Double((2 * n) * (2 * n + 1))
            sum += term
        }
        return sum
    }
}
