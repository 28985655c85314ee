import BERT
import Foundation
import Tasks
import Tensor

/// The scores of one evaluation, as the trainer logs them and picks the best checkpoint by.
public struct EvaluationResult: Sendable {
    /// Every reported metric in the task's order (Hugging Face names: "accuracy", "f1", …).
    public var metrics: [(name: String, value: Double)]
    /// The score the best checkpoint is chosen by (higher is better).
    public var primaryName: String
    public var primary: Double
    /// Mean loss over the evaluated examples, when the evaluator computes one.
    public var loss: Double?
    /// Examples evaluated.
    public var examples: Int
    /// Whether this evaluation may become the best checkpoint (CoFi's sparsity gate, cofi-spec §4); true for plain
    /// fine-tuning.
    public var eligibleForBest: Bool

    public init(metrics: [(name: String, value: Double)], primaryName: String, primary: Double, loss: Double? = nil,
                examples: Int, eligibleForBest: Bool = true) {
        self.metrics = metrics
        self.primaryName = primaryName
        self.primary = primary
        self.loss = loss
        self.examples = examples
        self.eligibleForBest = eligibleForBest
    }

    /// Whether this result replaces `best` as the best so far: eligible, finite, and higher than `best` if any.
    public func improves(on best: Double?) -> Bool {
        eligibleForBest && primary.isFinite && (best.map { primary > $0 } ?? true)
    }

    /// A task metric report as a result.
    public init(report: MetricReport, loss: Double?, examples: Int) {
        var metrics = report.values.map { (name: $0.0.rawValue, value: $0.1) }
        if !metrics.contains(where: { $0.name == report.primaryName }) {
            metrics.append((name: report.primaryName, value: report.primary))  // STS-B's combined "corr"
        }
        self.init(metrics: metrics, primaryName: report.primaryName, primary: report.primary, loss: loss,
                  examples: examples)
    }

    /// "accuracy 0.8530, f1 0.8411" (four decimals).
    public var summary: String {
        metrics.map { "\($0.name) \(String(format: "%.4f", $0.value))" }.joined(separator: ", ")
    }
}

/// Scores a model during training; the trainer calls it every `evalSteps` and at each epoch's end.
public protocol Evaluator: AnyObject {
    /// The name of the primary score (higher is better).
    var primaryName: String { get }
    /// Evaluates `model` in inference mode (no dropout, no gradients); an error stops the run.
    func evaluate(model: BertModel) throws -> EvaluationResult
}

/// Evaluation on a labeled sequence-level dev set with the task's metric (`MetricSpec`): classification takes the
/// arg-max class (the first on ties, as `torch.argmax`), regression the single output.
///
/// Batches are sorted by length within chunks (`LengthBucketing`) so that they pad less; predictions are put back
/// in dataset order, so the scores do not depend on it.
public final class TaskEvaluator: Evaluator {
    public let batcher: Batcher
    public let kind: LabelKind
    public let metricSpec: MetricSpec
    public var primaryName: String { metricSpec.primaryName }
    /// In a data-parallel run, every rank evaluates the batches `rank, rank + N, …` and the ranks sum their
    /// predictions (zeros elsewhere) and losses: each example's prediction is the one a single process makes (same
    /// batch, same padding), so the metric is too. Nil evaluates every batch here.
    public var group: ProcessGroup?

    /// `examples` must all be labeled, with labels of `kind`.
    public init(examples: [EncodedExample], padId: Int, kind: LabelKind, metrics: MetricSpec, batchSize: Int = 32) {
        precondition(examples.allSatisfy { $0.label != nil }, "evaluation needs labeled examples")
        self.batcher = Batcher(examples: examples, padId: padId,
                               options: BatchingOptions(batchSize: batchSize, shuffle: false, bucketing: LengthBucketing()))
        self.kind = kind
        self.metricSpec = metrics
    }

    /// Encodes `dataset` with `encoder`; throws `TrainerError` for a dataset without labels or examples.
    public convenience init(dataset: TaskDataset, encoder: TaskEncoder, batchSize: Int = 32) throws {
        guard !dataset.examples.isEmpty else {
            throw TrainerError("the evaluation set '\(dataset.name)' has no examples")
        }
        guard dataset.isLabeled else {
            throw TrainerError("the evaluation set '\(dataset.name)' has unlabeled examples; evaluation needs labels")
        }
        guard batchSize > 0 else { throw TrainerError("evaluation batch size is \(batchSize); expected a positive number") }
        self.init(examples: encoder.encode(dataset), padId: encoder.padId, kind: dataset.kind,
                  metrics: dataset.metrics, batchSize: batchSize)
    }

    /// Predictions in the order of `batcher.examples`, and the mean task loss over them.
    public func predict(model: BertModel) -> (predictions: [Label], loss: Double) {
        let n = batcher.examples.count
        var predictions = [Label?](repeating: nil, count: n)
        var lossSum = 0.0
        withoutGradients {
            for (i, positions) in batcher.order(epoch: 0).enumerated() {
                if let group, i % group.size != group.rank { continue }
                let batch = batcher.trainingBatch(positions)
                var mode = ForwardMode.inference
                let out = model(batch.inputs, mode: &mode)
                guard let logits = out.logits?.value else { preconditionFailure("evaluation needs a sequence-level head") }
                if let targets = batch.targets {
                    lossSum += Double(TaskLossObjective.loss(out, targets: targets, seqLen: batch.inputs.seqLen).value.scalar)
                        * Double(batch.size)
                }
                let C = logits.shape.last ?? 1
                for (row, position) in positions.enumerated() {
                    let scores = logits.scalars[(row * C)..<(row * C + C)]
                    if kind.isRegression {
                        predictions[position] = .regression(Double(scores.first!))
                    } else {
                        var best = scores.startIndex
                        for i in scores.indices where scores[i] > scores[best] { best = i }
                        predictions[position] = .classification(best - scores.startIndex)
                    }
                }
            }
        }
        if let group {
            // Class indices and regression values are exact as doubles; each is added to the other ranks' zeros.
            var values = (0..<n).map { i -> Double in
                guard let p = predictions[i] else { return 0 }
                switch p {
                case .classification(let k): return Double(k)
                case .regression(let v): return v
                }
            }
            values.append(lossSum)
            values = group.allReduceSum(values)
            lossSum = values[n]
            predictions = (0..<n).map { kind.isRegression ? .regression(values[$0]) : .classification(Int(values[$0])) }
        }
        return (predictions.map { $0! }, n == 0 ? .nan : lossSum / Double(n))
    }

    public func evaluate(model: BertModel) -> EvaluationResult {
        let (predictions, loss) = predict(model: model)
        let references = batcher.examples.map { $0.label! }
        let report = metricSpec.evaluate(predictions: predictions, references: references)
        return EvaluationResult(report: report, loss: loss, examples: references.count)
    }
}
