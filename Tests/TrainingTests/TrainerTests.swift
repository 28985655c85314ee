import BERT
import Formats
import Foundation
import Tasks
import Tensor
import XCTest
import Tensor
@testable import Training

/// A tiny sentiment task and a 2-layer BERT, small enough to train for dozens of steps in a second.
enum TinyRun {
    static let vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "great", "fine", "nice", "lovely",
                             "bad", "awful", "poor", "sad", "dull", "movie", "film", "plot", "the", "a", "was", "is",
                             "very", "really", "acting"]
    static let positive = ["good", "great", "fine", "nice", "lovely"]
    static let negative = ["bad", "awful", "poor", "sad", "dull"]

    /// A fresh temporary directory holding vocab.txt, train.csv (`n` rows) and dev.csv (`devRows` rows).
    static func directory(train n: Int = 40, dev devRows: Int = 12) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-trainer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try (vocabulary.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("vocab.txt"), atomically: true, encoding: .utf8)
        try csv(rows: n, offset: 0).write(to: dir.appendingPathComponent("train.csv"), atomically: true, encoding: .utf8)
        try csv(rows: devRows, offset: 7).write(to: dir.appendingPathComponent("dev.csv"), atomically: true, encoding: .utf8)
        return dir
    }

    /// Deterministic sentences of 3 to 8 words; the label follows the sentiment words.
    static func csv(rows: Int, offset: Int) -> String {
        let filler = ["the", "movie", "film", "plot", "was", "is", "very", "really", "acting", "a"]
        var lines = ["text,label"]
        for i in 0..<rows {
            let k = i + offset
            let good = k % 2 == 0
            let words = good ? positive : negative
            var sentence: [String] = []
            for j in 0..<(3 + (k * 7) % 6) {
                sentence.append(j % 3 == 1 ? words[(k + j) % words.count] : filler[(k * 3 + j) % filler.count])
            }
            lines.append("\(sentence.joined(separator: " ")),\(good ? "pos" : "neg")")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static let config = BertConfig(vocabSize: vocabulary.count, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2,
                                   intermediateSize: 32, maxPositionEmbeddings: 32)

    static func model(seed: UInt64 = 1) -> BertModel {
        BertModel.randomlyInitialized(config: config, task: .classification(labels: 2), seed: seed)
    }

    /// The parts of a run: data, evaluator and export, read from `dir`.
    struct Parts {
        let train: TaskDataset
        let dev: TaskDataset
        let batcher: Batcher
        let evaluator: TaskEvaluator
        let export: ModelExport
    }

    static func parts(_ dir: URL, batchSize: Int = 4, seed: UInt64 = 57) throws -> Parts {
        let source = TaskSource.files(train: dir.appendingPathComponent("train.csv"), dev: dir.appendingPathComponent("dev.csv"),
                                      spec: UserDataSpec())
        let (train, dev) = try source.load(train: true)
        let encoder = TaskEncoder(tokenizer: try WordPieceTokenizer.load(directory: dir), maxLength: 16)
        return Parts(train: train!, dev: dev,
                     batcher: encoder.batcher(train!, options: BatchingOptions(batchSize: batchSize, shuffle: true, seed: seed)),
                     evaluator: try TaskEvaluator(dataset: dev, encoder: encoder, batchSize: 5),
                     export: ModelExport(labels: train!.kind, tokenizerDirectory: dir))
    }

    /// 6 epochs of 10 steps, warm-up, weight decay, evaluation every 4 steps, a log line per step.
    static var configuration: TrainerConfiguration {
        var c = TrainerConfiguration()
        c.learningRate = 1e-2
        c.batchSize = 4
        c.epochs = 6
        c.warmupRatio = 0.1
        c.weightDecay = 0.01
        c.evalSteps = 4
        c.loggingSteps = 1
        return c
    }

    static func weights(_ model: BertModel) -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: model.namedParameters.map { ($0.0, $0.1.value) })
    }

    static func maxDifference(_ a: [String: Tensor], _ b: [String: Tensor]) -> Float {
        precondition(Set(a.keys) == Set(b.keys), "different parameter names")
        return maxError(a.keys.map { a[$0]!.maxAbsDifference(b[$0]!) })
    }
}

