/// The real tokens of a padded batch, packed: which row of the padded [B·T] layout each packed row holds, and where
/// each sequence starts among the packed rows. Products on a packed tensor [N, D] do no work for padding; attention
/// runs per sequence over its own N_b tokens, which gives what the padded batch gives with the additive mask
/// (a key at −10000 below the others has softmax weight exp(−10000…) = 0 in float32).
public struct PackedSequences: Equatable, Sendable {
    /// Sequences in the batch (B).
    public let batch: Int
    /// The padded length (T).
    public let seqLen: Int
    /// Packed row i holds padded row `rows[i]` = b·T + t, in increasing order.
    public let rows: [Int]
    /// Sequence b is packed rows `starts[b] ..< starts[b + 1]`; B + 1 entries.
    public let starts: [Int]

    /// The tokens whose `attentionMask` entry [B, T] is not 0. Nil when packing gains nothing (no padding) or when
    /// a sequence's first token is padding (the sequence-level heads read the first token of every sequence).
    public init?(attentionMask: [Int], batch B: Int, seqLen T: Int) {
        precondition(attentionMask.count == B * T, "attention mask must be [B, T]")
        guard B > 0, T > 0 else { return nil }
        var rows: [Int] = []
        rows.reserveCapacity(attentionMask.count)
        var starts = [0]
        for b in 0..<B {
            guard attentionMask[b * T] != 0 else { return nil }
            for t in 0..<T where attentionMask[b * T + t] != 0 { rows.append(b * T + t) }
            starts.append(rows.count)
        }
        guard rows.count < B * T else { return nil }
        self.batch = B
        self.seqLen = T
        self.rows = rows
        self.starts = starts
    }

    /// Packed rows (N).
    public var count: Int { rows.count }
    /// Tokens of sequence b.
    public func length(_ b: Int) -> Int { starts[b + 1] - starts[b] }
    /// Each packed row's position in its sequence (t).
    public var positions: [Int] { rows.map { $0 % seqLen } }
    /// The packed row of each sequence's first token.
    public var firstRows: [Int] { Array(starts.dropLast()) }

    /// The packed rows of a padded per-row array [B·T · width] (ids, token types; dropout patterns).
    public func gather<T>(_ padded: [T], width: Int = 1) -> [T] {
        precondition(padded.count == batch * seqLen * width, "gather: \(padded.count) values for [\(batch * seqLen), \(width)]")
        if width == 1 { return rows.map { padded[$0] } }
        var out: [T] = []
        out.reserveCapacity(rows.count * width)
        for r in rows { out.append(contentsOf: padded[(r * width)..<((r + 1) * width)]) }
        return out
    }
}
