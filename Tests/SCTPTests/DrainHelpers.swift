import DataChannel
import SCTP

// The tests read outputs as lists without the closing `.timeout` that `drainOutputs(into:)` always
// appends; these wrap it so (the production API is the `into:` one).
extension SCTPAssociation {
    mutating func drainOutputs() -> [SCTPOutput] {
        var drained: [SCTPOutput] = []
        drainOutputs(into: &drained)
        if case .timeout = drained.last { drained.removeLast() }
        return drained
    }

    /// The first output (a packet or event), else the `.timeout`. The rest is dropped: tests use it
    /// only where one packet is expected.
    mutating func firstOutput() -> SCTPOutput {
        var drained: [SCTPOutput] = []
        drainOutputs(into: &drained)
        return drained[0]
    }
}

extension DataChannelEndpoint {
    mutating func drainOutputs() -> [DataChannelOutput] {
        var drained: [DataChannelOutput] = []
        drainOutputs(into: &drained)
        if case .timeout = drained.last { drained.removeLast() }
        return drained
    }
}
