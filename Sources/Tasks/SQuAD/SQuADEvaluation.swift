/// Exact match and F1 of one evaluation: both ×100, averaged over `total` questions.
public struct SQuADScore: Equatable, Sendable {
    public let exactMatch: Double
    public let f1: Double
    public let total: Int

    public init(exactMatch: Double, f1: Double, total: Int) {
        self.exactMatch = exactMatch
        self.f1 = f1
        self.total = total
    }
}

/// The result of the official SQuAD evaluation.
public struct SQuADMetrics: Sendable {
    /// Over all questions (v1.1: `exact_match`, `f1`; v2.0: `exact`, `f1`, `total`).
    public let overall: SQuADScore
    /// v2.0 only: over the answerable questions (`HasAns_*`), nil when there are none or for v1.1.
    public let hasAnswer: SQuADScore?
    /// v2.0 only: over the unanswerable questions (`NoAns_*`), nil when there are none or for v1.1.
    public let noAnswer: SQuADScore?
    /// v1.1: ids with no prediction; they score 0 and count in the total, as in the official script.
    public let missing: [String]
}

/// The official SQuAD evaluation scripts (`evaluate-v1.1.py`, `evaluate-v2.0.py`), which Hugging Face's `squad` and
/// `squad_v2` metrics wrap, ported on Unicode scalars so that every string operation is Python's.
///
/// Answer normalisation: lower case (Python `str.lower`), drop ASCII punctuation (`string.punctuation`), replace the
/// words a / an / the (regex `\b(a|an|the)\b`, Unicode word boundaries) by a space, collapse whitespace
/// (`" ".join(s.split())`). EM compares normalised strings; F1 is the bag-of-tokens F1; both take the maximum over
/// the gold answers and are averaged ×100. v2.0: gold answers that normalise to "" are dropped, a question with no
/// gold answer has the gold answer "", and F1 is 1 when prediction and gold are both empty (so an unanswerable
/// question scores 1 iff the prediction is ""). The no-answer-probability threshold of the v2.0 script is not
/// ported: with its defaults (no `na_prob` file) it changes nothing.
public enum SQuADEvaluation {
    /// `normalize_answer` of the official scripts.
    public static func normalizeAnswer(_ s: String) -> String {
        SQuADText.string(normalizedTokens(s).joined(separator: [" "]))
    }

    /// `normalize_answer(s).split()` as scalar arrays (Python compares tokens by code points, not canonically).
    static func normalizedTokens(_ s: String) -> [[Unicode.Scalar]] {
        let lowered = SQuADText.lower(Array(s.unicodeScalars))
        let noPunctuation = lowered.filter { !isPunctuation($0) }
        // Remove articles: a maximal run of word characters that is exactly a, an or the becomes a space.
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(noPunctuation.count)
        var i = 0
        while i < noPunctuation.count {
            guard SQuADText.isWord(noPunctuation[i]) else { out.append(noPunctuation[i]); i += 1; continue }
            var j = i
            while j < noPunctuation.count && SQuADText.isWord(noPunctuation[j]) { j += 1 }
            let word = noPunctuation[i..<j]
            if word.elementsEqual(["a"]) || word.elementsEqual(["a", "n"]) || word.elementsEqual(["t", "h", "e"]) {
                out.append(" ")
            } else {
                out.append(contentsOf: word)
            }
            i = j
        }
        return SQuADText.split(out)
    }

