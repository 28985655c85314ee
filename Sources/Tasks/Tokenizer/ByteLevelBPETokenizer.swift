import Foundation

/// A byte-level BPE tokenizer (GPT-2's scheme, used by SmolLM2 and most decoder LLMs), identical to the Hugging
/// Face tokenizer of the same vocabulary: ids and offsets.
///
/// Encoding: the added tokens (`<|im_start|>` …) are cut out of the text first, wherever they occur (the longest at
/// the leftmost place); the text between them is split by GPT-2's regex (`GPT2Split`), each piece's UTF-8 bytes are
/// written with the byte-to-unicode table and merged by BPE, the lowest-ranked adjacent pair first (leftmost among
/// equals), until no pair of the merge list is left. A byte whose character has no id is dropped, as HF drops it
/// when the model has no unknown token. No normaliser, no prefix space, no offset trimming: the configuration
/// transformers builds from a GGUF file of the `gpt2` tokenizer model.
///
/// Offsets are [start, end) in Unicode scalars of the text (Python string indices, what HF reports): a token that
/// holds only some bytes of a character spans that whole character, so neighbouring tokens may share it.
public struct ByteLevelBPETokenizer: Sendable {
    /// A token's role, as GGUF's `tokenizer.ggml.token_type` numbers them.
    public enum TokenType: Int, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    /// An added token: matched in the raw text before pre-tokenization, never split.
    public struct AddedToken: Equatable, Sendable {
        public var content: String
        public var id: Int
        /// Special tokens (control tokens) are the chat template's markers; `decode(skipSpecial:)` drops them.
        public var special: Bool

        public init(content: String, id: Int, special: Bool) {
            self.content = content
            self.id = id
            self.special = special
        }
    }

    /// Where the tokenizer came from (a file path), for messages.
    public let source: String
    /// Token text by id, in the byte-level alphabet (a leading space is "Ġ").
    public let tokens: [String]
    public let addedTokens: [AddedToken]
    public let bosTokenID: Int?
    public let eosTokenID: Int?
    public let unknownTokenID: Int?
    public let paddingTokenID: Int?
    /// Whether `encode` puts the BOS token first (GGUF `tokenizer.ggml.add_bos_token`; false for SmolLM2).
    public let addsBOS: Bool
    /// The chat template (Jinja), stored as given; not rendered here.
    public let chatTemplate: String?

    private let vocabulary: [String: Int]
    /// (left id << 32 | right id) → (rank, merged id).
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    /// The id of each byte's one-character token (-1 when the vocabulary lacks it).
    private let byteIDs: [Int32]
    /// Added tokens by their first scalar, longest first.
    private let addedByFirstScalar: [UInt32: [(scalars: [UInt32], id: Int)]]
    private let addedIDs: Set<Int>
    private let specialIDs: Set<Int>

    /// A tokenizer from plain inputs. `merges` are in rank order (the first merges first), each a pair of tokens
    /// whose concatenation is a token; every added token must be the vocabulary's token of that id. Throws a
    /// `TokenizerError` naming `source` and the entry at fault.
    public init(source: String, tokens: [String], merges: [(String, String)], addedTokens: [AddedToken],
                bosTokenID: Int? = nil, eosTokenID: Int? = nil, unknownTokenID: Int? = nil, paddingTokenID: Int? = nil,
                addsBOS: Bool = false, chatTemplate: String? = nil) throws {
        self.source = source
        self.tokens = tokens
        self.addedTokens = addedTokens
        self.bosTokenID = bosTokenID
        self.eosTokenID = eosTokenID
        self.unknownTokenID = unknownTokenID
        self.paddingTokenID = paddingTokenID
        self.addsBOS = addsBOS
        self.chatTemplate = chatTemplate
        guard !tokens.isEmpty else { throw TokenizerError("\(source): the vocabulary is empty") }
        var vocabulary: [String: Int] = [:]
        vocabulary.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() {
            if let first = vocabulary[token] {
                throw TokenizerError("\(source): token \(id) \(quoted(token)) repeats token \(first); expected distinct tokens")
            }
            vocabulary[token] = id
        }
        for (name, id) in [("BOS", bosTokenID), ("EOS", eosTokenID), ("unknown", unknownTokenID), ("padding", paddingTokenID)] {
            if let id, !(0..<tokens.count).contains(id) {
                throw TokenizerError("\(source): the \(name) token id is \(id), outside the vocabulary's 0…\(tokens.count - 1)")
            }
        }
        var table: [UInt64: (rank: Int32, id: Int32)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let left = vocabulary[a], let right = vocabulary[b], let merged = vocabulary[a + b] else {
                let missing = vocabulary[a] == nil ? a : vocabulary[b] == nil ? b : a + b
                throw TokenizerError("\(source): merge \(rank) (\(quoted(a)) \(quoted(b))) needs the token \(quoted(missing)), which the vocabulary lacks")
            }
            let key = UInt64(left) << 32 | UInt64(right)
            if table[key] == nil { table[key] = (Int32(rank), Int32(merged)) }  // the first rank wins, as in HF
        }
        self.vocabulary = vocabulary
        self.merges = table
        byteIDs = ByteLevelAlphabet.byteToScalar.map { s in
            vocabulary[String(Character(Unicode.Scalar(s)!))].map(Int32.init) ?? -1
        }
        var byFirst: [UInt32: [(scalars: [UInt32], id: Int)]] = [:]
        for t in addedTokens {
            guard (0..<tokens.count).contains(t.id), tokens[t.id] == t.content else {
                let there = (0..<tokens.count).contains(t.id) ? quoted(tokens[t.id]) : "no such id"
                throw TokenizerError("\(source): added token \(quoted(t.content)) has id \(t.id), but the vocabulary has \(there) there")
            }
            let scalars = t.content.unicodeScalars.map(\.value)
            guard let first = scalars.first else { throw TokenizerError("\(source): added token \(t.id) is empty") }
            byFirst[first, default: []].append((scalars, t.id))
        }
        addedByFirstScalar = byFirst.mapValues { $0.sorted { $0.scalars.count > $1.scalars.count } }
        addedIDs = Set(addedTokens.map(\.id))
        specialIDs = Set(addedTokens.filter(\.special).map(\.id))
    }

