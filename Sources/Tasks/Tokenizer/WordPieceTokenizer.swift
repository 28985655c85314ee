import Foundation

/// BERT's WordPiece tokenizer, identical to Hugging Face `BertTokenizerFast` (tokenizers: added-token split →
/// BertNormalizer → BertPreTokenizer → WordPiece → TemplateProcessing `[CLS] A [SEP] (B [SEP])`), with character
/// offsets into the original text.
///
/// Pipeline for one text (each step mirrors the tokenizers crate; see the golden tests):
/// 1. Added tokens that are matched on the raw text (the special tokens `[PAD] [UNK] [CLS] [SEP] [MASK]`, as HF adds
///    them) are cut out first, leftmost-longest, case-sensitively: "a [CLS] b" has the id of [CLS] in the middle,
///    "[cls]" does not. The pieces between them are tokenized separately.
/// 2. `BertNormalizer` (clean text, pad CJK ideographs with spaces, strip accents, lowercase), keeping for every
///    normalized scalar the range of original scalars it came from.
/// 3. Split on whitespace (removed) and punctuation (each its own word).
/// 4. Greedy longest-match-first WordPiece with "##" continuations; a word that cannot be covered, or is longer than
///    `maxInputCharsPerWord` scalars after normalization, is one `[UNK]`.
public final class WordPieceTokenizer: Sendable {
    /// Where the tokenizer was read from (the vocab.txt or tokenizer.json path; "vocabulary" for one built in memory).
    public let source: String
    public let vocabulary: [String: Int]          // token → id
    public let idToToken: [String]
    public let doLowerCase: Bool                   // HF: lowercase
    public let stripAccents: Bool                  // HF: strip_accents (nil in HF means "same as lowercase")
    public let tokenizeChineseChars: Bool
    public let cleanText: Bool
    public let clsId: Int, sepId: Int, padId: Int, unkId: Int, maskId: Int?
    /// Longer words (in normalized scalars) are one `[UNK]`.
    public let maxInputCharsPerWord: Int
    /// Marks a token that continues a word ("##").
    public let continuingSubwordPrefix: String
    /// Tokens HF keeps whole wherever they appear in a text (its added tokens), and whether each is matched on the
    /// raw text (`normalized: false`, as the special tokens) or on the normalized text.
    public let addedTokens: [AddedToken]
    /// Ids that `decode(_:skipSpecialTokens: true)` drops: the special added tokens.
    public let specialIds: Set<Int>

    /// A token HF's AddedVocabulary matches before pre-tokenization.
    public struct AddedToken: Equatable, Sendable {
        public let content: String
        public let id: Int
        /// Skipped by `decode(_:skipSpecialTokens: true)`.
        public let special: Bool
        /// Matched on the normalized text (true) or on the raw text (false).
        public let normalized: Bool
        /// An added token; `normalized: false` matches `content` on the raw text.
        public init(content: String, id: Int, special: Bool, normalized: Bool) {
            self.content = content
            self.id = id
            self.special = special
            self.normalized = normalized
        }
    }

    let normalizer: BertNormalizer
    let wholeWords: ScalarTable       // tokens, keyed by their scalars
    let continuations: ScalarTable    // tokens starting with the prefix, keyed by the rest
    let rawPatterns: [(scalars: [UInt32], id: Int)]        // longest first
    let normalizedPatterns: [(scalars: [UInt32], id: Int)] // longest first, content normalized
    let decodeCleanup: Bool

