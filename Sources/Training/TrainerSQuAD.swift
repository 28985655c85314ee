import BERT
import Foundation
import Tasks
import Tensor

/// SQuAD features as training data: each epoch is a seeded permutation of the features (`Xoshiro256(seed &+ epoch)`,
/// as `Batcher` shuffles), cut into batches of `batchSize`, the last one partial; each batch is padded to its
/// longest feature and carries the span labels.
public struct SQuADTrainingData: TrainingData {
    public let features: [SQuADFeature]
    public let batchSize: Int
    public let seed: UInt64
    public let padId: Int

    public init(features: [SQuADFeature], batchSize: Int, seed: UInt64, padId: Int) {
        precondition(batchSize > 0, "batchSize must be positive")
        self.features = features
        self.batchSize = batchSize
        self.seed = seed
        self.padId = padId
    }

    public var exampleCount: Int { features.count }
    public var batchCount: Int { (features.count + batchSize - 1) / batchSize }

    public func order(epoch: Int) -> [[Int]] {
        var rng = Xoshiro256(seed: seed &+ UInt64(truncatingIfNeeded: epoch))
        let permutation = SeededShuffle.permutation(features.count, using: &rng)
        return stride(from: 0, to: permutation.count, by: batchSize).map {
            Array(permutation[$0..<min($0 + batchSize, permutation.count)])
        }
    }

    public func trainingBatch(_ positions: [Int]) -> TrainingBatch {
        let b = SQuADBatch.make(features, indices: positions, padId: padId)
        return TrainingBatch(inputs: b.inputs, targets: .spans(start: b.startPositions, end: b.endPositions),
                             indices: b.featureIndices)
    }
}

/// SQuAD evaluation as Hugging Face's `run_qa.py` does it: start and end logits of every feature, the n-best
/// post-processing into one answer per question, then the official v1.1 or v2.0 scores (exact match and F1, ×100).
/// The primary metric is F1.
public final class SQuADEvaluator: Evaluator {
    public let dataset: SQuADDataset
    public let features: [SQuADFeature]
    public let batchSize: Int
    public let padId: Int
    public let options: SQuADPostprocessOptions
    public var primaryName: String { "f1" }
    /// In a data-parallel run, every rank computes the logits of the batches `rank, rank + N, …` and the ranks sum
    /// them (zeros elsewhere): every feature gets a single process's logits. Nil computes every batch here.
    public var group: ProcessGroup?

    public init(dataset: SQuADDataset, features: [SQuADFeature], padId: Int, batchSize: Int = 32,
                options: SQuADPostprocessOptions? = nil) {
        precondition(batchSize > 0, "batchSize must be positive")
        self.dataset = dataset
        self.features = features
        self.batchSize = batchSize
        self.padId = padId
        self.options = options ?? SQuADPostprocessOptions(version2WithNegative: dataset.isVersion2)
    }

    /// The start and end logits `[T]` of every feature, in feature order.
    public func logits(model: BertModel) -> (start: [[Float]], end: [[Float]]) {
        var start = [[Float]](repeating: [], count: features.count), end = start
        withoutGradients {
            for (i, batch) in SQuADBatch.batches(features, size: batchSize, padId: padId).enumerated() {
                if let group, i % group.size != group.rank { continue }
                var mode = ForwardMode.inference
                let out = model(batch.inputs, mode: &mode)
                guard let s = out.startLogits?.value, let e = out.endLogits?.value else {
                    preconditionFailure("SQuAD evaluation needs a span head")
                }
                let T = batch.inputs.seqLen
                for (row, f) in batch.featureIndices.enumerated() {
                    // Padding beyond the feature's own length is dropped, so rows match the feature's offsets.
                    let n = features[f].length
                    start[f] = Array(s.scalars[(row * T)..<(row * T + n)])
                    end[f] = Array(e.scalars[(row * T)..<(row * T + n)])
                }
            }
        }
        if let group {
            var flat = [Float]()
            flat.reserveCapacity(2 * features.reduce(0) { $0 + $1.length })
            for (f, feature) in features.enumerated() {
                flat += start[f].isEmpty ? [Float](repeating: 0, count: feature.length) : start[f]
                flat += end[f].isEmpty ? [Float](repeating: 0, count: feature.length) : end[f]
            }
            flat.withUnsafeMutableBufferPointer { group.allReduceSum($0) }
            var at = 0
            for (f, feature) in features.enumerated() {
                start[f] = Array(flat[at..<(at + feature.length)]); at += feature.length
                end[f] = Array(flat[at..<(at + feature.length)]); at += feature.length
            }
        }
        return (start, end)
    }

    public func evaluate(model: BertModel) throws -> EvaluationResult {
        let (start, end) = logits(model: model)
        let predictions = try SQuADPostprocessing.predictions(examples: dataset.examples, features: features,
                                                              startLogits: start, endLogits: end, options: options)
        let scores = try SQuADEvaluation.evaluate(dataset, predictions: SQuADPostprocessing.answers(predictions))
        let exactName = dataset.isVersion2 ? "exact" : "exact_match"
        return EvaluationResult(metrics: [(exactName, scores.overall.exactMatch), ("f1", scores.overall.f1)],
                                primaryName: "f1", primary: scores.overall.f1, examples: dataset.examples.count)
    }
}