    /// The id of a token (in the byte-level alphabet), if the vocabulary has it.
    public func id(of token: String) -> Int? { vocabulary[token] }

    /// The merges in rank order, each pair once (the first rank of a repeated pair, the one that applies): what a
    /// writer of `tokenizer.json` or GGUF metadata needs to rebuild this tokenizer.
    public var mergeList: [(String, String)] {
        merges.sorted { $0.value.rank < $1.value.rank }.map { (key, _) in
            (tokens[Int(key >> 32)], tokens[Int(key & 0xFFFF_FFFF)])
        }
    }

    /// The tokens of `text` with their offsets in Unicode scalars (the BOS token first, offsets 0..<0, when
    /// `addsBOS`).
    public func encode(_ text: String) -> [Token] {
        let scalars = text.unicodeScalars.map(\.value)
        var out: [Token] = []
        if addsBOS, let bos = bosTokenID { out.append(Token(id: bos, start: 0, end: 0)) }
        var pieces: [Range<Int>] = []
        var bpe = BPEWork()
        scalars.withUnsafeBufferPointer { text in
            var segmentStart = 0, i = 0
            func flush(upTo end: Int) {
                guard segmentStart < end else { return }
                pieces.removeAll(keepingCapacity: true)
                GPT2Split.pieces(text, segmentStart..<end, into: &pieces)
                for piece in pieces { encodePiece(text, piece, &bpe, into: &out) }
            }
            while i < text.count {
                if let (length, id) = addedToken(at: i, in: text) {
                    flush(upTo: i)
                    out.append(Token(id: id, start: i, end: i + length))
                    i += length
                    segmentStart = i
                } else {
                    i += 1
                }
            }
            flush(upTo: text.count)
        }
        return out
    }

    /// The ids of `text`.
    public func encodeIDs(_ text: String) -> [Int] { encode(text).map(\.id) }

