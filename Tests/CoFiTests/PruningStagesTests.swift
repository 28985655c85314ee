import BERT
import Charts
import Foundation
import Tasks
import Tensor
@testable import Training
import XCTest
import Tensor
@testable import CoFi

/// The CoFi stages end to end on a tiny random teacher and student (seconds in debug): the run produces a compact
/// checkpoint that loads and equals the masked model with deterministic masks; the Lagrangian drives ŝ up; the
/// embeddings never move; a resumed pruning stage repeats the uninterrupted losses.
final class PruningStagesTests: XCTestCase {
    static let config = BertConfig(vocabSize: 40, hiddenSize: 24, numHiddenLayers: 4, numAttentionHeads: 4,
                                   intermediateSize: 20, maxPositionEmbeddings: 16, initializerRange: 0.2)
    static let task = TaskHeadKind.classification(labels: 2)

    /// `n` sequences of length 3…8 over ids 1…39; label = whether the first real token is even.
    static func examples(_ n: Int, seed: UInt64) -> [EncodedExample] {
        var rng = Xoshiro256(seed: seed)
        return (0..<n).map { i in
            let len = 3 + Int(rng.next() % 6)
            let ids = [1] + (0..<(len - 2)).map { _ in 2 + Int(rng.next() % 38) } + [1]
            return EncodedExample(ids: ids, typeIds: Array(repeating: 0, count: len),
                                  label: .classification(ids[1] % 2), index: i)
        }
    }

    struct Fixture {
        let teacher: BertModel, student: BertModel, data: Batcher, evaluator: TaskEvaluator
    }

    static func fixture(batchSize: Int = 8) -> Fixture {
        let teacher = BertModel.randomlyInitialized(config: config, task: task, seed: 1)
        let student = BertModel.randomlyInitialized(config: config, task: task, seed: 2)
        let data = Batcher(examples: examples(32, seed: 3), padId: 0,
                           options: BatchingOptions(batchSize: batchSize, shuffle: true, seed: 57))
        let evaluator = TaskEvaluator(examples: examples(16, seed: 4), padId: 0,
                                      kind: .classification(names: ["odd", "even"]), metrics: .accuracy, batchSize: 8)
        return Fixture(teacher: teacher, student: student, data: data, evaluator: evaluator)
    }

