import Foundation

/// Options of `SQuADPostprocessing.predictions`, with Hugging Face's (and CoFi's) defaults.
public struct SQuADPostprocessOptions: Sendable {
    /// How many top start and top end logits to pair up per feature, and how many answers to keep.
    public var nBestSize: Int = 20
    /// Longest answer in tokens (end − start + 1).
    public var maxAnswerLength: Int = 30
    /// SQuAD v2.0: allow the null (no) answer.
    public var version2WithNegative: Bool = false
    /// v2.0: predict "" when null score − best non-null score > this. Float, like the float32 scores it is compared with.
    public var nullScoreDiffThreshold: Float = 0

    public init(nBestSize: Int = 20, maxAnswerLength: Int = 30, version2WithNegative: Bool = false,
                nullScoreDiffThreshold: Float = 0) {
        self.nBestSize = nBestSize
        self.maxAnswerLength = maxAnswerLength
        self.version2WithNegative = version2WithNegative
        self.nullScoreDiffThreshold = nullScoreDiffThreshold
    }
}

/// One entry of an n-best list (HF `nbest_predictions.json`).
public struct SQuADCandidate: Sendable, Equatable {
    /// The answer text, `context[offsets]`; "" for the null answer; "empty" for HF's placeholder when there is no
    /// candidate at all.
    public let text: String
    /// Character span in the context (Unicode scalars); `0..<0` for the null answer and the placeholder.
    public let offsets: Range<Int>
    public let startLogit: Float
    public let endLogit: Float
    /// startLogit + endLogit (float32, as HF computes it).
    public let score: Float
    /// Softmax of the scores over the n-best list.
    public let probability: Float
}

/// The prediction for one question.
public struct SQuADPrediction: Sendable {
    public let id: String
    /// The predicted answer ("" = no answer, v2.0 only).
    public let text: String
    /// Candidates by decreasing score (v2.0: the null answer is always among them).
    public let nBest: [SQuADCandidate]
    /// v2.0: null score − best non-null score (HF `null_odds.json`); nil for v1.1.
    public let nullScoreDiff: Float?
}

/// `postprocess_qa_predictions` of Hugging Face's `utils_qa.py` (which CoFi's `utils/qa_utils.py` copies): turns the
/// start/end logits of every feature back into answer texts.
///
/// For each question, over all its features: the `nBestSize` highest start and end logits (an index sort; ties go
/// to the later position, as a reversed stable ascending sort would — numpy's unstable `argsort` leaves them
/// unspecified); pairs outside the context (nil offset), with end < start or longer than `maxAnswerLength` tokens
/// are dropped; score = start logit + end logit in float32; the candidates are sorted by score (stable, so equal
/// scores keep feature/start/end order) and cut to `nBestSize`. v2.0 adds the null answer of the feature with the
/// smallest `[CLS]` score (the first such feature) before sorting and re-appends it if the cut removed it, then
/// predicts "" when null score − (start + end logit of the best non-null candidate) > threshold. When there is no
/// candidate (or only the null one) a placeholder "empty" with score 0 comes first, as in HF. Probabilities are
/// the softmax of the n-best scores, in float32.
public enum SQuADPostprocessing {
    /// Predictions for `examples` in their order. `startLogits[f]` and `endLogits[f]` are the `[T]` logits of
    /// `features[f]`; features are matched to examples by id.
    public static func predictions(examples: [SQuADExample], features: [SQuADFeature], startLogits: [[Float]],
                                   endLogits: [[Float]],
                                   options: SQuADPostprocessOptions = SQuADPostprocessOptions()) throws -> [SQuADPrediction] {
        guard startLogits.count == features.count, endLogits.count == features.count else {
            throw SQuADError(file: "<post-processing>", "got \(startLogits.count) start and \(endLogits.count) end "
                             + "logit rows for \(features.count) features; expected one row per feature")
        }
        var indexOfId: [String: Int] = [:]
        for (i, e) in examples.enumerated() { indexOfId[e.id] = i }
        var featuresOf = Array(repeating: [Int](), count: examples.count)
        for (f, feature) in features.enumerated() {
            guard let e = indexOfId[feature.exampleId] else {
                throw SQuADError(file: "<post-processing>", "feature \(f) belongs to question \"\(feature.exampleId)\", "
                                 + "which is not among the examples")
            }
            featuresOf[e].append(f)
        }
        return try examples.indices.map { e in
            try predict(examples[e], features: features, featureIndices: featuresOf[e], startLogits: startLogits,
                        endLogits: endLogits, options: options)
        }
    }