    /// The text of `ids`: each token's characters turned back into bytes, and the bytes read as UTF-8 (an
    /// incomplete or invalid sequence becomes U+FFFD, as in HF). Added tokens give their text; `skipSpecial` drops
    /// the special ones. An id outside the vocabulary is an error.
    public func decode(_ ids: [Int], skipSpecial: Bool = false) throws -> String {
        var bytes: [UInt8] = []
        for id in ids {
            guard (0..<tokens.count).contains(id) else {
                throw TokenizerError("\(source): cannot decode id \(id): the vocabulary has ids 0…\(tokens.count - 1)")
            }
            if addedIDs.contains(id) {
                if !(skipSpecial && specialIDs.contains(id)) { bytes += Array(tokens[id].utf8) }
                continue
            }
            for s in tokens[id].unicodeScalars {
                if let b = ByteLevelAlphabet.scalarToByte[s.value] { bytes.append(b) } else { bytes += Array(String(s).utf8) }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The length and id of the added token that starts at `text[i]` (the longest), if any.
    private func addedToken(at i: Int, in text: UnsafeBufferPointer<UInt32>) -> (Int, Int)? {
        guard let candidates = addedByFirstScalar[text[i]] else { return nil }
        for (scalars, id) in candidates where i + scalars.count <= text.count {
            if (0..<scalars.count).allSatisfy({ text[i + $0] == scalars[$0] }) { return (scalars.count, id) }
        }
        return nil
    }

    /// Appends the BPE tokens of one pre-tokenized piece.
    private func encodePiece(_ text: UnsafeBufferPointer<UInt32>, _ piece: Range<Int>, _ work: inout BPEWork,
                             into out: inout [Token]) {
        work.reset()
        for k in piece {
            UTF8.encode(Unicode.Scalar(text[k])!) { b in
                let id = byteIDs[Int(b)]
                // No token for this byte: dropped, as HF does without an unknown token.
                if id >= 0 { work.append(id: id, character: k) }
            }
        }
        work.merge(merges)
        work.emit(into: &out)
    }
}

/// The working state of BPE over one piece: its symbols as a linked list, and a min-heap of candidate merges by
/// (rank, position), so a piece of n bytes takes O(n log n) rather than the O(n²) of rescanning for the best pair.
/// `BPEWork.mergeNaive` (the rescanning loop) is the oracle the tests compare it with.
struct BPEWork {
    var ids: [Int32] = []
    /// The scalar index of the first and last byte of each symbol (the token's offsets).
    var firstCharacter: [Int] = []
    var lastCharacter: [Int] = []
    var previous: [Int] = []
    var next: [Int] = []
    var alive: [Bool] = []
    /// Candidate merges as rank << 32 | position: one integer comparison orders them by rank, then position.
    var heap: [UInt64] = []

    mutating func reset() {
        ids.removeAll(keepingCapacity: true)
        firstCharacter.removeAll(keepingCapacity: true)
        lastCharacter.removeAll(keepingCapacity: true)
        previous.removeAll(keepingCapacity: true)
        next.removeAll(keepingCapacity: true)
        alive.removeAll(keepingCapacity: true)
        heap.removeAll(keepingCapacity: true)
    }

    mutating func append(id: Int32, character: Int) {
        let n = ids.count
        ids.append(id)
        firstCharacter.append(character)
        lastCharacter.append(character)
        previous.append(n - 1)
        next.append(n + 1)
        alive.append(true)
    }

    static func key(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(a)) << 32 | UInt64(UInt32(b)) }

    /// Merges until no adjacent pair is in `merges`: always the lowest rank, the leftmost among equal ranks.
    mutating func merge(_ merges: [UInt64: (rank: Int32, id: Int32)]) {
        let n = ids.count
        guard n > 1 else { return }
        next[n - 1] = -1
        for i in 0..<(n - 1) { if let m = merges[Self.key(ids[i], ids[i + 1])] { heap.append(Self.candidate(m.rank, i)) } }
        heap.sort()  // a sorted array is a valid min-heap
        while let top = pop() {
            let rank = Int32(top >> 32), i = Int(top & 0xFFFF_FFFF)
            let j = next[i]
            // A stale candidate: its left symbol was absorbed, or the pair changed since it was pushed.
            guard alive[i], j >= 0, let m = merges[Self.key(ids[i], ids[j])], m.rank == rank else { continue }
            ids[i] = m.id
            lastCharacter[i] = lastCharacter[j]
            alive[j] = false
            next[i] = next[j]
            if next[j] >= 0 { previous[next[j]] = i }
            if previous[i] >= 0, let p = merges[Self.key(ids[previous[i]], ids[i])] { push(p.rank, previous[i]) }
            if next[i] >= 0, let p = merges[Self.key(ids[i], ids[next[i]])] { push(p.rank, i) }
        }
    }

    /// The obviously-correct twin of `merge`: rescans for the best pair after every merge (O(n²)).
    mutating func mergeNaive(_ merges: [UInt64: (rank: Int32, id: Int32)]) {
        var symbols = zip(ids.indices, ids).map { (id: $1, first: firstCharacter[$0], last: lastCharacter[$0]) }
        while true {
            var best: (rank: Int32, index: Int)? = nil
            for k in 0..<max(0, symbols.count - 1) {
                if let m = merges[Self.key(symbols[k].id, symbols[k + 1].id)], best == nil || m.rank < best!.rank {
                    best = (m.rank, k)
                }
            }
            guard let (_, k) = best else { break }
            symbols[k] = (merges[Self.key(symbols[k].id, symbols[k + 1].id)]!.id, symbols[k].first, symbols[k + 1].last)
            symbols.remove(at: k + 1)
        }
        reset()
        for s in symbols {
            append(id: s.id, character: s.first)
            lastCharacter[lastCharacter.count - 1] = s.last
        }
    }

    /// The surviving symbols as tokens, in order.
    func emit(into out: inout [Token]) {
        for i in ids.indices where alive[i] {
            out.append(Token(id: Int(ids[i]), start: firstCharacter[i], end: lastCharacter[i] + 1))
        }
    }

    /// Ranks are non-negative and a piece's positions fit 32 bits (a piece is one line's word, run or symbol).
    private static func candidate(_ rank: Int32, _ position: Int) -> UInt64 { UInt64(rank) << 32 | UInt64(position) }

    private mutating func push(_ rank: Int32, _ position: Int) {
        let value = Self.candidate(rank, position)
        heap.append(value)
        var c = heap.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            guard value < heap[p] else { break }
            heap[c] = heap[p]
            c = p
        }
        heap[c] = value
    }

    private mutating func pop() -> UInt64? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        let n = heap.count
        guard n > 0 else { return top }
        var p = 0
        while true {
            let l = 2 * p + 1
            if l >= n { break }
            let m = l + 1 < n && heap[l + 1] < heap[l] ? l + 1 : l
            if last <= heap[m] { break }
            heap[p] = heap[m]
            p = m
        }
        heap[p] = last
        return top
    }
}