    /// Short: 1 pre-pruning + 10 pruning epochs of 4 steps, warm-up 3 epochs, the budget-aware controller so
    /// that a target of 0.5 is reached within 40 steps.
    static func settings() -> PruningSettings {
        var s = PruningSettings(targetSparsity: 0.5, epochs: 11, prePruningEpochs: 1, warmupEpochs: 3)
        s.controller = .budgetAware()
        s.sparsityEpsilon = 0.05
        s.finetuneEpochs = 1
        s.evalSteps = 2
        s.learningRate = 1e-3
        s.finetuneLearningRate = 1e-3
        s.loggingSteps = 1
        return s
    }

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-prune-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testWholePipelineProducesAnEquivalentCompactModel() throws {
        let f = Self.fixture()
        let out = try temporaryDirectory()
        let embeddingsBefore = f.student.namedParameters.filter { $0.0.contains("embeddings") }.map { ($0.0, $0.1.value) }
        let pipeline = try PruningPipeline(teacher: f.teacher, student: f.student, data: f.data, evaluator: f.evaluator,
                                           settings: Self.settings(), output: out)
        var sparsity: [Double] = []
        var stages: [String] = []
        pipeline.onStep = { stage, _, scalars in
            if stages.last != stage { stages.append(stage) }
            if stage == "prune" { sparsity.append(scalars["expected_sparsity"]!) }
        }
        let summary = try pipeline.run()
        print(summary.text)
        print("ŝ per pruning step:", sparsity.map { String(format: "%.3f", $0) }.joined(separator: " "))
        XCTAssertEqual(stages, ["preprune", "prune", "finetune"])
        XCTAssertGreaterThan(sparsity.last!, sparsity.first! + 0.2, "the Lagrangian drives ŝ up")
        XCTAssertEqual(summary.exactSparsity, 0.5, accuracy: 0.05, "the exact-band gate: the size asked for ± ε")
        XCTAssertLessThan(summary.encoderParametersAfter, summary.encoderParametersBefore)

        // Embeddings never moved (the student is the compact model's source, reloaded from prune/best).
        for (name, before) in embeddingsBefore {
            let now = f.student.namedParameters.first { $0.0 == name }!.1.value
            XCTAssertEqual(now.scalars, before.scalars, "\(name) changed")
        }

        // pruned/ loads and equals the masked model of prune/best with the deterministic masks.
        let pruned = try CompactModel.load(directory: out.appendingPathComponent("pruned"))
        let masked = try BertModel.load(directory: out.appendingPathComponent("prune/best"), task: Self.task)
        var rng = Xoshiro256(seed: 57)
        let l0 = L0Module(shape: masked.shape, using: &rng)
        let gates = try SafetensorsFile(contentsOf: out.appendingPathComponent("prune/best_gates.safetensors"))
        var state: [String: Tensor] = [:]
        for n in gates.names { state[n] = try gates.tensor(n) }
        try l0.load(state: state)
        let batch = f.evaluator.batcher.trainingBatch(Array(0..<8)).inputs
        var m1 = ForwardMode.inference, m2 = ForwardMode.inference
        let a = withoutGradients { masked(batch, masks: l0.deterministicMasks(), mode: &m1).logits!.value }
        let b = withoutGradients { pruned.model(batch, mode: &m2).logits!.value }
        let diff = a.maxAbsDifference(b)
        print("masked vs compact logits: max abs diff \(diff)")
        XCTAssertLessThanOrEqual(diff, 1e-4)
        XCTAssertEqual(summary.layers.map(\.heads), pruned.model.shape.layers.map(\.heads))
        XCTAssertEqual(summary.layers.map(\.ffnUnits), pruned.model.shape.layers.map(\.ffnWidth))

        // final/ loads with its cofi block; summary.json is there.
        let final = try CompactModel.load(directory: out.appendingPathComponent("final"))
        XCTAssertNotNil(final.layout)
        XCTAssertEqual(final.model.shape, pruned.model.shape)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("summary.json").path))

        // report.md and its figures, made from the run's files.
        let report = try String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("| exact sparsity (of M, the prunable size) | " + String(format: "%.4f", summary.exactSparsity)), report)
        XCTAssertTrue(report.contains("## Sparsity trajectory"), report)
        for name in ["architecture", "sparsity", "lambda", "losses", "metric"] {
            let svg = try String(contentsOf: out.appendingPathComponent("figures/\(name).svg"), encoding: .utf8)
            XCTAssertTrue(svg.hasPrefix("<?xml") && svg.contains("</svg>"), name)
            XCTAssertTrue(report.contains("figures/\(name).svg"), name)
        }
        let sparsitySVG = try String(contentsOf: out.appendingPathComponent("figures/sparsity.svg"), encoding: .utf8)
        XCTAssertTrue(sparsitySVG.contains("<polyline"), "ŝ drawn")
        // The kept-structure figure is the one function of the shape, drawn from final/'s config alone.
        let architecture = try String(contentsOf: out.appendingPathComponent("figures/architecture.svg"), encoding: .utf8)
        let kept = pruned.model.shape
        XCTAssertEqual(architecture, StructureFigure(layers: kept.layers.map {
            .init(heads: $0.heads, originalHeads: 4, ffnUnits: $0.ffnWidth, originalFFNUnits: 20)
        }, hiddenSize: kept.hiddenSize, originalHiddenSize: 24).svg())

        // final/'s model card: the summary's exact sparsity and metrics, no command, no latency (none was given).
        let card = try String(contentsOf: out.appendingPathComponent("final/README.md"), encoding: .utf8)
        XCTAssertTrue(card.contains("| exact sparsity (of the prunable encoder parameters) | " + String(format: "%.4f", summary.exactSparsity) + " |"), card)
        XCTAssertTrue(card.contains("| dev \(summary.metricName): teacher | " + String(format: "%.4f", summary.teacherMetric ?? .nan) + " |"), card)
        XCTAssertTrue(card.contains("| dev \(summary.metricName): this model | " + String(format: "%.4f", summary.finalMetric ?? .nan) + " |"), card)
        XCTAssertFalse(card.contains("latency") || card.contains("The command that made it"), card)
        XCTAssertEqual(final.model.shape, try ModelCard(directory: out.appendingPathComponent("final")).shape)
    }

    /// The paper's one-sided gate on ŝ and the project's two-sided band on the exact sparsity.
    /// A budget too short to reach the band still ends with a model: the evaluation closest to the gate, with the
    /// gap in the summary and its text; `requireGate` stops without one, naming what the last evaluation had.
    func testARunThatMissesTheGateDeliversTheClosestModel() throws {
        var settings = Self.settings()
        settings.targetSparsity = 0.9
        settings.epochs = 3
        settings.warmupEpochs = 1
        settings.sparsityEpsilon = 0.01
        let f = Self.fixture()
        let out = try temporaryDirectory()
        let pipeline = try PruningPipeline(teacher: f.teacher, student: f.student, data: f.data, evaluator: f.evaluator,
                                           settings: settings, output: out)
        let summary = try pipeline.run()
        print(summary.text)
        let gap = try XCTUnwrap(summary.gateGap, "the gate was met; the budget must be too short for this test")
        XCTAssertEqual(summary.gateMissed, "exact sparsity within 0.9 ± ε 0.01")
        XCTAssertTrue(summary.text.contains("WARNING: no evaluation met the checkpoint gate"), summary.text)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("prune/best/model.safetensors").path))
        let closest = try XCTUnwrap(ClosestEvaluation.read(out.appendingPathComponent("prune/closest")))
        XCTAssertEqual(closest.gap, gap)
        XCTAssertGreaterThan(gap, 0)
        XCTAssertEqual(gap, abs(closest.exactSparsity - Double(settings.targetSparsity)) - Double(settings.sparsityEpsilon),
                       accuracy: 1e-12)
        // The delivered model is the closest evaluation's: its exact sparsity, and it loads.
        XCTAssertEqual(summary.exactSparsity, closest.exactSparsity, accuracy: 1e-12)
        XCTAssertEqual(summary.prunedStep, closest.step)
        let final = try XCTUnwrap(summary.finalDirectory)
        XCTAssertNoThrow(try CompactModel.load(directory: URL(fileURLWithPath: final)))

        // The strict gate: no model, and the reason.
        settings.requireGate = true
        let g = Self.fixture()
        let strict = try PruningPipeline(teacher: g.teacher, student: g.student, data: g.data, evaluator: g.evaluator,
                                         settings: settings, output: try temporaryDirectory())
        XCTAssertThrowsError(try strict.run()) { error in
            XCTAssertTrue("\(error)".contains("no evaluation met the checkpoint gate (exact sparsity within 0.9 ± ε 0.01)"),
                          "\(error)")
        }
    }

    func testCheckpointGates() {
        XCTAssertTrue(CheckpointGate.expected.admits(expected: 0.89, exact: 0.95, target: 0.9, epsilon: 0.01))
        XCTAssertFalse(CheckpointGate.expected.admits(expected: 0.88, exact: 0.90, target: 0.9, epsilon: 0.01))
        XCTAssertTrue(CheckpointGate.exactBand.admits(expected: 0.88, exact: 0.905, target: 0.9, epsilon: 0.01))
        XCTAssertTrue(CheckpointGate.exactBand.admits(expected: 0.95, exact: 0.891, target: 0.9, epsilon: 0.01))
        XCTAssertFalse(CheckpointGate.exactBand.admits(expected: 0.90, exact: 0.9265, target: 0.9, epsilon: 0.01))
        XCTAssertFalse(CheckpointGate.exactBand.admits(expected: 0.90, exact: 0.889, target: 0.9, epsilon: 0.01))
        XCTAssertEqual(PruningSettings(targetSparsity: 0.9, epochs: 2, prePruningEpochs: 0, warmupEpochs: 1).checkpointGate,
                       .exactBand)
        // `cofi prune`'s default recipe: the paper's stages with the tracking controller; a shorter budget scaled.
        func stages(_ examples: Int, _ epochs: Int?) -> [Int] {
            let s = PruningSettings.recipe(targetSparsity: 0.9, trainExamples: examples, epochs: epochs)
            XCTAssertEqual(s.controller, .tracking())
            XCTAssertEqual(s.finetuneLearningRate, PruningSettings.compactFinetuneLearningRate)
            XCTAssertEqual(s.rampShape, .cubic)
            return [s.epochs, s.prePruningEpochs, s.warmupEpochs]
        }
        XCTAssertEqual(stages(9_568, nil), [100, 4, 20])
        XCTAssertEqual(stages(9_568, 3), [3, 0, 2])
        XCTAssertEqual(stages(9_568, 1), [1, 0, 1])
        XCTAssertEqual(stages(9_568, 2), [2, 0, 1])
        XCTAssertEqual(stages(9_568, 50), [50, 2, 20])
        XCTAssertEqual(stages(9_568, 20), [20, 0, 13])
        XCTAssertEqual(stages(9_568, 100), [100, 4, 20])
        XCTAssertEqual(stages(9_568, 200), [200, 4, 20])
        XCTAssertEqual(stages(67_349, 10), [10, 0, 2])
        XCTAssertEqual(stages(67_349, 20), [20, 1, 2])
        XCTAssertEqual(PruningSettings.paper(targetSparsity: 0.9, trainExamples: 9_568).controller, .paper)
        // The gap to the gate: 0 inside, the distance outside, NaN (never the closest) for a NaN sparsity.
        XCTAssertEqual(CheckpointGate.exactBand.gap(expected: 0.8, exact: 0.905, target: 0.9, epsilon: 0.01), 0)
        XCTAssertEqual(CheckpointGate.exactBand.gap(expected: 0.8, exact: 0.85, target: 0.9, epsilon: 0.01), 0.04, accuracy: 1e-12)
        XCTAssertEqual(CheckpointGate.exactBand.gap(expected: 0.8, exact: 0.95, target: 0.9, epsilon: 0.01), 0.04, accuracy: 1e-12)
        XCTAssertEqual(CheckpointGate.expected.gap(expected: 0.85, exact: 0.99, target: 0.9, epsilon: 0.01), 0.04, accuracy: 1e-12)
        XCTAssertEqual(CheckpointGate.expected.gap(expected: 0.95, exact: 0.5, target: 0.9, epsilon: 0.01), 0)
        XCTAssertTrue(CheckpointGate.exactBand.gap(expected: 0.9, exact: .nan, target: 0.9, epsilon: 0.01).isNaN)
        XCTAssertTrue(CheckpointGate.expected.gap(expected: .nan, exact: 0.9, target: 0.9, epsilon: 0.01).isNaN)
    }

    /// A run stopped on request mid-pruning and resumed: the same losses, byte-identical weights, gates, summary
    /// and metrics as the uninterrupted run except for times, and stage times that add up over both processes.
    func testResumedPruningRepeatsTheUninterruptedRun() throws {
        try assertResumeRepeatsTheUninterruptedRun(Self.settings())
    }

    /// The same with `cofi prune`'s default controller: the tracking controller's λ is solved afresh each step, and
    /// the cubic ramp and the paced rates come back from the checkpoint.
    func testResumedTrackingRunRepeatsTheUninterruptedRun() throws {
        var settings = Self.settings()
        settings.controller = .tracking()
        settings.rampShape = .cubic
        try assertResumeRepeatsTheUninterruptedRun(settings)
    }

    private func assertResumeRepeatsTheUninterruptedRun(_ base: PruningSettings) throws {
        var settings = base
        settings.finetuneEpochs = 0
        settings.evalSteps = nil
        struct Run {
            var losses: [Int: Double] = [:]
            var summary: PruningSummary?
            /// Per stage, the seconds from its first to its last step in this process (a lower bound of its time).
            var stepSpan: [String: Double] = [:]
        }
        func run(stopAfter: Int?, out: URL, resume: Bool, pause: Bool = false) throws -> Run {
            let f = Self.fixture()
            let pipeline = try PruningPipeline(teacher: f.teacher, student: f.student, data: f.data,
                                               evaluator: f.evaluator, settings: settings, output: out)
            var result = Run()
            var firstStep: [String: Double] = [:]
            pipeline.onStep = { [weak pipeline] stage, record, _ in
                let now = clockNow()
                if firstStep[stage] == nil { firstStep[stage] = now }
                result.stepSpan[stage] = now - firstStep[stage]!
                // Time that only the first process spends, so that a summary counting one process falls short.
                if pause && record.step == 2 { Thread.sleep(forTimeInterval: 0.3) }
                guard stage == "prune" else { return }
                result.losses[record.step] = Double(record.loss)
                if let stopAfter, record.step == stopAfter { pipeline?.requestStop() }
            }
            do { result.summary = try pipeline.run(resume: resume) } catch where stopAfter != nil {}
            return result
        }
        let wholeOut = try temporaryDirectory()
        let whole = try run(stopAfter: nil, out: wholeOut, resume: false)
        let out = try temporaryDirectory()
        let first = try run(stopAfter: 6, out: out, resume: false, pause: true)
        let second = try run(stopAfter: nil, out: out, resume: true)
        XCTAssertEqual(first.losses.keys.max(), 6)
        let maxDiff = maxError(first.losses.merging(second.losses, uniquingKeysWith: { _, b in b }).map { absDifference($1, whole.losses[$0]!) })
        print("resumed vs uninterrupted pruning losses: max abs diff \(maxDiff) over \(whole.losses.count) steps")
        XCTAssertEqual(Set(first.losses.keys).union(second.losses.keys), Set(whole.losses.keys))
        XCTAssertLessThanOrEqual(maxDiff, 1e-6)

        // Stage times: pre-pruning ran only in the first process, pruning in both.
        let seconds = try XCTUnwrap(second.summary).stageSeconds
        print("stage seconds after the resume \(seconds); step spans \(first.stepSpan) then \(second.stepSpan)")
        XCTAssertNil(second.stepSpan["preprune"])
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(seconds["preprune"]), try XCTUnwrap(first.stepSpan["preprune"]))
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(seconds["prune"]),
                                    try XCTUnwrap(first.stepSpan["prune"]) + XCTUnwrap(second.stepSpan["prune"]))

        // Byte-identical results; the summary and the logs differ only in times (and the run's own paths).
        for file in ["final/model.safetensors", "pruned/model.safetensors", "prune/best/model.safetensors",
                     "prune/best_gates.safetensors", "prune/checkpoint/model.safetensors",
                     "prune/checkpoint/optimizer.safetensors", "prune/checkpoint/objective.safetensors"] {
            XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent(file)),
                           try Data(contentsOf: wholeOut.appendingPathComponent(file)), file)
        }
        func timeless(_ url: URL, dropping keys: Set<String>) throws -> [NSDictionary] {
            try Data(contentsOf: url).split(separator: 0x0A).compactMap { line in
                var r = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
                if ["resume", "stopped"].contains(r["event"] as? String) { return nil }
                for key in keys { r[key] = nil }
                return r as NSDictionary
            }
        }
        let times: Set<String> = ["time", "seconds", "train_seconds", "evaluation_seconds", "examples_per_second",
                                  "step_seconds", "model_seconds"]
        for stage in ["preprune", "prune"] {
            let a = try timeless(out.appendingPathComponent("\(stage)/metrics.jsonl"), dropping: times)
            let b = try timeless(wholeOut.appendingPathComponent("\(stage)/metrics.jsonl"), dropping: times)
            XCTAssertEqual(a, b, stage)
        }
        func summary(_ dir: URL) throws -> NSDictionary {
            var s = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("summary.json")))
                as? [String: Any])
            XCTAssertNotNil(s.removeValue(forKey: "stageSeconds"))
            XCTAssertNotNil(s.removeValue(forKey: "finalDirectory"))
            return s as NSDictionary
        }
        XCTAssertEqual(try summary(out), try summary(wholeOut))
    }

    /// A NaN in the middle of pruning (here: the teacher's classifier turns NaN after step 9, so the distillation
    /// loss of step 10 is NaN) stops the run cleanly: the error names the stage's step and the last checkpoint, no
    /// update is applied, and the checkpoint on disk holds only finite weights from before the NaN.
    func testNaNLossStopsCleanlyKeepingTheLastCheckpoint() throws {
        let f = Self.fixture()
        let out = try temporaryDirectory()
        var settings = Self.settings()
        settings.finetuneEpochs = 1
        let pipeline = try PruningPipeline(teacher: f.teacher, student: f.student, data: f.data, evaluator: f.evaluator,
                                           settings: settings, output: out)
        let classifier = f.teacher.head!.weight
        pipeline.onStep = { stage, record, _ in
            if stage == "prune" && record.step == 9 { classifier.assign(classifier.value.map { _ in Float.nan }) }
        }
        XCTAssertThrowsError(try pipeline.run()) { error in
            let text = "\(error)"
            print(text)
            XCTAssertTrue(text.contains("prune stage, step 10"), text)
            XCTAssertTrue(text.contains("the loss is nan"), text)
            XCTAssertTrue(text.contains("prune/checkpoint"), text)
        }
        let checkpoint = out.appendingPathComponent("prune/checkpoint")
        let state = try TrainingCheckpoint.readState(checkpoint)
        XCTAssertLessThanOrEqual(state.globalStep, 9)
        let weights = try SafetensorsFile(contentsOf: checkpoint.appendingPathComponent("model.safetensors"))
        for name in weights.names {
            XCTAssertTrue(try weights.tensor(name).scalars.allSatisfy(\.isFinite), name)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("final").path))

        // Resuming would repeat the NaN (here the teacher is sound again, but a run cannot know that): refused, naming
        // the step, the checkpoint before it and the option to lower.
        let again = Self.fixture()
        let resumed = try PruningPipeline(teacher: again.teacher, student: again.student, data: again.data,
                                          evaluator: again.evaluator, settings: settings, output: out)
        XCTAssertThrowsError(try resumed.run(resume: true)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("cannot resume: the run stopped at step 10 because the loss is nan, after its "
                                         + "last checkpoint (\(checkpoint.path), step \(state.globalStep))"), text)
            XCTAssertTrue(text.hasSuffix("with a lower --learning-rate (this run's is 0.001)"), text)
        }
    }

    func testBadInputIsNamed() throws {
        let f = Self.fixture()
        var s = Self.settings()
        s.targetSparsity = 1
        XCTAssertThrowsError(try PruningPipeline(teacher: f.teacher, student: f.student, data: f.data,
                                                 evaluator: f.evaluator, settings: s, output: nil)) {
            XCTAssertTrue("\($0)".contains("strictly between 0 and 1"), "\($0)")
        }
        var wide = Self.config
        wide.hiddenSize = 32
        let other = BertModel.randomlyInitialized(config: wide, task: Self.task, seed: 1)
        XCTAssertThrowsError(try PruningPipeline(teacher: other, student: f.student, data: f.data,
                                                 evaluator: f.evaluator, settings: Self.settings(), output: nil)) {
            XCTAssertTrue("\($0)".contains("widths must match"), "\($0)")
        }
        var vocab = Self.config
        vocab.vocabSize = 50
        let v = BertModel.randomlyInitialized(config: vocab, task: Self.task, seed: 1)
        XCTAssertThrowsError(try PruningPipeline(teacher: v, student: f.student, data: f.data,
                                                 evaluator: f.evaluator, settings: Self.settings(), output: nil)) {
            XCTAssertTrue("\($0)".contains("vocabulary"), "\($0)")
        }
    }
}
