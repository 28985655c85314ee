import BERT

/// One model input window of one SQuAD question: `[CLS] question [SEP] context window [SEP] [PAD]…`, as Hugging
/// Face `run_qa.py` builds it (`prepare_train_features` and `prepare_validation_features` in one: every feature
/// has both the training labels and the evaluation offsets).
public struct SQuADFeature: Sendable {
    /// Index of the question in the examples the feature was built from.
    public let exampleIndex: Int
    /// The question's id (`example_id` in HF).
    public let exampleId: String
    /// `[T]` token ids, type ids (0 for `[CLS]` question `[SEP]`, 1 for the context and its `[SEP]`, 0 for padding)
    /// and attention mask (1 for real tokens).
    public var inputIds: [Int]
    public var tokenTypeIds: [Int]
    public var attentionMask: [Int]
    /// `[T]` character span of each context token in the context, in Unicode scalars; nil for the question, the
    /// special tokens and padding (HF sets these to None in evaluation features).
    public var offsets: [Range<Int>?]
    /// Training labels (HF `start_positions` / `end_positions`): the first and last token of the first gold answer
    /// when it lies wholly inside this window; both 0 (`[CLS]`) when it does not, or when the question has no answer.
    public var startPosition: Int
    public var endPosition: Int

    public init(exampleIndex: Int, exampleId: String, inputIds: [Int], tokenTypeIds: [Int], attentionMask: [Int],
                offsets: [Range<Int>?], startPosition: Int = 0, endPosition: Int = 0) {
        precondition(tokenTypeIds.count == inputIds.count && attentionMask.count == inputIds.count
                     && offsets.count == inputIds.count, "a feature's arrays must all have one entry per token")
        self.exampleIndex = exampleIndex
        self.exampleId = exampleId
        self.inputIds = inputIds
        self.tokenTypeIds = tokenTypeIds
        self.attentionMask = attentionMask
        self.offsets = offsets
        self.startPosition = startPosition
        self.endPosition = endPosition
    }

    /// Number of positions T (padding included).
    public var length: Int { inputIds.count }
}

/// A batch of SQuAD features: the encoder input `[B, T]` and the span labels `[B]`.
public struct SQuADBatch {
    public let inputs: BertBatch
    public let startPositions: [Int]
    public let endPositions: [Int]
    /// Which features (indices into the array given to `make`) the rows are, in row order.
    public let featureIndices: [Int]

    /// Stacks the features at `indices` (in that order) into one batch, padding every row to the longest with
    /// `padId` (type id 0, attention 0). Features built with `padToMaxLength` all have the same length already.
    public static func make(_ features: [SQuADFeature], indices: [Int], padId: Int = 0) -> SQuADBatch {
        precondition(!indices.isEmpty, "a batch needs at least one feature")
        let T = indices.map { features[$0].length }.max()!
        var ids: [Int] = [], types: [Int] = [], mask: [Int] = []
        ids.reserveCapacity(indices.count * T)
        types.reserveCapacity(indices.count * T)
        mask.reserveCapacity(indices.count * T)
        for i in indices {
            let f = features[i]
            let pad = T - f.length
            ids += f.inputIds + Array(repeating: padId, count: pad)
            types += f.tokenTypeIds + Array(repeating: 0, count: pad)
            mask += f.attentionMask + Array(repeating: 0, count: pad)
        }
        return SQuADBatch(inputs: BertBatch(batch: indices.count, seqLen: T, inputIds: ids, attentionMask: mask,
                                            tokenTypeIds: types),
                          startPositions: indices.map { features[$0].startPosition },
                          endPositions: indices.map { features[$0].endPosition },
                          featureIndices: indices)
    }

    /// Consecutive batches of at most `size` features in the given order (all features, in file order, when
    /// `order` is nil) — e.g. for evaluation; pass a shuffled permutation for training.
    public static func batches(_ features: [SQuADFeature], size: Int, order: [Int]? = nil,
                               padId: Int = 0) -> [SQuADBatch] {
        precondition(size > 0, "batch size must be positive")
        let order = order ?? Array(features.indices)
        return stride(from: 0, to: order.count, by: size).map {
            make(features, indices: Array(order[$0..<min($0 + size, order.count)]), padId: padId)
        }
    }
}