    /// A tokenizer over `vocabulary` (ids = positions), with the special tokens `[CLS] [SEP] [PAD] [UNK]` (required)
    /// and `[MASK]` (optional) treated as HF `BertTokenizerFast` treats them.
    public convenience init(vocabulary: [String], doLowerCase: Bool = true, stripAccents: Bool? = nil,
                            tokenizeChineseChars: Bool = true, cleanText: Bool = true,
                            maxInputCharsPerWord: Int = 100) throws {
        var seen: [String: Int] = [:]
        for (id, token) in vocabulary.enumerated() {
            if let first = seen[token] {
                throw TokenizerError("vocabulary: duplicate token \(quoted(token)) at ids \(first) and \(id)")
            }
            seen[token] = id
        }
        try self.init(source: "vocabulary", idToToken: vocabulary, doLowerCase: doLowerCase,
                      stripAccents: stripAccents ?? doLowerCase, tokenizeChineseChars: tokenizeChineseChars,
                      cleanText: cleanText, maxInputCharsPerWord: maxInputCharsPerWord,
                      specialTokens: .bert, addedTokens: nil, continuingSubwordPrefix: "##", decodeCleanup: true)
    }

    /// Names of the special tokens (HF `cls_token`, …).
    struct SpecialTokenNames {
        var cls = "[CLS]", sep = "[SEP]", pad = "[PAD]", unk = "[UNK]", mask = "[MASK]"
        static let bert = SpecialTokenNames()
    }

    /// `addedTokens: nil` adds the five special tokens that are in the vocabulary, as HF does for a vocab.txt.
    init(source: String, idToToken: [String], doLowerCase: Bool, stripAccents: Bool, tokenizeChineseChars: Bool,
         cleanText: Bool, maxInputCharsPerWord: Int, specialTokens names: SpecialTokenNames,
         addedTokens: [AddedToken]?, continuingSubwordPrefix: String, decodeCleanup: Bool) throws {
        self.source = source
        var vocabulary: [String: Int] = [:]
        vocabulary.reserveCapacity(idToToken.count)
        for (id, token) in idToToken.enumerated() where vocabulary[token] == nil { vocabulary[token] = id }
        func required(_ token: String, _ role: String) throws -> Int {
            guard let id = vocabulary[token] else {
                throw TokenizerError("\(source): the \(role) token \(quoted(token)) is not in the vocabulary (\(idToToken.count) tokens)")
            }
            return id
        }
        clsId = try required(names.cls, "classification (cls)")
        sepId = try required(names.sep, "separator (sep)")
        padId = try required(names.pad, "padding (pad)")
        unkId = try required(names.unk, "unknown (unk)")
        maskId = vocabulary[names.mask]
        guard maxInputCharsPerWord >= 1 else {
            throw TokenizerError("\(source): max_input_chars_per_word is \(maxInputCharsPerWord); expected at least 1")
        }
        guard !continuingSubwordPrefix.isEmpty else {
            throw TokenizerError("\(source): continuing_subword_prefix is empty; expected \"##\"")
        }
        self.vocabulary = vocabulary
        self.idToToken = idToToken
        self.doLowerCase = doLowerCase
        self.stripAccents = stripAccents
        self.tokenizeChineseChars = tokenizeChineseChars
        self.cleanText = cleanText
        self.maxInputCharsPerWord = maxInputCharsPerWord
        self.continuingSubwordPrefix = continuingSubwordPrefix
        self.decodeCleanup = decodeCleanup
        let added = addedTokens ?? [names.pad, names.unk, names.cls, names.sep, names.mask].compactMap { name in
            vocabulary[name].map { AddedToken(content: name, id: $0, special: true, normalized: false) }
        }
        self.addedTokens = added
        specialIds = Set(added.filter(\.special).map(\.id))
        let normalizer = BertNormalizer(cleanText: cleanText, handleChineseChars: tokenizeChineseChars,
                                        stripAccents: stripAccents, lowercase: doLowerCase)
        self.normalizer = normalizer

        let prefix = Array(continuingSubwordPrefix.unicodeScalars.map(\.value))
        var whole: [(key: [UInt32], value: Int)] = [], rest: [(key: [UInt32], value: Int)] = []
        whole.reserveCapacity(idToToken.count)
        for (token, id) in vocabulary {
            let key = token.unicodeScalars.map(\.value)
            whole.append((key, id))
            if key.count >= prefix.count && key[..<prefix.count].elementsEqual(prefix) {
                rest.append((Array(key[prefix.count...]), id))
            }
        }
        wholeWords = ScalarTable(whole)
        continuations = ScalarTable(rest)

        var raw: [(scalars: [UInt32], id: Int)] = [], normalized: [(scalars: [UInt32], id: Int)] = []
        var out = AlignedScalars(), scratch = AlignedScalars()
        for token in added where !token.content.isEmpty {
            let scalars = token.content.unicodeScalars.map(\.value)
            if token.normalized {
                scalars.withUnsafeBufferPointer { normalizer.normalize($0, 0..<scalars.count, into: &out, scratch: &scratch) }
                if !out.scalars.isEmpty { normalized.append((out.scalars, token.id)) }
            } else {
                raw.append((scalars, token.id))
            }
        }
        rawPatterns = raw.sorted { $0.scalars.count > $1.scalars.count }
        normalizedPatterns = normalized.sorted { $0.scalars.count > $1.scalars.count }
    }

