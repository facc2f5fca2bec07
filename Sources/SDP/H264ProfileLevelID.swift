// H.264 profile-level-id (RFC 6184 §8.1): three bytes profile_idc, profile-iop (constraint_set0..5
// flags), level_idc, as six hex digits. Two ids describe the same profile when their WebRTC profile
// class matches (the classification libwebrtc and every browser use for SDP negotiation).

/// The profile classes browsers negotiate. Constrained Baseline is what every browser decodes.
public enum H264Profile: String, Equatable, Sendable, CaseIterable {
    case constrainedBaseline, baseline, main, constrainedHigh, high, predictiveHigh444

    /// Classification from profile_idc and profile-iop (RFC 6184 §8.1 table 5, ITU-T H.264 §A.2).
    /// Bits of profile-iop, most significant first: constraint_set0_flag ... constraint_set5_flag, 2 reserved zero bits.
    static func classify(profileIDC: UInt8, profileIOP: UInt8) -> H264Profile? {
        let set0: UInt8 = 0x80, set1: UInt8 = 0x40, set2: UInt8 = 0x20
        // constraint_set4/5 and the two reserved bits (low nibble) must be zero for the 8-bit profiles.
        let lowNibbleClear = profileIOP & 0x0F == 0
        switch profileIDC {
        case 0x42 where lowNibbleClear:  // Baseline; constraint_set1 (Main-conformant) → Constrained Baseline (§A.2.1.1)
            return profileIOP & set1 != 0 ? .constrainedBaseline : .baseline
        case 0x4D where lowNibbleClear:  // Main; constraint_set0 (Baseline-conformant) → Constrained Baseline
            if profileIOP & set0 != 0 { return .constrainedBaseline }
            return profileIOP & set2 == 0 ? .main : nil
        case 0x58 where lowNibbleClear:  // Extended; set0+set1 → Constrained Baseline, set0 alone → Baseline
            switch profileIOP & (set0 | set1) {
            case set0 | set1: return .constrainedBaseline
            case set0: return .baseline
            default: return nil
            }
        case 0x64:  // High; constraint_set4+set5 → Constrained High (§A.2.4.2)
            switch profileIOP {
            case 0x00: return .high
            case 0x0C: return .constrainedHigh
            default: return nil
            }
        case 0xF4:  // High 4:4:4 Predictive
            return profileIOP == 0 ? .predictiveHigh444 : nil
        default:
            return nil
        }
    }
}

/// A parsed profile-level-id such as "42e01f".
public struct H264ProfileLevelID: Equatable, Sendable, CustomStringConvertible {
    public var profileIDC: UInt8
    public var profileIOP: UInt8
    public var levelIDC: UInt8
    public let profile: H264Profile

    /// RFC 6184 §8.1: absent profile-level-id means 420010 (Baseline, level 1). libwebrtc instead reads
    /// an absent value as Constrained Baseline level 3.1; rtcam follows libwebrtc for interop.
    public static let defaultWhenAbsent = H264ProfileLevelID("42e01f")!

    public init?(_ hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == 6 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: 6, by: 2) {
            guard let high = SDPFingerprint.hexValue(digits[index]),
                  let low = SDPFingerprint.hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        self.init(profileIDC: bytes[0], profileIOP: bytes[1], levelIDC: bytes[2])
    }

    public init?(profileIDC: UInt8, profileIOP: UInt8, levelIDC: UInt8) {
        guard let profile = H264Profile.classify(profileIDC: profileIDC, profileIOP: profileIOP),
              H264ProfileLevelID.levelOrder(levelIDC: levelIDC, isLevel1b: false) != nil
        else { return nil }
        self.profileIDC = profileIDC
        self.profileIOP = profileIOP
        self.levelIDC = levelIDC
        self.profile = profile
    }

    /// Level 1b: level_idc 11 with constraint_set3 for Baseline/Main/Extended, or level_idc 9 (§A.3.1, RFC 6184 §8.1).
    public var isLevel1b: Bool {
        levelIDC == 9 || (levelIDC == 11 && profileIOP & 0x10 != 0 && [0x42, 0x4D, 0x58].contains(profileIDC))
    }

    /// A number that orders levels: 1 < 1b < 1.1 < 1.2 ... (level_idc is ten times the level).
    public var levelOrder: Int {
        H264ProfileLevelID.levelOrder(levelIDC: levelIDC, isLevel1b: isLevel1b) ?? 0
    }

    static func levelOrder(levelIDC: UInt8, isLevel1b: Bool) -> Int? {
        if isLevel1b { return 10 * 2 + 1 }
        let known: Set<UInt8> = [9, 10, 11, 12, 13, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 52, 60, 61, 62]
        guard known.contains(levelIDC) else { return nil }
        if levelIDC == 9 { return 10 * 2 + 1 }
        return Int(levelIDC) * 2
    }

    /// The same profile bytes with the level of `other`. For Baseline/Main/Extended, level 1b is
    /// level_idc 11 plus constraint_set3, so set3 follows the level; other profiles use level_idc 9.
    func withLevel(of other: H264ProfileLevelID) -> H264ProfileLevelID {
        var result = self
        let setsLevel1bWithSet3 = [0x42, 0x4D, 0x58].contains(profileIDC)
        if other.isLevel1b {
            result.levelIDC = setsLevel1bWithSet3 ? 11 : 9
            if setsLevel1bWithSet3 { result.profileIOP = profileIOP | 0x10 }
        } else {
            result.levelIDC = other.levelIDC
            if setsLevel1bWithSet3 { result.profileIOP = profileIOP & ~0x10 }
        }
        return result
    }

    /// Six lower-case hex digits, as browsers write it.
    public var description: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in [profileIDC, profileIOP, levelIDC] {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