    /// The predicted texts by question id, as the evaluation takes them.
    public static func answers(_ predictions: [SQuADPrediction]) -> [String: String] {
        Dictionary(predictions.map { ($0.id, $0.text) }, uniquingKeysWith: { first, _ in first })
    }

    private struct Raw {
        var offsets: Range<Int>
        var startLogit: Float
        var endLogit: Float
        var score: Float
    }

    /// Indices of the `n` largest values, largest first; ties: the later index first.
    static func topIndices(_ values: [Float], _ n: Int) -> [Int] {
        let sorted = values.indices.sorted { a, b in values[a] != values[b] ? values[a] > values[b] : a > b }
        return Array(sorted.prefix(max(0, n)))
    }

    private static func predict(_ example: SQuADExample, features: [SQuADFeature], featureIndices: [Int],
                                startLogits: [[Float]], endLogits: [[Float]],
                                options: SQuADPostprocessOptions) throws -> SQuADPrediction {
        var minNull: Raw? = nil
        var prelim: [Raw] = []
        for f in featureIndices {
            let start = startLogits[f], end = endLogits[f]
            let offsets = features[f].offsets
            guard !start.isEmpty, !end.isEmpty else {
                throw SQuADError(file: "<post-processing>", "feature \(f) has empty logits")
            }
            let nullScore = start[0] + end[0]
            if minNull == nil || minNull!.score > nullScore {
                minNull = Raw(offsets: 0..<0, startLogit: start[0], endLogit: end[0], score: nullScore)
            }
            let endIndexes = topIndices(end, options.nBestSize)
            for s in topIndices(start, options.nBestSize) {
                for t in endIndexes {
                    guard s < offsets.count, t < offsets.count, let so = offsets[s], let eo = offsets[t] else { continue }
                    if t < s || t - s + 1 > options.maxAnswerLength { continue }
                    prelim.append(Raw(offsets: so.lowerBound..<max(so.lowerBound, eo.upperBound), startLogit: start[s],
                                      endLogit: end[t], score: start[s] + end[t]))
                }
            }
        }
        let v2 = options.version2WithNegative
        if v2 {
            guard let null = minNull else {
                throw SQuADError(file: "<post-processing>", path: example.path.isEmpty ? nil : example.path,
                                 "question \"\(example.id)\" has no features; expected at least one")
            }
            prelim.append(null)
        }
        // Stable sort by decreasing score (Python's sorted(..., reverse=True) keeps the order of equal keys).
        var best = prelim.enumerated().sorted { a, b in
            a.element.score != b.element.score ? a.element.score > b.element.score : a.offset < b.offset
        }.prefix(max(0, options.nBestSize)).map { $0.element }
        if v2, let null = minNull, !best.contains(where: { $0.offsets == 0..<0 }) { best.append(null) }

        let context = example.context
        var texts = best.map { SQuADText.slice(context, $0.offsets.lowerBound, $0.offsets.upperBound) }
        if best.isEmpty || (best.count == 1 && texts[0].isEmpty) {
            best.insert(Raw(offsets: 0..<0, startLogit: 0, endLogit: 0, score: 0), at: 0)
            texts.insert("empty", at: 0)
        }
        let maxScore = best.map(\.score).max()!
        let exps = best.map { Foundation.exp($0.score - maxScore) }
        let total = exps.reduce(Float(0), +)
        let nBest = best.indices.map { i in
            SQuADCandidate(text: texts[i], offsets: best[i].offsets, startLogit: best[i].startLogit,
                           endLogit: best[i].endLogit, score: best[i].score, probability: exps[i] / total)
        }
        guard v2, let null = minNull else {
            return SQuADPrediction(id: example.id, text: nBest[0].text, nBest: nBest, nullScoreDiff: nil)
        }
        guard let firstNonNull = nBest.firstIndex(where: { !$0.text.isEmpty }) else {
            throw SQuADError(file: "<post-processing>", path: example.path.isEmpty ? nil : example.path,
                             "question \"\(example.id)\": no non-empty candidate")
        }
        let diff = null.score - nBest[firstNonNull].startLogit - nBest[firstNonNull].endLogit
        let text = diff > options.nullScoreDiffThreshold ? "" : nBest[firstNonNull].text
        return SQuADPrediction(id: example.id, text: text, nBest: nBest, nullScoreDiff: diff)
    }
}