    // MARK: - Tokenizing

    /// Working buffers of one `tokenize` call.
    struct Workspace {
        var normalized = AlignedScalars()
        var scratch = AlignedScalars()
    }

    /// Tokens of one text, without special tokens.
    public func tokenize(_ text: String) -> [Token] {
        var original: [UInt32] = []
        original.reserveCapacity(text.utf8.count)
        for s in text.unicodeScalars { original.append(s.value) }
        var tokens: [Token] = []
        tokens.reserveCapacity(original.count / 3 + 4)
        var work = Workspace()
        original.withUnsafeBufferPointer { text in
            var position = 0
            for (range, id) in Self.matches(of: rawPatterns, in: text, 0..<text.count) {
                if range.lowerBound > position { tokenizePiece(text, position..<range.lowerBound, &tokens, &work) }
                tokens.append(Token(id: id, start: range.lowerBound, end: range.upperBound))
                position = range.upperBound
            }
            if position < text.count { tokenizePiece(text, position..<text.count, &tokens, &work) }
        }
        return tokens
    }

    /// Leftmost-longest matches of `patterns` (sorted longest first) in `text[range]`, left to right and not
    /// overlapping: the aho-corasick `LeftmostLongest` search of tokenizers' AddedVocabulary.
    static func matches(of patterns: [(scalars: [UInt32], id: Int)], in text: UnsafeBufferPointer<UInt32>,
                        _ range: Range<Int>) -> [(Range<Int>, Int)] {
        guard !patterns.isEmpty else { return [] }
        var found: [(Range<Int>, Int)] = []
        var i = range.lowerBound
        outer: while i < range.upperBound {
            for (p, id) in patterns where p.count <= range.upperBound - i && p[0] == text[i] {
                var equal = true
                for j in 1..<max(p.count, 1) where p[j] != text[i + j] {
                    equal = false
                    break
                }
                if equal {
                    found.append((i..<(i + p.count), id))
                    i += p.count
                    continue outer
                }
            }
            i += 1
        }
        return found
    }

    /// Normalizes `text[range]` (a piece between raw added tokens), splits out normalized added tokens, and
    /// pre-tokenizes and WordPiece-splits the rest.
    func tokenizePiece(_ text: UnsafeBufferPointer<UInt32>, _ range: Range<Int>, _ tokens: inout [Token],
                       _ work: inout Workspace) {
        normalizer.normalize(text, range, into: &work.normalized, scratch: &work.scratch)
        let n = work.normalized
        n.scalars.withUnsafeBufferPointer { s in
            var position = 0
            for (r, id) in Self.matches(of: normalizedPatterns, in: s, 0..<s.count) {
                if r.lowerBound > position { words(s, position..<r.lowerBound, n, &tokens) }
                tokens.append(Token(id: id, start: n.starts[r.lowerBound], end: n.ends[r.upperBound - 1]))
                position = r.upperBound
            }
            if position < s.count { words(s, position..<s.count, n, &tokens) }
        }
    }

