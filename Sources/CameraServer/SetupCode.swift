/// The one-time code the first password needs (issue 16): three groups of four characters from an
/// alphabet without look-alikes (no 0/O, 1/I/L), 12 × log2(31) ≈ 59 bits. Typed in any case, with or
/// without the dashes; compared in constant time.
struct SetupCode: Equatable {
    static let alphabet = Array("23456789ABCDEFGHJKMNPQRSTUVWXYZ")
    static let groups = 3
    static let groupLength = 4

    /// The 12 characters, without dashes.
    let characters: [Character]

    /// "ABCD-EFGH-JKMN"
    var text: String {
        stride(from: 0, to: characters.count, by: Self.groupLength)
            .map { String(characters[$0..<min($0 + Self.groupLength, characters.count)]) }
            .joined(separator: "-")
    }

    static func random<Generator: RandomNumberGenerator>(using generator: inout Generator) -> SetupCode {
        SetupCode(characters: (0..<(groups * groupLength)).map { _ in
            alphabet[Int.random(in: 0..<alphabet.count, using: &generator)]
        })
    }

    private init(characters: [Character]) { self.characters = characters }

    /// A code as a person types it or as the file holds it: case, spaces and dashes do not matter.
    /// Nil when it is not 12 characters of the alphabet.
    init?(parsing text: String) {
        let kept = Self.normalized(text)
        guard kept.count == Self.groups * Self.groupLength, kept.allSatisfy(Self.alphabet.contains) else { return nil }
        characters = kept
    }

    private static func normalized(_ text: String) -> [Character] {
        text.uppercased().filter { $0 != "-" && $0 != " " && $0 != "\n" && $0 != "\r" && $0 != "\t" }.map { $0 }
    }

    /// Whether `candidate` is this code; the time taken does not depend on where they differ.
    func matches(_ candidate: String) -> Bool {
        let typed = Array(String(Self.normalized(candidate)).utf8)
        let expected = Array(String(characters).utf8)
        // Compare against a same-length copy so a wrong length costs the same as a wrong character.
        var padded = [UInt8](repeating: 0, count: expected.count)
        for index in 0..<min(typed.count, expected.count) { padded[index] = typed[index] }
        return ConstantTime.equal(padded, expected) && typed.count == expected.count
    }
}
