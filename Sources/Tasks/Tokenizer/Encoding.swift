/// One token of a text: its vocabulary id and its character offsets [start, end) in the ORIGINAL text,
/// counted in Unicode scalars (= Python str indices, what HF fast tokenizers return).
///
/// A word that WordPiece cannot split, or that is longer than `maxInputCharsPerWord`, is one `[UNK]` token spanning
/// the whole word. Several tokens can share a character when normalization expanded it (lowercased "İ" is "i̇").
public struct Token: Equatable, Sendable {
    public let id: Int
    public let start: Int
    public let end: Int

    /// A token with id `id` covering original scalars `start..<end`.
    public init(id: Int, start: Int, end: Int) {
        self.id = id
        self.start = start
        self.end = end
    }
}

/// How `encode` shortens a text or pair to `maxLength` (HF `truncation=`).
public enum Truncation: String, Sendable, CaseIterable {
    /// Removes tokens from the longer text (HF splits the budget as its Rust `truncate_encodings` does).
    case longestFirst = "longest_first"
    /// Removes tokens from the first text only.
    case onlyFirst = "only_first"
    /// Removes tokens from the second text only.
    case onlySecond = "only_second"
    /// Never truncates; `maxLength` then only pads.
    case none = "do_not_truncate"
}

/// The model inputs of one text or text pair.
public struct Encoding: Equatable, Sendable {
    public var ids: [Int]
    public var typeIds: [Int]
    public var attentionMask: [Int]
    /// Character offsets of each token in its own text ([CLS]/[SEP]/[PAD] get nil).
    public var offsets: [Range<Int>?]
    /// 0 for tokens of the first text, 1 for the second, nil for special and padding tokens.
    public var sequenceIds: [Int?]
    public var count: Int { ids.count }

    /// An encoding from its parallel arrays (all of the same length).
    public init(ids: [Int], typeIds: [Int], attentionMask: [Int], offsets: [Range<Int>?], sequenceIds: [Int?]) {
        self.ids = ids
        self.typeIds = typeIds
        self.attentionMask = attentionMask
        self.offsets = offsets
        self.sequenceIds = sequenceIds
    }
}