    /// BertPreTokenizer (split on whitespace, isolate punctuation) then WordPiece on each word.
    func words(_ s: UnsafeBufferPointer<UInt32>, _ range: Range<Int>, _ n: AlignedScalars, _ tokens: inout [Token]) {
        CharClass.table.withUnsafeBufferPointer { classes in
            let separator = CharClass.whitespace | CharClass.punctuation
            var i = range.lowerBound
            while i < range.upperBound {
                let k = classes[Int(s[i])]
                if k & CharClass.whitespace != 0 {
                    i += 1
                } else if k & CharClass.punctuation != 0 {
                    wordPiece(s, i..<(i + 1), n, &tokens)
                    i += 1
                } else {
                    var j = i + 1
                    while j < range.upperBound && classes[Int(s[j])] & separator == 0 { j += 1 }
                    wordPiece(s, i..<j, n, &tokens)
                    i = j
                }
            }
        }
    }

    /// Greedy longest-match-first WordPiece of one word `s[word]`; offsets through the alignments of `n`.
    func wordPiece(_ s: UnsafeBufferPointer<UInt32>, _ word: Range<Int>, _ n: AlignedScalars, _ tokens: inout [Token]) {
        let unknown = Token(id: unkId, start: n.starts[word.lowerBound], end: n.ends[word.upperBound - 1])
        if word.count > maxInputCharsPerWord {
            tokens.append(unknown)
            return
        }
        let first = tokens.count
        var start = word.lowerBound
        while start < word.upperBound {
            let table = start == word.lowerBound ? wholeWords : continuations
            var end = min(word.upperBound, start + table.maxKeyLength)
            var id: Int?
            while end > start {
                if let v = table.lookup(s, start..<end) {
                    id = v
                    break
                }
                end -= 1
            }
            guard let id else {
                tokens.removeSubrange(first...)
                tokens.append(unknown)
                return
            }
            tokens.append(Token(id: id, start: n.starts[start], end: n.ends[end - 1]))
            start = end
        }
    }

    /// The naive twin of `wordPiece`: HF's loop over Strings and `vocabulary` (test oracle for the scalar table).
    func wordPieceNaive(_ word: [Unicode.Scalar]) -> [Int] {
        if word.count > maxInputCharsPerWord { return [unkId] }
        var ids: [Int] = []
        var start = 0
        while start < word.count {
            var end = word.count
            var id: Int?
            while start < end {
                var piece = String(String.UnicodeScalarView(word[start..<end]))
                if start > 0 { piece = continuingSubwordPrefix + piece }
                if let v = vocabulary[piece] {
                    id = v
                    break
                }
                end -= 1
            }
            guard let id else { return [unkId] }
            ids.append(id)
            start = end
        }
        return ids
    }

    // MARK: - Encoding

    /// [CLS] A [SEP] (B [SEP]) with type ids 0…/1…, truncated to maxLength (counting special tokens) by `truncation`,
    /// padded with [PAD] to maxLength when `padToMaxLength`.
    ///
    /// Exactly HF's result, including its quirks:
    /// - An empty second text is no second text (transformers tests `if text_pair`): `encode(a, "")` is
    ///   `[CLS] A [SEP]`. (`encode(tokensA:tokensB: [])` does build the pair `[CLS] A [SEP] [SEP]`.)
    /// - `maxLength` below the number of special tokens (2, or 3 for a pair): nothing is truncated, as in HF.
    /// - `only_first` / `only_second` that cannot remove enough tokens from their text (or `only_second` without
    ///   a second text): HF raises (see `encodeChecked`); here the pair is truncated by `longest_first` instead, so
    ///   the result still fits `maxLength`.
    public func encode(_ a: String, _ b: String? = nil, maxLength: Int? = nil, truncation: Truncation = .longestFirst,
                       padToMaxLength: Bool = false) -> Encoding {
        encode(tokensA: tokenize(a), tokensB: Self.secondText(b).map(tokenize), maxLength: maxLength,
               truncation: truncation, padToMaxLength: padToMaxLength)
    }

