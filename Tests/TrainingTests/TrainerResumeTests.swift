import BERT
import Foundation
import Tensor
import XCTest
import Tensor
@testable import Training

/// A run interrupted and resumed from its checkpoint is the uninterrupted run: the same loss at every step, the same
/// final weights, evaluations, best checkpoint and metrics log.
final class TrainerResumeTests: XCTestCase {
    struct Interrupted: Error {}

    struct Run {
        var losses: [Int: Float] = [:]
        var weights: [String: Tensor] = [:]
        var summary: TrainingSummary?
    }

    /// Trains the tiny task in `out`; `interruptAfter` throws from `onStep` after that step; `resume` continues the
    /// run in `out` with a model initialised differently (so every weight must come from the checkpoint).
    /// `stopAfter` asks the trainer to stop after that step (as Ctrl-C does), which checkpoints that very step.
    func run(_ dir: URL, out: String, interruptAfter: Int? = nil, stopAfter: Int? = nil, resume: Bool = false,
             configuration: TrainerConfiguration = TinyRun.configuration) throws -> Run {
        let parts = try TinyRun.parts(dir)
        let output = try TrainingOutput.prepare(dir.appendingPathComponent(out), mode: resume ? .resume : .fresh)
        let model = TinyRun.model(seed: resume ? 999 : 1)
        let trainer = try Trainer(model: model, data: parts.batcher, configuration: configuration,
                                  evaluator: parts.evaluator, output: output, export: parts.export,
                                  arguments: ["task": "tiny"])
        if resume { try trainer.resume(from: output.checkpoint) }
        var result = Run()
        trainer.onStep = { record in
            result.losses[record.step] = record.loss
            if record.step == interruptAfter { throw Interrupted() }
            if record.step == stopAfter { trainer.requestStop() }
        }
        do { result.summary = try trainer.train() } catch is Interrupted {} catch let e as TrainerError where stopAfter != nil {
            XCTAssertTrue(e.description.hasPrefix("stopped on request after step \(stopAfter!) of 60"), e.description)
        }
        result.weights = TinyRun.weights(model)
        return result
    }

    func testResumedRunReproducesTheUninterruptedRun() throws {
        let dir = try TinyRun.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let full = try run(dir, out: "full")
        XCTAssertEqual(full.losses.count, 60)

        // Interrupted after step 15 (last checkpoint: step 12, mid-epoch 2) and after step 41 (last checkpoint:
        // step 40, an epoch end); stopped on request after step 17 (checkpointed there).
        for (interrupt, checkpoint, request) in [(15, 12, false), (41, 40, false), (17, 17, true)] {
            let name = "cut-\(interrupt)"
            let first = try run(dir, out: name, interruptAfter: request ? nil : interrupt, stopAfter: request ? interrupt : nil)
            XCTAssertNil(first.summary)
            let state = try TrainingCheckpoint.readState(dir.appendingPathComponent(name).appendingPathComponent("checkpoint"))
            XCTAssertEqual(state.globalStep, checkpoint)
            let second = try run(dir, out: name, resume: true)
            XCTAssertEqual(Set(second.losses.keys), Set((checkpoint + 1)...60), "the resumed run takes the remaining steps")

            var worst: Float = 0
            for step in 1...60 {
                let before = step <= interrupt ? first.losses[step] : nil
                let after = step > checkpoint ? second.losses[step] : nil
                for loss in [before, after].compactMap({ $0 }) {
                    worst = maxError([worst, absDifference(loss, full.losses[step]!)])
                    XCTAssertEqual(loss, full.losses[step]!, accuracy: 1e-6, "step \(step)")
                }
            }
            let weightDiff = TinyRun.maxDifference(second.weights, full.weights)
            print("resume after step \(interrupt) from checkpoint \(checkpoint): max |loss diff| \(worst), max |weight diff| \(weightDiff)")
            XCTAssertLessThanOrEqual(weightDiff, 1e-6)
            XCTAssertEqual(second.summary?.bestMetric, full.summary?.bestMetric)
            XCTAssertEqual(second.summary?.bestStep, full.summary?.bestStep)

            // The log reads as one run: the lines after the checkpoint were dropped and redone.
            func events(_ out: String) throws -> [String] {
                try MetricsLog.read(dir.appendingPathComponent(out).appendingPathComponent("metrics.jsonl")).compactMap { r in
                    guard let event = r["event"] as? String, ["train", "eval", "epoch"].contains(event) else { return nil }
                    let value = (r["loss"] as? NSNumber) ?? (r["value"] as? NSNumber)
                    return "\(event) \(r["step"] as? Int ?? -1) \(value.map { "\($0.doubleValue)" } ?? "")"
                }
            }
            XCTAssertEqual(try events(name), try events("full"))
            let bestA = try BertModel.load(directory: dir.appendingPathComponent("full/best"))
            let bestB = try BertModel.load(directory: dir.appendingPathComponent("\(name)/best"))
            XCTAssertEqual(TinyRun.maxDifference(TinyRun.weights(bestA), TinyRun.weights(bestB)), 0)
        }
    }

