import Foundation

/// The metrics a task can report. Raw values are the names Hugging Face `evaluate`'s GLUE metric uses.
public enum MetricKind: String, CaseIterable, Sendable {
    case accuracy
    /// Binary F1 of class 1.
    case f1
    case matthewsCorrelation = "matthews_correlation"
    case pearson
    case spearman = "spearmanr"
}

/// The metrics one task reports and the single number used to pick the best checkpoint.
///
/// The primary score is the mean of `primaryOf`. It is the first reported metric for every task except STS-B, whose
/// primary score is the mean of Pearson and Spearman, named `corr`: that is transformers' `pearson_and_spearman`
/// and the key CoFi's trainer selects on (`glue_tasks["stsb"] = "corr"`). For MRPC and QQP the primary score is
/// accuracy, again as in CoFi's trainer.
public struct MetricSpec: Hashable, Sendable {
    public var reported: [MetricKind]
    public var primaryName: String
    public var primaryOf: [MetricKind]

    public init(reported: [MetricKind], primaryName: String? = nil, primaryOf: [MetricKind]? = nil) {
        precondition(!reported.isEmpty, "a task reports at least one metric")
        let of = primaryOf ?? [reported[0]]
        precondition(of.allSatisfy(reported.contains), "the primary score combines reported metrics")
        self.reported = reported
        self.primaryOf = of
        self.primaryName = primaryName ?? (of.count == 1 ? of[0].rawValue : of.map(\.rawValue).joined(separator: "+"))
    }

    public static let accuracy = MetricSpec(reported: [.accuracy])
    public static let accuracyAndF1 = MetricSpec(reported: [.accuracy, .f1])
    public static let matthews = MetricSpec(reported: [.matthewsCorrelation])
    public static let pearsonSpearman = MetricSpec(reported: [.pearson, .spearman], primaryName: "corr",
                                                   primaryOf: [.pearson, .spearman])

    /// Scores predictions against gold labels. Classification metrics need class labels on both sides; Pearson and
    /// Spearman use `Label.value`. Empty input gives NaN everywhere.
    public func evaluate(predictions: [Label], references: [Label]) -> MetricReport {
        precondition(predictions.count == references.count, "one prediction per reference")
        func classes(_ labels: [Label], _ what: String) -> [Int] {
            labels.map { l in
                guard let k = l.classIndex else { preconditionFailure("\(what): a classification metric needs class labels") }
                return k
            }
        }
        var values: [(MetricKind, Double)] = []
        for kind in reported {
            let v: Double
            switch kind {
            case .accuracy:
                v = Metrics.accuracy(predictions: classes(predictions, "predictions"),
                                     references: classes(references, "references"))
            case .f1:
                v = Metrics.f1(predictions: classes(predictions, "predictions"), references: classes(references, "references"))
            case .matthewsCorrelation:
                v = Metrics.matthewsCorrelation(predictions: classes(predictions, "predictions"),
                                                references: classes(references, "references"))
            case .pearson:
                v = Metrics.pearson(predictions.map(\.value), references.map(\.value))
            case .spearman:
                v = Metrics.spearman(predictions.map(\.value), references.map(\.value))
            }
            values.append((kind, v))
        }
        let parts = primaryOf.map { k in values.first { $0.0 == k }!.1 }
        return MetricReport(values: values, primaryName: primaryName,
                            primary: parts.reduce(0, +) / Double(parts.count))
    }
}

/// The scores of one evaluation.
public struct MetricReport: Sendable, CustomStringConvertible {
    /// Every reported metric, in the task's order.
    public var values: [(MetricKind, Double)]
    public var primaryName: String
    /// The score for picking the best checkpoint. NaN when undefined (for example Pearson of constant predictions);
    /// NaN compares false with everything, so it never counts as an improvement.
    public var primary: Double

    public subscript(kind: MetricKind) -> Double? { values.first { $0.0 == kind }?.1 }

    public var description: String {
        let shown = values.map { "\($0.0.rawValue) \(String(format: "%.4f", $0.1))" }.joined(separator: ", ")
        // A combined primary score (STS-B's "corr") is shown after the metrics it combines.
        return values.contains { $0.0.rawValue == primaryName }
            ? shown : "\(shown), \(primaryName) \(String(format: "%.4f", primary))"
    }
}