    /// transformers passes a pair only when `text_pair` is truthy: "" counts as no second text.
    static func secondText(_ b: String?) -> String? {
        guard let b, !b.isEmpty else { return nil }
        return b
    }

    /// Builds the Encoding from already tokenized pieces (SQuAD windows use this).
    public func encode(tokensA: [Token], tokensB: [Token]?, maxLength: Int? = nil,
                       truncation: Truncation = .longestFirst, padToMaxLength: Bool = false) -> Encoding {
        if let e = try? encodeChecked(tokensA: tokensA, tokensB: tokensB, maxLength: maxLength, truncation: truncation,
                                      padToMaxLength: padToMaxLength) {
            return e
        }
        return try! encodeChecked(tokensA: tokensA, tokensB: tokensB, maxLength: maxLength, truncation: .longestFirst,
                                  padToMaxLength: padToMaxLength)
    }

    /// `encode`, but throwing where HF `BertTokenizerFast` raises: `only_first` / `only_second` truncation that
    /// cannot remove enough tokens from its text ("Truncation error: Sequence to truncate too short to respect the
    /// provided max_length"), or `only_second` without a second text.
    public func encodeChecked(_ a: String, _ b: String? = nil, maxLength: Int? = nil,
                              truncation: Truncation = .longestFirst, padToMaxLength: Bool = false) throws -> Encoding {
        try encodeChecked(tokensA: tokenize(a), tokensB: Self.secondText(b).map(tokenize), maxLength: maxLength,
                          truncation: truncation, padToMaxLength: padToMaxLength)
    }

    /// `encode(tokensA:tokensB:…)`, throwing where HF raises (see `encodeChecked(_:_:…)`).
    public func encodeChecked(tokensA: [Token], tokensB: [Token]?, maxLength: Int? = nil,
                              truncation: Truncation = .longestFirst, padToMaxLength: Bool = false) throws -> Encoding {
        var a = tokensA[...], b = tokensB.map { $0[...] }
        if let maxLength, truncation != .none {
            try Self.truncate(&a, &b, maxLength: maxLength - (b == nil ? 2 : 3), strategy: truncation,
                              skip: maxLength < (b == nil ? 2 : 3))
        }
        let n = a.count + (b?.count ?? 0) + (b == nil ? 2 : 3)
        let total = padToMaxLength ? max(n, maxLength ?? 0) : n
        var e = Encoding(ids: [], typeIds: [], attentionMask: [], offsets: [], sequenceIds: [])
        e.ids.reserveCapacity(total)
        e.typeIds.reserveCapacity(total)
        e.attentionMask.reserveCapacity(total)
        e.offsets.reserveCapacity(total)
        e.sequenceIds.reserveCapacity(total)
        func special(_ id: Int, type: Int) {
            e.ids.append(id); e.typeIds.append(type); e.attentionMask.append(1)
            e.offsets.append(nil); e.sequenceIds.append(nil)
        }
        func text(_ tokens: ArraySlice<Token>, type: Int) {
            for t in tokens {
                e.ids.append(t.id); e.typeIds.append(type); e.attentionMask.append(1)
                e.offsets.append(t.start..<t.end); e.sequenceIds.append(type)
            }
        }
        special(clsId, type: 0)
        text(a, type: 0)
        special(sepId, type: 0)
        if let b {
            text(b, type: 1)
            special(sepId, type: 1)
        }
        while e.ids.count < total {
            e.ids.append(padId); e.typeIds.append(0); e.attentionMask.append(0)
            e.offsets.append(nil); e.sequenceIds.append(nil)
        }
        return e
    }