    /// Python's `string.punctuation`: the 32 ASCII punctuation characters.
    private static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x21...0x2F, 0x3A...0x40, 0x5B...0x60, 0x7B...0x7E: return true
        default: return false
        }
    }

    /// `exact_match_score` / `compute_exact`: normalised strings equal, scalar for scalar.
    public static func exactMatch(prediction: String, groundTruth: String) -> Bool {
        normalizedTokens(prediction) == normalizedTokens(groundTruth)
    }

    /// v1.1 `f1_score`: 0 when no token is shared (also when either side is empty).
    public static func f1V1(prediction: String, groundTruth: String) -> Double {
        let p = normalizedTokens(prediction), g = normalizedTokens(groundTruth)
        return tokenF1(p, g)
    }

    /// v2.0 `compute_f1`: like v1.1, but 1 when both sides normalise to no tokens and 0 when only one does.
    public static func f1V2(prediction: String, groundTruth: String) -> Double {
        let p = normalizedTokens(prediction), g = normalizedTokens(groundTruth)
        if p.isEmpty || g.isEmpty { return p == g ? 1 : 0 }
        return tokenF1(p, g)
    }

    /// Bag-of-tokens F1 with the official scripts' order of operations (so the result is bit-identical).
    private static func tokenF1(_ prediction: [[Unicode.Scalar]], _ truth: [[Unicode.Scalar]]) -> Double {
        var counts: [[Unicode.Scalar]: Int] = [:]
        for t in truth { counts[t, default: 0] += 1 }
        var same = 0
        for t in prediction {
            if let c = counts[t], c > 0 { same += 1; counts[t] = c - 1 }
        }
        if same == 0 { return 0 }
        let precision = 1.0 * Double(same) / Double(prediction.count)
        let recall = 1.0 * Double(same) / Double(truth.count)
        return (2 * precision * recall) / (precision + recall)
    }

    /// The official v1.1 evaluation (`evaluate-v1.1.py`, HF `squad` metric): questions in file order, a missing
    /// prediction scores 0 and is listed in `missing`. Throws when a question has no gold answer (the official script
    /// would fail on it too): evaluate SQuAD v2.0 data with `evaluateV2`.
    public static func evaluateV1(_ dataset: SQuADDataset, predictions: [String: String]) throws -> SQuADMetrics {
        var exact = 0, f1 = 0.0, total = 0
        var missing: [String] = []
        for e in dataset.examples {
            total += 1
            guard let prediction = predictions[e.id] else { missing.append(e.id); continue }
            guard !e.answers.isEmpty else {
                throw SQuADError(file: dataset.source, path: e.path.isEmpty ? nil : e.path,
                                 "question \"\(e.id)\" has no gold answer; SQuAD v1.1 evaluation needs one "
                                 + "(evaluate v2.0 data as v2.0)")
            }
            let p = normalizedTokens(prediction)
            let golds = e.answers.map { normalizedTokens($0.text) }
            if golds.contains(where: { $0 == p }) { exact += 1 }
            f1 += golds.map { tokenF1(p, $0) }.max()!
        }
        let score = total == 0 ? SQuADScore(exactMatch: 0, f1: 0, total: 0)
            : SQuADScore(exactMatch: 100.0 * Double(exact) / Double(total), f1: 100.0 * f1 / Double(total), total: total)
        return SQuADMetrics(overall: score, hasAnswer: nil, noAnswer: nil, missing: missing)
    }

    /// The official v2.0 evaluation (`evaluate-v2.0.py`, HF `squad_v2` metric without no-answer probabilities):
    /// overall, HasAns and NoAns scores. Every question needs a prediction ("" = no answer); the official script
    /// fails on a missing one, and so does this (with the id).
    public static func evaluateV2(_ dataset: SQuADDataset, predictions: [String: String]) throws -> SQuADMetrics {
        var exact: [Double] = [], f1: [Double] = [], hasAnswer: [Bool] = []
        for e in dataset.examples {
            guard let prediction = predictions[e.id] else {
                throw SQuADError(file: dataset.source, path: e.path.isEmpty ? nil : e.path,
                                 "no prediction for question \"\(e.id)\"; expected one for every question "
                                 + "(\"\" for no answer)")
            }
            var golds = e.answers.map { normalizedTokens($0.text) }.filter { !$0.isEmpty }
            if golds.isEmpty { golds = [[]] }
            let p = normalizedTokens(prediction)
            exact.append(golds.contains(where: { $0 == p }) ? 1 : 0)
            f1.append(golds.map { g -> Double in
                if p.isEmpty || g.isEmpty { return p == g ? 1 : 0 }
                return tokenF1(p, g)
            }.max()!)
            hasAnswer.append(!e.answers.isEmpty)
        }
        func score(_ keep: (Int) -> Bool) -> SQuADScore? {
            let idx = exact.indices.filter(keep)
            guard !idx.isEmpty else { return nil }
            let e = idx.reduce(0.0) { $0 + exact[$1] }, f = idx.reduce(0.0) { $0 + f1[$1] }
            return SQuADScore(exactMatch: 100.0 * e / Double(idx.count), f1: 100.0 * f / Double(idx.count),
                              total: idx.count)
        }
        let overall = score { _ in true } ?? SQuADScore(exactMatch: 0, f1: 0, total: 0)
        return SQuADMetrics(overall: overall, hasAnswer: score { hasAnswer[$0] }, noAnswer: score { !hasAnswer[$0] },
                            missing: [])
    }

    /// `evaluateV2` for v2.0 data (`dataset.isVersion2`), `evaluateV1` otherwise.
    public static func evaluate(_ dataset: SQuADDataset, predictions: [String: String]) throws -> SQuADMetrics {
        dataset.isVersion2 ? try evaluateV2(dataset, predictions: predictions)
            : try evaluateV1(dataset, predictions: predictions)
    }
}
