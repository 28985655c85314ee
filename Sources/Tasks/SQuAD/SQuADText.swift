/// The few Python `str` behaviours that SQuAD preprocessing and the official evaluation depend on, on Unicode
/// scalars (Python's code points). Swift's `Character`/`String` semantics differ (grapheme clusters, canonical
/// equivalence, no final-sigma rule in `lowercased()`), so these work scalar by scalar.
enum SQuADText {
    /// Python `str.isspace()`: bidirectional class WS, B or S, or category Zs. This is Unicode White_Space plus
    /// U+001C…U+001F (information separators, bidi B/S).
    static func isSpace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// Python `re`'s `\w` for `str` patterns: `ch.isalnum() or ch == "_"`, where `isalnum` is a letter (categories
    /// L*) or any character with a Unicode numeric type (`isdecimal`, `isdigit`, `isnumeric`).
    static func isWord(_ s: Unicode.Scalar) -> Bool {
        if s == "_" { return true }
        if s.isASCII {
            let v = s.value
            return (0x30...0x39).contains(v) || (0x41...0x5A).contains(v) || (0x61...0x7A).contains(v)
        }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return s.properties.numericType != nil
        }
    }

    /// Python `str.lstrip()` with no argument.
    static func lstrip(_ text: String) -> String {
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }) else { return "" }
        return String(scalars[first...])
    }

    /// Python `str.lower()`: the full lowercase mapping of each scalar (SpecialCasing included, e.g. U+0130 → "i̇"),
    /// and U+03A3 Σ → ς when it ends a word (the Final_Sigma context), σ otherwise.
    static func lower(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(scalars.count)
        for (i, s) in scalars.enumerated() {
            if s.isASCII {
                out.append((0x41...0x5A).contains(s.value) ? Unicode.Scalar(s.value + 0x20)! : s)
            } else if s.value == 0x3A3 {
                out.append(isFinalSigma(scalars, at: i) ? "\u{3C2}" : "\u{3C3}")
            } else {
                out.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }

    /// CPython's `handle_capital_sigma`: a cased letter, then case-ignorables, before; no case-ignorables followed
    /// by a cased letter after.
    private static func isFinalSigma(_ s: [Unicode.Scalar], at i: Int) -> Bool {
        var j = i - 1
        while j >= 0 && s[j].properties.isCaseIgnorable { j -= 1 }
        guard j >= 0 && s[j].properties.isCased else { return false }
        j = i + 1
        while j < s.count && s[j].properties.isCaseIgnorable { j += 1 }
        return j == s.count || !s[j].properties.isCased
    }

    /// Python `str.split()` with no argument: runs of non-space scalars.
    static func split(_ scalars: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
        var out: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        for s in scalars {
            if isSpace(s) {
                if !current.isEmpty { out.append(current); current = [] }
            } else {
                current.append(s)
            }
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// A `String` made of exactly these scalars.
    static func string(_ scalars: some Sequence<Unicode.Scalar>) -> String {
        var v = String.UnicodeScalarView()
        v.append(contentsOf: scalars)
        return String(v)
    }

    /// `text[start ..< end]` in Unicode scalars (Python slicing, clamped to the text like Python's).
    static func slice(_ text: String, _ start: Int, _ end: Int) -> String {
        let scalars = text.unicodeScalars
        let n = scalars.count
        let lo = max(0, min(start, n)), hi = max(lo, min(end, n))
        let a = scalars.index(scalars.startIndex, offsetBy: lo)
        let b = scalars.index(a, offsetBy: hi - lo)
        return String(scalars[a..<b])
    }
}