    /// CoFi's shape of run: evaluated at step 0, the model optimiser re-created at step 20 (the schedule restarts).
    func testResumeAcrossAModelOptimizerRestart() throws {
        let dir = try TinyRun.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = TinyRun.configuration
        c.modelOptimizerRestartStep = 20
        c.evaluateAtStart = true
        XCTAssertEqual(c.learningRateMultiplier(step: 19, totalSteps: 60), Float(60 - 19) / Float(60 - 6))
        XCTAssertEqual(c.learningRateMultiplier(step: 20, totalSteps: 60), 0, "warm-up starts over")
        XCTAssertEqual(c.learningRateMultiplier(step: 22, totalSteps: 60), 0.5, "4 warm-up steps of the 40 left")
        let full = try run(dir, out: "full", configuration: c)
        let records = try MetricsLog.read(dir.appendingPathComponent("full/metrics.jsonl"))
        XCTAssertEqual(records.first { $0["event"] as? String == "eval" }?["step"] as? Int, 0)
        XCTAssertEqual(records.filter { $0["event"] as? String == "optimizer_restart" }.map { $0["step"] as? Int }, [21])
        let moments = try SafetensorsFile(contentsOf: dir.appendingPathComponent("full/checkpoint/optimizer.safetensors"))
        XCTAssertEqual(try moments.tensor("model/step").scalars, [40], "steps since the restart")

        for (interrupt, checkpoint) in [(15, 12), (22, 20)] {
            let name = "cut-\(interrupt)"
            _ = try run(dir, out: name, interruptAfter: interrupt, configuration: c)
            let second = try run(dir, out: name, resume: true, configuration: c)
            for step in (checkpoint + 1)...60 {
                XCTAssertEqual(second.losses[step]!, full.losses[step]!, accuracy: 1e-6, "step \(step)")
            }
            XCTAssertLessThanOrEqual(TinyRun.maxDifference(second.weights, full.weights), 1e-6)
        }
    }

    func testResumeRefusesAnotherRunsCheckpoint() throws {
        let dir = try TinyRun.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try run(dir, out: "a", interruptAfter: 5)
        let parts = try TinyRun.parts(dir)
        let output = try TrainingOutput.prepare(dir.appendingPathComponent("a"), mode: .resume)

        var other = TinyRun.configuration
        other.learningRate = 5e-4
        let t1 = try Trainer(model: TinyRun.model(), data: parts.batcher, configuration: other, output: output,
                             arguments: ["task": "tiny"])
        XCTAssertThrowsError(try t1.resume(from: output.checkpoint)) {
            XCTAssertTrue("\($0)".contains("learning_rate: 0.01 vs 0.0005"), "\($0)")
        }
        let t2 = try Trainer(model: TinyRun.model(), data: parts.batcher, configuration: TinyRun.configuration,
                             output: output, arguments: ["task": "other"])
        XCTAssertThrowsError(try t2.resume(from: output.checkpoint)) {
            XCTAssertTrue("\($0)".contains("task: tiny vs other"), "\($0)")
        }
        let fewer = try TinyRun.parts(try TinyRun.directory(train: 36))
        let t3 = try Trainer(model: TinyRun.model(), data: fewer.batcher, configuration: TinyRun.configuration,
                             output: output, arguments: ["task": "tiny"])
        XCTAssertThrowsError(try t3.resume(from: output.checkpoint)) {
            XCTAssertTrue("\($0)".contains("the training data changed"), "\($0)")
        }
    }
}
