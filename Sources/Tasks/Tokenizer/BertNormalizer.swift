import Foundation

/// Per-scalar class bits as Hugging Face tokenizers sees them (`UnicodeTables`) plus BERT's CJK ranges.
enum CharClass {
    static let control: UInt8 = 1        // dropped by clean_text
    static let whitespace: UInt8 = 2     // split on; mapped to a space by clean_text
    static let punctuation: UInt8 = 4    // isolated by the pre-tokenizer
    static let mark: UInt8 = 8           // Mn: removed by strip_accents
    static let combining: UInt8 = 16     // not Mn, but a non-starter in canonical reordering
    static let chinese: UInt8 = 32       // padded with spaces by handle_chinese_chars
    static let strippable: UInt8 = 64    // changed by NFD + Mn removal

    /// One byte per scalar value, 0…0x10FFFF (1.1 MB), built once on first use.
    static let table: [UInt8] = {
        var t = [UInt8](repeating: 0, count: 0x110000)
        func set(_ ranges: [ClosedRange<UInt32>], _ bit: UInt8) {
            for r in ranges { for c in r { t[Int(c)] |= bit } }
        }
        set(UnicodeTables.control, control)
        set(UnicodeTables.whitespace, whitespace)
        set(UnicodeTables.punctuation, punctuation)
        set(UnicodeTables.nonspacingMark, mark)
        set(UnicodeTables.combiningNotMark, combining)
        set(UnicodeTables.strippable, strippable)
        set(chineseRanges, chinese)
        return t
    }()

    /// BERT's `_is_chinese_char` as tokenizers writes it: the CJK Unified Ideographs blocks and extensions A–E
    /// plus the compatibility ideographs. tokenizers starts the fifth range at 0x2B920 (the Python original at
    /// 0x2B820), so U+2B820…U+2B91F are not padded.
    static let chineseRanges: [ClosedRange<UInt32>] = [
        0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
        0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F,
    ]
}

/// Scalars of normalized text, each with the range [start, end) of ORIGINAL scalars it comes from: the alignments
/// of tokenizers' `NormalizedString`, kept per scalar instead of per UTF-8 byte (every byte of a char shares its
/// char's alignment there, so nothing is lost).
struct AlignedScalars {
    var scalars: [UInt32] = []
    var starts: [Int] = []
    var ends: [Int] = []

    var count: Int { scalars.count }

    mutating func removeAll() {
        scalars.removeAll(keepingCapacity: true)
        starts.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
    }

    @inline(__always) mutating func append(_ c: UInt32, _ start: Int, _ end: Int) {
        scalars.append(c)
        starts.append(start)
        ends.append(end)
    }
}

/// tokenizers' `BertNormalizer`, step by step with the same alignment rules:
/// clean_text (drop NUL, U+FFFD and controls; whitespace → space) → handle_chinese_chars (" c ") →
/// strip_accents (NFD with canonical reordering, then drop Mn) → lowercase (Rust `char::to_lowercase`).
/// Note the order: accents are stripped BEFORE lowercasing, so "İ" → "I" + U+0307 → "I" → "i".
struct BertNormalizer: Sendable {
    var cleanText: Bool
    var handleChineseChars: Bool
    var stripAccents: Bool
    var lowercase: Bool

    /// Normalizes `original[range]` into `out` (cleared first); `scratch` is working space.
    func normalize(_ original: UnsafeBufferPointer<UInt32>, _ range: Range<Int>,
                   into out: inout AlignedScalars, scratch: inout AlignedScalars) {
        out.removeAll()
        var needsStrip = false
        var nonASCII = false
        CharClass.table.withUnsafeBufferPointer { classes in
            for i in range {
                var c = original[i]
                let k = classes[Int(c)]
                if cleanText {
                    if k & CharClass.control != 0 { continue }
                    if k & CharClass.whitespace != 0 { c = 0x20 }
                }
                if c >= 0x80 {
                    nonASCII = true
                    if k & (CharClass.strippable | CharClass.mark | CharClass.combining) != 0 { needsStrip = true }
                }
                if handleChineseChars && k & CharClass.chinese != 0 {
                    // (' ', 0), (c, 1), (' ', 1): all three share c's alignment.
                    out.append(0x20, i, i + 1)
                    out.append(c, i, i + 1)
                    out.append(0x20, i, i + 1)
                } else {
                    out.append(c, i, i + 1)
                }
            }
        }
        if stripAccents && needsStrip {
            Self.stripAccents(out, into: &scratch)
            swap(&out, &scratch)
        }
        if lowercase {
            if nonASCII {
                Self.lowercase(out, into: &scratch)
                swap(&out, &scratch)
            } else {
                out.scalars.withUnsafeMutableBufferPointer { s in
                    for i in s.indices where s[i] &- 0x41 < 26 { s[i] |= 0x20 }
                }
            }
        }
    }

