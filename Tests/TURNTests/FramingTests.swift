import RTCBase
import STUN
import Testing
@testable import TURN

@Suite struct FramingTests {
    /// RFC 8656 §12.4: over TCP ChannelData is padded to 4 bytes, the length field counting only the data.
    @Test func channelDataFraming() {
        #expect(ChannelData.frame([1, 2, 3, 4, 5], channel: 0x4001, padded: true) == [0x40, 0x01, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0])
        #expect(ChannelData.frame([1, 2, 3, 4], channel: 0x7FFF, padded: true) == [0x7F, 0xFF, 0, 4, 1, 2, 3, 4])
        #expect(ChannelData.frame([], channel: 0x4000, padded: false) == [0x40, 0, 0, 0])
        let parsed = ChannelData.parse([0x40, 0x01, 0, 2, 9, 9, 0, 0])  // padding after the data
        #expect(parsed?.channel == 0x4001 && parsed.map { Array($0.payload) } == [9, 9])
        #expect(ChannelData.parse([0x40, 0x01, 0, 5, 9, 9]) == nil)  // shorter than it says
        #expect(ChannelData.parse([0x80, 0x01, 0, 0]) == nil)  // RTP, not ChannelData
    }

    /// A stream of STUN and ChannelData messages cut at every possible place comes out whole.
    @Test func streamFramerSplitsAtEveryBoundary() {
        let stun = STUNMessage(method: TURNMethod.refresh, messageClass: .request, transactionID: Array(repeating: 1, count: 12),
                               attributes: [.lifetime(seconds: 600), .software("rtcam")]).serialized(integrityKey: [1, 2], fingerprint: true)
        let channel = ChannelData.frame([1, 2, 3, 4, 5, 6, 7], channel: 0x4002, padded: true)
        let empty = ChannelData.frame([], channel: 0x4003, padded: true)
        let messages = [stun, channel, empty, stun, channel]
        let stream = messages.flatMap { $0 }
        #expect(TURNStreamFramer.frameLength(of: stream) == .complete(stun.count))
        #expect(TURNStreamFramer.frameLength(of: channel) == .complete(12))
        #expect(TURNStreamFramer.frameLength(of: channel.prefix(11)) == .incomplete)
        #expect(TURNStreamFramer.frameLength(of: [0x40, 0x02]) == .incomplete)
        #expect(TURNStreamFramer.frameLength(of: [0x80]) == .invalid)
        for cut in 0...stream.count {
            for secondCut in stride(from: cut, through: stream.count, by: 7) {
                var framer = TURNStreamFramer()
                let out = framer.append(stream[..<cut]) + framer.append(stream[cut..<secondCut]) + framer.append(stream[secondCut...])
                #expect(out == messages, "cut at \(cut), \(secondCut)")
            }
        }
        var framer = TURNStreamFramer()
        #expect(framer.append(channel + [0xC0, 0, 0, 0]) == [channel])
        #expect(framer.isBroken && framer.append(stun).isEmpty)
    }
}
