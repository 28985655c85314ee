import Foundation

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
            for batch in SQuADBatch.batches(features, size: batchSize, padId: padId) {
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

/// The SQuAD task on the command line: "squad" (v1.1: `train-v1.1.json`, `dev-v1.1.json`) or "squad_v2" (v2.0:
/// `train-v2.0.json`, `dev-v2.0.json`), the official files in one folder.
public struct SQuADSource: Sendable {
    public let version2: Bool
    public let directory: URL

    public var name: String { version2 ? "squad_v2" : "squad" }
    public var trainFile: URL { directory.appendingPathComponent(version2 ? "train-v2.0.json" : "train-v1.1.json") }
    public var devFile: URL { directory.appendingPathComponent(version2 ? "dev-v2.0.json" : "dev-v1.1.json") }

    public init(version2: Bool, directory: URL) {
        self.version2 = version2
        self.directory = directory
    }

    /// The source for a task name ("squad", "squad1", "squad_v1.1"; "squad_v2", "squad2", "squad-v2.0"), reading from
    /// `data` (default `<assets>/squad`); nil when the name is not SQuAD's.
    public static func named(_ name: String, data: URL?, assets: URL) -> SQuADSource? {
        let key = name.lowercased().replacingOccurrences(of: "-", with: "_")
        let v1 = ["squad", "squad1", "squad_v1", "squad_v1.1", "squad1.1"], v2 = ["squad2", "squad_v2", "squad_v2.0", "squad2.0"]
        guard v1.contains(key) || v2.contains(key) else { return nil }
        return SQuADSource(version2: v2.contains(key), directory: data ?? assets.appendingPathComponent("squad"))
    }

    /// Reads the dev file and, when `train` is true, the training file; a v1.1/v2.0 mismatch with the task name,
    /// a missing file or a file without questions is an error naming the file.
    public func load(train: Bool) throws -> (train: SQuADDataset?, dev: SQuADDataset) {
        func read(_ url: URL) throws -> SQuADDataset {
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw TrainerError("\(url.path): no such file; \(name) reads the official \(trainFile.lastPathComponent) and "
                                   + "\(devFile.lastPathComponent) from --data DIR")
            }
            let d = try SQuADDataset.load(contentsOf: url)
            guard !d.examples.isEmpty else { throw TrainerError("\(url.path): no questions") }
            if d.isVersion2 && !version2 {
                throw TrainerError("\(url.path): a SQuAD v2.0 file (it has is_impossible); use --task squad_v2")
            }
            return d
        }
        return (train ? try read(trainFile) : nil, try read(devFile))
    }
}