/// The trainer on the tiny task: it learns, keeps the best checkpoint, writes Hugging Face directories, and stops
/// on a non-finite loss or gradient without applying the step.
final class TrainerTests: XCTestCase {
    func testLearnsTheTinyTaskAndKeepsTheBestCheckpoint() throws {
        let dir = try TinyRun.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let parts = try TinyRun.parts(dir)
        let output = try TrainingOutput.prepare(dir.appendingPathComponent("out"), mode: .fresh)
        let model = TinyRun.model()
        let trainer = try Trainer(model: model, data: parts.batcher, configuration: TinyRun.configuration,
                                  evaluator: parts.evaluator, output: output, export: parts.export,
                                  arguments: ["task": "tiny"])
        var losses: [Float] = []
        trainer.onStep = { losses.append($0.loss) }
        let summary = try trainer.train()
        XCTAssertEqual(summary.steps, 60)
        XCTAssertEqual(losses.count, 60)
        let early = losses.prefix(5).reduce(0, +) / 5, late = losses.suffix(5).reduce(0, +) / 5
        XCTAssertLessThan(late, early, "the loss falls: first steps \(early), last steps \(late)")

        // metrics.jsonl: one train line per step, evaluations every 4 steps and at the epoch ends 10, 20, …, 60.
        let records = try MetricsLog.read(output.metrics)
        XCTAssertEqual(records.first?["event"] as? String, "start")
        XCTAssertEqual(records.last?["event"] as? String, "end")
        XCTAssertEqual(records.filter { $0["event"] as? String == "train" }.count, 60)
        let evals = records.filter { $0["event"] as? String == "eval" }
        XCTAssertEqual(evals.map { $0["step"] as? Int }, [4, 8, 10, 12, 16, 20, 24, 28, 30, 32, 36, 40, 44, 48, 50, 52, 56, 60])
        XCTAssertEqual(records.filter { $0["event"] as? String == "epoch" }.map { $0["step"] as? Int }, [10, 20, 30, 40, 50, 60])
        let values = evals.map { ($0["value"] as? NSNumber)?.doubleValue ?? .nan }
        let best = values.max()!
        let bestStep = evals[values.firstIndex(of: best)!]["step"] as? Int
        XCTAssertEqual(summary.bestMetric, best)
        XCTAssertEqual(summary.bestStep, bestStep)
        XCTAssertGreaterThanOrEqual(best, 0.75, "the tiny task is learnable: accuracies \(values)")

        // best/ is a Hugging Face directory of the best step; reloaded, it scores what the log says.
        let bestState = try TrainingCheckpoint.readState(output.best)
        XCTAssertEqual(bestState.globalStep, bestStep)
        XCTAssertEqual(bestState.bestMetric, best)
        let config = try BertConfig.load(from: output.best.appendingPathComponent("config.json"))
        XCTAssertEqual(config.numLabels, 2)
        XCTAssertEqual(config.id2label, ["0": "neg", "1": "pos"])
        XCTAssertEqual(config.label2id, ["neg": 0, "pos": 1])
        XCTAssertEqual(config.problemType, "single_label_classification")
        XCTAssertEqual(config.architectures, ["BertForSequenceClassification"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: output.best.appendingPathComponent("vocab.txt").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: output.best.appendingPathComponent(TrainingCheckpoint.optimizerFile).path),
                       "best/ is a model, not a resume point")
        let reloaded = try BertModel.load(directory: output.best)
        XCTAssertEqual(parts.evaluator.evaluate(model: reloaded).primary, best)

        // checkpoint/ is the last step, with the optimiser state.
        let last = try TrainingCheckpoint.readState(output.checkpoint)
        XCTAssertEqual(last.globalStep, 60)
        XCTAssertEqual(last.epoch, 6)
        XCTAssertEqual(last.batchInEpoch, 0)
        XCTAssertEqual(last.arguments, ["task": "tiny"])
        let moments = try SafetensorsFile(contentsOf: output.checkpoint.appendingPathComponent(TrainingCheckpoint.optimizerFile))
        XCTAssertEqual(try moments.tensor("model/step").scalars, [60])
        XCTAssertTrue(moments.contains("model/m.classifier.weight"))
        XCTAssertEqual(TinyRun.maxDifference(TinyRun.weights(try BertModel.load(directory: output.checkpoint)),
                                             TinyRun.weights(model)), 0)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: output.directory.path).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [], "no staging directories remain")
    }

    func testSameSeedSameRunOtherSeedOtherRun() throws {
        let dir = try TinyRun.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        func losses(seed: UInt64) throws -> [Float] {
            let parts = try TinyRun.parts(dir, seed: seed)
            var c = TinyRun.configuration
            c.seed = seed
            c.maxSteps = 8
            let trainer = try Trainer(model: TinyRun.model(), data: parts.batcher, configuration: c)
            var out: [Float] = []
            trainer.onStep = { out.append($0.loss) }
            try trainer.train()
            return out
        }
        let a = try losses(seed: 57), b = try losses(seed: 57), c = try losses(seed: 58)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
    }

    func testDropoutSeedsDifferPerStepAndAvoidTheShuffleSeeds() {
        let seeds = (0..<1000).map { Trainer.dropoutSeed(57, step: $0) }
        XCTAssertEqual(Set(seeds).count, 1000)
        XCTAssertTrue(Set(seeds).isDisjoint(with: (0..<1000).map { 57 &+ UInt64($0) }))
    }

    func testSchedulesMatchHuggingFace() {
        var c = TrainerConfiguration()
        c.warmupRatio = 0.1
        XCTAssertEqual(c.warmup(totalSteps: 95), 10, "ceil(95 · 0.1)")
        XCTAssertEqual(c.learningRateMultiplier(step: 5, totalSteps: 100), 0.5)
        XCTAssertEqual(c.learningRateMultiplier(step: 55, totalSteps: 100), 0.5)
        c.schedule = .constant
        XCTAssertEqual(c.learningRateMultiplier(step: 5, totalSteps: 100), 0.5)
        XCTAssertEqual(c.learningRateMultiplier(step: 99, totalSteps: 100), 1)
        c.warmupSteps = 0
        XCTAssertEqual(c.learningRateMultiplier(step: 0, totalSteps: 100), 1)
        var d = TrainerConfiguration()
        d.maxSteps = 7
        XCTAssertEqual(d.totalSteps(stepsPerEpoch: 299), 7)
        d.maxSteps = nil
        XCTAssertEqual(d.totalSteps(stepsPerEpoch: 299), 5 * 299)
    }

    /// An objective that breaks at a chosen step: a NaN loss, or an infinite gradient with a finite loss.
    final class Faulty: TrainingObjective {
        enum Fault { case nanLoss, infiniteGradient }
        let fault: Fault, at: Int
        let task = TaskLossObjective()
        init(_ fault: Fault, at step: Int) {
            self.fault = fault
            at = step
        }
        func loss(model: BertModel, batch: TrainingBatch, mode: inout ForwardMode, step: Int) -> Variable {
            let loss = task.loss(model: model, batch: batch, mode: &mode, step: step)
            guard step == at else { return loss }
            switch fault {
            case .nanLoss: return Float.nan * loss
            case .infiniteGradient:
                let bias = model.head!.bias
                bias.grad = Tensor(repeating: .infinity, shape: bias.shape)
                return loss
            }
        }
    }

    func testNonFiniteLossOrGradientStopsNamingTheStepWithoutApplyingIt() throws {
        let dir = try TinyRun.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let parts = try TinyRun.parts(dir)
        for (fault, expected) in [(Faulty.Fault.nanLoss, "the loss is nan"), (.infiniteGradient, "the gradient norm is inf")] {
            let output = try TrainingOutput.prepare(dir.appendingPathComponent("out-\(fault)"), mode: .fresh)
            let model = TinyRun.model()
            let trainer = try Trainer(model: model, data: parts.batcher, configuration: TinyRun.configuration,
                                      objective: Faulty(fault, at: 5), evaluator: parts.evaluator, output: output,
                                      export: parts.export)
            var before: [String: Tensor] = [:]
            trainer.onStep = { if $0.step == 5 { before = TinyRun.weights(model) } }
            XCTAssertThrowsError(try trainer.train()) { error in
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix("step 6 (epoch 1, batch 6 of 10): \(expected)"), message)
                XCTAssertTrue(message.contains("training stopped before applying this update"), message)
                XCTAssertTrue(message.contains("\(output.checkpoint.path) (step 4)"), message)
            }
            XCTAssertEqual(TinyRun.maxDifference(TinyRun.weights(model), before), 0, "the bad step changed nothing")
            XCTAssertTrue(model.namedParameters.allSatisfy { $0.1.grad == nil })
            let stop = try MetricsLog.read(output.metrics).last!
            XCTAssertEqual(stop["event"] as? String, "stopped")
            XCTAssertEqual(stop["step"] as? Int, 6)
        }
    }

    func testEvaluatorScoresRegressionWithPearsonAndSpearman() throws {
        let dir = try TinyRun.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let rows = (0..<10).map { "\(TinyRun.positive[$0 % 5]) movie,\(Double($0) / 2)" }
        try (["text,score"] + rows).joined(separator: "\n").write(to: dir.appendingPathComponent("r.csv"), atomically: true, encoding: .utf8)
        var spec = UserDataSpec(labelColumn: "score")
        spec.regression = true
        let (_, dev) = try TaskSource.files(train: nil, dev: dir.appendingPathComponent("r.csv"), spec: spec).load(train: false)
        let encoder = TaskEncoder(tokenizer: try WordPieceTokenizer.load(directory: dir), maxLength: 8)
        let evaluator = try TaskEvaluator(dataset: dev, encoder: encoder)
        let model = BertModel.randomlyInitialized(config: TinyRun.config, task: .regression, seed: 3)
        let result = evaluator.evaluate(model: model)
        XCTAssertEqual(result.primaryName, "corr")
        XCTAssertEqual(result.metrics.map(\.name), ["pearson", "spearmanr", "corr"])
        XCTAssertEqual(result.examples, 10)
        let export = ModelExport(labels: .regression).config(for: model)
        XCTAssertEqual(export.problemType, "regression")
        XCTAssertEqual(export.numLabels, 1)
    }

    func testProgressLineAndJSONLines() {
        let p = ProgressSnapshot(epoch: 1, epochs: 3, step: 120, totalSteps: 897, loss: 0.43214, learningRate: 1.7324e-5,
                                 examplesPerSecond: 41.23, etaSeconds: 365)
        XCTAssertEqual(ProgressReporter.format(p), "epoch 1/3  step 120/897  loss 0.4321  lr 1.73e-05  41.2 ex/s  ETA 6m05s")
        XCTAssertEqual(ProgressReporter.duration(3725), "1h02m")
        XCTAssertEqual(ProgressReporter.duration(42), "42s")
        XCTAssertEqual(JSON.object([("a", 1), ("b", Double.nan), ("c", "x\"y\n"), ("d", true), ("e", nil),
                                        ("f", [("g", 0.5)] as [(String, Any?)])]),
                       #"{"a":1,"b":null,"c":"x\"y\n","d":true,"e":null,"f":{"g":0.5}}"#)
    }
}