    /// NFD (tokenizers' `nfd()`: each char's decomposition, the first scalar tagged "replaces", the rest "inserted";
    /// then stable canonical reordering of each run of non-starters) followed by removal of Mn.
    static func stripAccents(_ input: AlignedScalars, into out: inout AlignedScalars) {
        out.removeAll()
        // The decomposed stream: scalar, whether it is inserted (not the first of its char's decomposition), ccc.
        var stream: [(c: UInt32, inserted: Bool, ccc: UInt8)] = []
        stream.reserveCapacity(input.count + 8)
        var pendingStart = 0
        var decomposition: [UInt32] = []
        CharClass.table.withUnsafeBufferPointer { classes in
            func push(_ c: UInt32, inserted: Bool) {
                let ccc = combiningClass(c, classes[Int(c)])
                if ccc == 0 {
                    sortByCombiningClass(&stream, from: pendingStart)
                    pendingStart = stream.count
                }
                stream.append((c, inserted, ccc))
            }
            for c in input.scalars {
                if classes[Int(c)] & CharClass.strippable != 0 {
                    canonicalDecomposition(c, into: &decomposition)
                    for (j, d) in decomposition.enumerated() { push(d, inserted: j > 0) }
                } else {
                    push(c, inserted: false)
                }
            }
            sortByCombiningClass(&stream, from: pendingStart)
            // Alignments by position, as NormalizedString.transform assigns them: a replacing scalar takes the
            // alignment of the next input scalar, an inserted one that of the input scalar before it.
            var next = 0
            for (c, inserted, _) in stream {
                let start: Int, end: Int
                if inserted {
                    if next == 0 {
                        start = input.starts.first ?? 0
                        end = start
                    } else {
                        start = input.starts[next - 1]
                        end = input.ends[next - 1]
                    }
                } else {
                    start = input.starts[next]
                    end = input.ends[next]
                    next += 1
                }
                if classes[Int(c)] & CharClass.mark == 0 { out.append(c, start, end) }
            }
        }
    }

    /// Canonical combining class as tokenizers' NFD tables have it: Swift's value for Mn and for the few
    /// non-Mn non-starters tokenizers knows; 0 (a starter) for everything else, including marks newer than
    /// its tables.
    @inline(__always) static func combiningClass(_ c: UInt32, _ k: UInt8) -> UInt8 {
        guard k & (CharClass.mark | CharClass.combining) != 0, let s = Unicode.Scalar(c) else { return 0 }
        return s.properties.canonicalCombiningClass.rawValue
    }

    /// Stable insertion sort by combining class of `stream[from...]` (a starter and the non-starters after it).
    static func sortByCombiningClass(_ stream: inout [(c: UInt32, inserted: Bool, ccc: UInt8)], from: Int) {
        guard stream.count - from > 1 else { return }
        for i in (from + 1)..<stream.count {
            let x = stream[i]
            var j = i
            while j > from && stream[j - 1].ccc > x.ccc {
                stream[j] = stream[j - 1]
                j -= 1
            }
            stream[j] = x
        }
    }

    /// Full canonical decomposition of one scalar: Hangul syllables by the algorithm of Unicode §3.12, others
    /// through Foundation.
    static func canonicalDecomposition(_ c: UInt32, into out: inout [UInt32]) {
        out.removeAll(keepingCapacity: true)
        if c >= 0xAC00 && c <= 0xD7A3 {
            let s = c - 0xAC00
            out.append(0x1100 + s / 588)
            out.append(0x1161 + (s % 588) / 28)
            if s % 28 != 0 { out.append(0x11A7 + s % 28) }
            return
        }
        guard let scalar = Unicode.Scalar(c) else { out.append(c); return }
        for d in String(Character(scalar)).decomposedStringWithCanonicalMapping.unicodeScalars { out.append(d.value) }
    }

    /// Rust `char::to_lowercase` per scalar (full mappings, so "İ" → "i̇"; no final-sigma context). Extra
    /// scalars of an expansion are "inserted" and share the alignment of the scalar they come from.
    static func lowercase(_ input: AlignedScalars, into out: inout AlignedScalars) {
        out.removeAll()
        for i in 0..<input.count {
            let c = input.scalars[i]
            if c < 0x80 {
                out.append(c &- 0x41 < 26 ? c | 0x20 : c, input.starts[i], input.ends[i])
                continue
            }
            guard let s = Unicode.Scalar(c), s.properties.changesWhenLowercased else {
                out.append(c, input.starts[i], input.ends[i])
                continue
            }
            for l in s.properties.lowercaseMapping.unicodeScalars { out.append(l.value, input.starts[i], input.ends[i]) }
        }
    }
}
