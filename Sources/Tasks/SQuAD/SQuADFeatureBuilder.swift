/// How SQuAD questions become windows (HF `run_qa.py` arguments).
public struct SQuADFeatureOptions: Sendable {
    /// Tokens per feature, special tokens included (`max_seq_length`).
    public var maxLength: Int = 384
    /// Context tokens shared by consecutive windows of one question (`doc_stride`; HF's `stride`, which is an
    /// overlap, not a step: the window start advances by (maxLength − 3 − question tokens) − stride).
    public var stride: Int = 128
    /// Pad every feature to `maxLength` (`pad_to_max_length`, on by default in `run_qa.py`).
    public var padToMaxLength: Bool = true

    public init(maxLength: Int = 384, stride: Int = 128, padToMaxLength: Bool = true) {
        self.maxLength = maxLength
        self.stride = stride
        self.padToMaxLength = padToMaxLength
    }
}

extension SQuADFeature {
    /// The features of `examples`, in example order and window order, exactly as HF `run_qa.py` (transformers 4.17,
    /// what CoFi used) builds them with a fast BERT tokenizer: `tokenizer(question.lstrip(), context,
    /// truncation="only_second", max_length, stride, return_overflowing_tokens=True, return_offsets_mapping=True,
    /// padding="max_length")`, then `prepare_train_features`' labels and `prepare_validation_features`' offsets.
    ///
    /// Windows: with q question tokens the context gets n = maxLength − 3 − q tokens per window; windows start at
    /// 0, n − stride, 2(n − stride), … and the last one is the first to reach the end of the context, so
    /// consecutive windows share exactly `stride` tokens. A context that fits gives one window.
    ///
    /// Labels (`startPosition`, `endPosition`) follow HF to the letter, including one quirk: when the first answer
    /// begins in the last context token of a window, HF's forward scan runs on through `[SEP]` and padding (their
    /// offsets are (0, 0)) and labels the start as the last position of the feature (so start > end). We keep it,
    /// so that training sees the same labels as HF.
    ///
    /// Throws, as HF does, when a question leaves no room for the context (n ≤ 0) or when n ≤ stride, if the
    /// context has to be split.
    public static func make(examples: [SQuADExample], tokenizer: WordPieceTokenizer,
                            options: SQuADFeatureOptions = SQuADFeatureOptions(),
                            source: String = "<examples>") throws -> [SQuADFeature] {
        var features: [SQuADFeature] = []
        var lastContext: String? = nil
        var contextTokens: [Token] = []
        for (index, example) in examples.enumerated() {
            if lastContext == nil || lastContext! != example.context
                || !lastContext!.unicodeScalars.elementsEqual(example.context.unicodeScalars) {
                contextTokens = tokenizer.tokenize(example.context)
                lastContext = example.context
            }
            let question = tokenizer.tokenize(SQuADText.lstrip(example.question))
            for window in try windows(contextCount: contextTokens.count, questionCount: question.count,
                                      options: options, example: example, source: source) {
                let e = tokenizer.encode(tokensA: question, tokensB: Array(contextTokens[window]),
                                         maxLength: options.maxLength, truncation: .none,
                                         padToMaxLength: options.padToMaxLength)
                let (start, end) = labels(e, answer: example.answers.first)
                features.append(SQuADFeature(
                    exampleIndex: index, exampleId: example.id, inputIds: e.ids, tokenTypeIds: e.typeIds,
                    attentionMask: e.attentionMask,
                    offsets: e.offsets.indices.map { e.sequenceIds[$0] == 1 ? e.offsets[$0] : nil },
                    startPosition: start, endPosition: end))
            }
        }
        return features
    }

    /// `make(examples:…)` for all questions of a dataset, naming its file in errors.
    public static func make(dataset: SQuADDataset, tokenizer: WordPieceTokenizer,
                            options: SQuADFeatureOptions = SQuADFeatureOptions()) throws -> [SQuADFeature] {
        try make(examples: dataset.examples, tokenizer: tokenizer, options: options, source: dataset.source)
    }

    /// Context token ranges of the windows (tokenizers' `Encoding::truncate` with a stride, direction right).
    static func windows(contextCount: Int, questionCount: Int, options: SQuADFeatureOptions, example: SQuADExample,
                        source: String) throws -> [Range<Int>] {
        let n = options.maxLength - 3 - questionCount
        if contextCount <= n { return [0..<contextCount] }
        func fail(_ message: String) -> SQuADError {
            SQuADError(file: source, path: example.path.isEmpty ? nil : example.path,
                       "question \"\(example.id)\": \(message)")
        }
        guard n > 0 else {
            throw fail("its \(questionCount) tokens leave no room for the context in max length "
                       + "\(options.maxLength) (3 special tokens); expected a shorter question or a larger max length")
        }
        guard options.stride < n else {
            throw fail("stride \(options.stride) must be less than the \(n) context tokens per window (max length "
                       + "\(options.maxLength) − 3 special tokens − \(questionCount) question tokens)")
        }
        var ranges: [Range<Int>] = []
        var start = 0
        while true {
            let stop = min(start + n, contextCount)
            ranges.append(start..<stop)
            if stop == contextCount { return ranges }
            start += n - options.stride
        }
    }

    /// `prepare_train_features`: the first answer's first and last token when the window holds all of it, else 0.
    /// Offsets of special and padding tokens count as (0, 0), as in HF.
    static func labels(_ e: Encoding, answer: SQuADAnswer?) -> (Int, Int) {
        let cls = 0
        guard let answer = answer, let first = e.sequenceIds.firstIndex(of: 1),
              let last = e.sequenceIds.lastIndex(of: 1) else { return (cls, cls) }
        let startChar = answer.start, endChar = answer.end
        func offset(_ k: Int) -> Range<Int> { e.offsets[k] ?? 0..<0 }
        guard offset(first).lowerBound <= startChar && offset(last).upperBound >= endChar else { return (cls, cls) }
        var s = first
        while s < e.count && offset(s).lowerBound <= startChar { s += 1 }
        var t = last
        while t >= 0 && offset(t).upperBound >= endChar { t -= 1 }
        return (s - 1, t + 1)
    }
}