/// Metric functions, computed in Double, matching scikit-learn and scipy including their degenerate cases
/// (checked against `Tests/TasksTests/Fixtures/metrics.json`, written by `scripts/reference/make_metrics_golden.py`).
///
/// Where the references raise instead (empty input; fewer than two points for a correlation) these return NaN.
public enum Metrics {
    /// Fraction of predictions equal to the reference (`sklearn.metrics.accuracy_score`).
    public static func accuracy(predictions: [Int], references: [Int]) -> Double {
        precondition(predictions.count == references.count, "one prediction per reference")
        guard !predictions.isEmpty else { return .nan }
        let correct = zip(predictions, references).reduce(0) { $0 + ($1.0 == $1.1 ? 1 : 0) }
        return Double(correct) / Double(predictions.count)
    }

    /// F1 of the class `positive` against all others (`f1_score(average="binary", pos_label=1)`):
    /// 2·TP / (2·TP + FP + FN), and 0 when that denominator is 0 (no positive anywhere), as scikit-learn's default
    /// `zero_division` gives.
    public static func f1(predictions: [Int], references: [Int], positive: Int = 1) -> Double {
        precondition(predictions.count == references.count, "one prediction per reference")
        guard !predictions.isEmpty else { return .nan }
        var tp = 0, fp = 0, fn = 0
        for (p, r) in zip(predictions, references) {
            if p == positive && r == positive { tp += 1 } else if p == positive { fp += 1 } else if r == positive { fn += 1 }
        }
        let denominator = 2 * tp + fp + fn
        return denominator == 0 ? 0 : Double(2 * tp) / Double(denominator)
    }

    /// Matthews correlation coefficient for any number of classes (`sklearn.metrics.matthews_corrcoef`, from the
    /// confusion matrix C): (c·s − Σ_k p_k t_k) / √((s² − Σ p_k²)(s² − Σ t_k²)) with c = trace, s = samples,
    /// p, t = predicted and true class counts; 0 when the denominator is 0 (one class only, on either side).
    public static func matthewsCorrelation(predictions: [Int], references: [Int]) -> Double {
        precondition(predictions.count == references.count, "one prediction per reference")
        guard !predictions.isEmpty else { return .nan }
        var predicted: [Int: Int] = [:], truth: [Int: Int] = [:]
        var correct = 0
        for (p, r) in zip(predictions, references) {
            predicted[p, default: 0] += 1
            truth[r, default: 0] += 1
            if p == r { correct += 1 }
        }
        let s = Double(predictions.count)
        let pt = predicted.reduce(0.0) { $0 + Double($1.value) * Double(truth[$1.key] ?? 0) }
        let pp = predicted.values.reduce(0.0) { $0 + Double($1) * Double($1) }
        let tt = truth.values.reduce(0.0) { $0 + Double($1) * Double($1) }
        let covPT = Double(correct) * s - pt
        let covPP = s * s - pp
        let covTT = s * s - tt
        guard covPP * covTT != 0 else { return 0 }
        return covPT / (covTT * covPP).squareRoot()
    }

    /// Pearson correlation (`scipy.stats.pearsonr`): centred, normalised dot product, clipped to [−1, 1].
    /// NaN for a constant input (scipy returns NaN with a ConstantInputWarning) and for fewer than two points.
    public static func pearson(_ x: [Double], _ y: [Double]) -> Double {
        precondition(x.count == y.count, "x and y have the same length")
        guard x.count >= 2 else { return .nan }
        let n = Double(x.count)
        let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
        var sxx = 0.0, syy = 0.0, sxy = 0.0
        for (a, b) in zip(x, y) {
            let dx = a - mx, dy = b - my
            sxx += dx * dx
            syy += dy * dy
            sxy += dx * dy
        }
        // scipy tests constancy exactly (every value equal to the first), not by a variance threshold.
        guard x.contains(where: { $0 != x[0] }), y.contains(where: { $0 != y[0] }) else { return .nan }
        let r = sxy / (sxx.squareRoot() * syy.squareRoot())
        return Swift.max(-1, Swift.min(1, r))
    }

    /// Spearman rank correlation (`scipy.stats.spearmanr`): Pearson of the ranks, tied values sharing their average
    /// rank. NaN when either input is constant or has fewer than two points.
    public static func spearman(_ x: [Double], _ y: [Double]) -> Double {
        precondition(x.count == y.count, "x and y have the same length")
        return pearson(averageRanks(x), averageRanks(y))
    }

    /// 1-based ranks with ties given the mean of the ranks they span (`scipy.stats.rankdata(method="average")`).
    public static func averageRanks(_ x: [Double]) -> [Double] {
        let order = x.indices.sorted { x[$0] < x[$1] || (x[$0] == x[$1] && $0 < $1) }
        var ranks = [Double](repeating: 0, count: x.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && x[order[j + 1]] == x[order[i]] { j += 1 }
            let rank = Double(i + j) / 2 + 1
            for k in i...j { ranks[order[k]] = rank }
            i = j + 1
        }
        return ranks
    }
}