    /// tokenizers' `truncate_encodings` (direction right, stride 0) with `budget` = max_length minus the special
    /// tokens. HF computes that budget in unsigned arithmetic, so a max_length below the special-token count wraps
    /// around and truncates nothing (`skip`).
    static func truncate(_ a: inout ArraySlice<Token>, _ b: inout ArraySlice<Token>?, maxLength budget: Int,
                         strategy: Truncation, skip: Bool) throws {
        if skip { return }
        if budget == 0 {
            a = a.prefix(0)
            b = b.map { $0.prefix(0) }
            return
        }
        let total = a.count + (b?.count ?? 0)
        guard total > budget else { return }
        let toRemove = total - budget
        switch strategy {
        case .none:
            return
        case .longestFirst:
            guard let pair = b else {
                a = a.prefix(total - toRemove)
                return
            }
            var n1 = a.count, n2 = pair.count
            let swapped = n1 > n2
            if swapped { swap(&n1, &n2) }
            n2 = n1 > budget ? n1 : max(n1, budget - n1)
            if n1 + n2 > budget {
                n1 = budget / 2
                n2 = n1 + budget % 2
            }
            if swapped { swap(&n1, &n2) }
            a = a.prefix(n1)
            b = pair.prefix(n2)
        case .onlyFirst:
            guard a.count > toRemove else { throw TokenizerError(TokenizerError.sequenceTooShort) }
            a = a.prefix(a.count - toRemove)
        case .onlySecond:
            guard let pair = b else { throw TokenizerError("Truncation error: Second sequence not provided") }
            guard pair.count > toRemove else { throw TokenizerError(TokenizerError.sequenceTooShort) }
            b = pair.prefix(pair.count - toRemove)
        }
    }

    // MARK: - Decoding

    /// HF-style: joins with spaces, merges "##" (tokenizers' WordPiece decoder, with its per-token cleanup of
    /// " ." " ?" " !" " ," " ' " " n't" " 'm" " do not" " 's" " 've" " 're"). Unknown ids are skipped.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        var out = ""
        var index = 0
        for id in ids {
            guard id >= 0 && id < idToToken.count else { continue }
            if skipSpecialTokens && specialIds.contains(id) { continue }
            var token = idToToken[id]
            if index > 0 {
                // Byte-wise: "##" + a combining mark is one Character, so String.hasPrefix would miss it.
                if token.utf8.starts(with: continuingSubwordPrefix.utf8) {
                    token = String(decoding: token.utf8.dropFirst(continuingSubwordPrefix.utf8.count), as: UTF8.self)
                } else {
                    token = " " + token
                }
            }
            if decodeCleanup { token = Self.cleanup(token) }
            out += token
            index += 1
        }
        return out
    }

    static let cleanupRules: [([UInt8], [UInt8])] = [
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
        (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ].map { (Array($0.0.utf8), Array($0.1.utf8)) }

    /// The rules applied in order, each a literal byte-wise replace-all (Rust `str::replace`, not Foundation's
    /// Unicode-aware search).
    static func cleanup(_ s: String) -> String {
        guard s.utf8.contains(0x20) else { return s }
        var bytes = Array(s.utf8)
        for (pattern, replacement) in cleanupRules {
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            var i = 0
            while i < bytes.count {
                if bytes[i] == pattern[0] && i + pattern.count <= bytes.count
                    && bytes[i..<(i + pattern.count)].elementsEqual(pattern) {
                    out += replacement
                    i += pattern.count
                } else {
                    out.append(bytes[i])
                    i += 1
                }
            }
            bytes = out
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The token strings of `ids` ("[UNK]" for an id outside the vocabulary).
    public func tokens(_ ids: [Int]) -> [String] {
        ids.map { $0 >= 0 && $0 < idToToken.count ? idToToken[$0] : "[UNK]" }
    }
}

/// `s` in double quotes with control characters escaped, for error messages.
func quoted(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case _ where u.value < 0x20 || u.value == 0x7F: out += String(format: "\\u%04X", u.value)
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "\""
}
