// The byte-level pre-tokenizer of GPT-2 and its descendants (SmolLM2 among them): a regex split into pieces, then
// each piece's UTF-8 bytes written as printable characters (the byte-to-unicode table) for BPE.

/// GPT-2's split, as Hugging Face's `ByteLevel(use_regex: true)` pre-tokenizer applies it: the pieces matched in
/// turn by
///
///     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
///
/// written out as a scanner (one pass, linear in the text) rather than a regex engine. `\s` is Oniguruma's (the
/// engine tokenizers uses): tab to carriage return, U+0085 and the Unicode space, line and paragraph separators;
/// `\p{L}` and `\p{N}` are the letter and number general categories.
enum GPT2Split {
    enum Class { case letter, number, space, other }

    static func classify(_ s: UInt32) -> Class {
        if s < 0x80 {
            switch s {
            case 0x41...0x5A, 0x61...0x7A: return .letter
            case 0x30...0x39: return .number
            case 0x09...0x0D, 0x20: return .space
            default: return .other
            }
        }
        if s == 0x85 { return .space }
        guard let scalar = Unicode.Scalar(s) else { return .other }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        case .spaceSeparator, .lineSeparator, .paragraphSeparator: return .space
        default: return .other
        }
    }

    /// The pieces of `text[range]` (Unicode scalar values), as consecutive ranges covering it.
    static func pieces(_ text: UnsafeBufferPointer<UInt32>, _ range: Range<Int>, into out: inout [Range<Int>]) {
        let end = range.upperBound
        var i = range.lowerBound
        func run(from j: Int, _ c: Class) -> Int {
            var k = j
            while k < end && classify(text[k]) == c { k += 1 }
            return k
        }
        while i < end {
            let c = classify(text[i])
            var next: Int
            if text[i] == 0x27, let n = contraction(text, i, end) {              // 's 't 're 've 'm 'll 'd
                next = n
            } else if text[i] == 0x20, i + 1 < end, case let c1 = classify(text[i + 1]), c1 != .space {
                next = run(from: i + 1, c1)                                          // ' ?\p{L}+' and its kin
            } else if c != .space {
                next = run(from: i, c)
            } else {
                let j = run(from: i, .space)
                // \s+(?!\S): the whole run at the end of the text, else all but its last space (which then
                // prefixes the word after it); a single space before a word falls to \s+.
                next = j == end || j - i == 1 ? j : j - 1
            }
            out.append(i..<next)
            i = next
        }
    }

    /// The end of a contraction starting at the apostrophe `text[i]`, if one does (lowercase only, as in GPT-2).
    static func contraction(_ text: UnsafeBufferPointer<UInt32>, _ i: Int, _ end: Int) -> Int? {
        guard i + 1 < end else { return nil }
        switch text[i + 1] {
        case 0x73, 0x74, 0x6D, 0x64: return i + 2                                   // s t m d
        case 0x72, 0x76: return i + 2 < end && text[i + 2] == 0x65 ? i + 3 : nil     // re ve
        case 0x6C: return i + 2 < end && text[i + 2] == 0x6C ? i + 3 : nil           // ll
        default: return nil
        }
    }
}

/// GPT-2's byte-to-unicode table: each byte as a printable character, so that BPE works on strings without control
/// characters or spaces. The printable Latin-1 bytes ('!'…'~', '¡'…'¬', '®'…'ÿ') stand for themselves; the other 68
/// bytes take the characters from U+0100 on, in byte order (so the space 0x20 is 'Ġ', U+0120, and '\n' is 'Ċ').
enum ByteLevelAlphabet {
    static let byteToScalar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 0x100
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                table[b] = UInt32(b)
            } else {
                table[b] = next
                next += 1
            }
        }
        return table
    }()

    /// The inverse of `byteToScalar`.
    static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { map[s] = UInt8(b) }
        return map
    }()
}
