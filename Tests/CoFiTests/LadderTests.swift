import BERT
import Foundation
import Tensor
import Training
import XCTest
@testable import CoFi

/// Issue 17 on the tiny pipeline of `PruningStagesTests`: a ladder of sparsities delivers a compact model per rung
/// from one run (each rung's exact sparsity in its band, resumable to the same bytes), and a latency target drives
/// the structure's predicted latency into the gate.
final class LadderTests: XCTestCase {
    typealias P = PruningStagesTests

    /// `PruningStagesTests.settings()` with the tracking controller on a cubic ramp, a ladder 0.3 / 0.5 / 0.7 held 4
    /// steps at each rung, a 6-epoch warm-up and an evaluation every step.
    static func ladderSettings() -> PruningSettings {
        var s = P.settings()
        s.targetSparsity = 0.7
        s.warmupEpochs = 6
        s.controller = .tracking()
        s.rampShape = .cubic
        s.rungs = [0.3, 0.5]
        s.rungHoldSteps = 4
        s.evalSteps = 1
        s.loggingSteps = 4
        return s
    }

    /// `ladderSettings` without rungs, driven to `fraction` of the dense latency a made-up profile of the fixture's
    /// student predicts (gate ± 5 %); with the profile and that dense latency.
    static func latencySettings(_ f: P.Fixture, fraction: Double) throws -> (PruningSettings, LatencyProfile, Double) {
        let profile = LatencyModelTests.profile(pooled: true, model: f.student.shape)
        var s = ladderSettings()
        s.rungs = []
        let dense = profile.predict(f.student.shape)
        let latency = try LatencyTarget(milliseconds: [dense * fraction], tolerance: 0.05, profile: profile, student: f.student.shape)
        s.latency = latency
        s.targetSparsity = latency.reductions.last!
        return (s, profile, dense)
    }

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-ladder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testALadderDeliversAModelPerRungAndResumesToTheSameBytes() throws {
        let settings = Self.ladderSettings()
        func run(_ out: URL, stopAt: (String, Int)? = nil, resume: Bool = false, cache: Bool = true) throws -> PruningSummary? {
            let f = P.fixture()
            let pipeline = try PruningPipeline(teacher: f.teacher, student: f.student, data: f.data, evaluator: f.evaluator,
                                               settings: settings, output: out)
            if !cache { pipeline.teacherCacheBytes = 0 }
            defer {
                let c = pipeline.finetuneTeacherCache
                print("teacher cache: \(c.hits) hits, \(c.misses) misses, \(c.bytes) bytes")
                if cache && stopAt == nil && !resume { XCTAssertEqual(c.hits, 2 * c.misses, "three rungs fine-tuned on one teacher pass") }
                if !cache { XCTAssertEqual(c.hits, 0) }
            }
            var measured: [String] = []
            pipeline.latencyMeter = { url in measured.append(url.path); return Double(measured.count) }
            pipeline.onStep = { [weak pipeline] stage, record, _ in
                if let stopAt, stage == stopAt.0, record.step == stopAt.1 { pipeline?.requestStop() }
            }
            do {
                let summary = try pipeline.run(resume: resume)
                XCTAssertEqual(measured.count, 3, "the last rung and two rungs (no teacher directory here): \(measured)")
                return summary
            } catch where stopAt != nil { return nil }
        }
        let whole = try temporaryDirectory()
        let summary = try XCTUnwrap(try run(whole))
        print(summary.text)
        let rungs = try XCTUnwrap(summary.rungs)
        XCTAssertEqual(rungs.map(\.label), ["0.30", "0.50", "0.70"])
        for rung in rungs {
            let exact = try XCTUnwrap(rung.exactSparsity, rung.label)
            print("rung \(rung.label): exact \(exact), pruned \(rung.prunedMetric ?? .nan), final \(rung.finalMetric ?? .nan), step \(rung.prunedStep ?? -1)")
            XCTAssertEqual(exact, rung.target, accuracy: 0.05 + 1e-9, rung.label)
            XCTAssertNotNil(rung.finalMetric)
            XCTAssertNotNil(rung.measuredLatencyMs)
            let dir = try XCTUnwrap(rung.finalDirectory)
            let model = try CompactModel.load(directory: URL(fileURLWithPath: dir))
            XCTAssertEqual(model.layout?.sparsity ?? .nan, exact, accuracy: 1e-12)
        }
        // Each rung pruned further than the one before, in the order of the ramp.
        XCTAssertLessThan(rungs[0].prunedStep!, rungs[1].prunedStep!)
        XCTAssertGreaterThan(rungs[0].encoderParameters!, rungs[1].encoderParameters!)
        XCTAssertGreaterThan(rungs[1].encoderParameters!, rungs[2].encoderParameters!)
        XCTAssertEqual(rungs[2].finalDirectory, summary.finalDirectory)
        let report = try String(contentsOf: whole.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("## Ladder"), report)
        XCTAssertTrue(FileManager.default.fileExists(atPath: whole.appendingPathComponent("figures/pareto_latency.svg").path))

        // Stopped in the pruning stage past the first rung, then in the second rung's fine-tuning, without the
        // teacher cache: the same bytes (the cache changes nothing but the time).
        let out = try temporaryDirectory()
        XCTAssertNil(try run(out, stopAt: ("prune", 20), cache: false))
        XCTAssertNil(try run(out, stopAt: ("rungs/0.50/finetune", 2), resume: true, cache: false))
        _ = try XCTUnwrap(try run(out, resume: true, cache: false))
        for file in ["rungs/0.30/final/model.safetensors", "rungs/0.50/final/model.safetensors", "final/model.safetensors",
                     "prune/rungs/0.30/model.safetensors", "prune/rungs/0.50/objective.safetensors"] {
            XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent(file)),
                           try Data(contentsOf: whole.appendingPathComponent(file)), file)
        }
    }

    func testALatencyTargetLandsThePredictedLatencyInTheGate() throws {
        let f = P.fixture()
        let (s, profile, dense) = try Self.latencySettings(f, fraction: 0.5)
        let out = try temporaryDirectory()
        let pipeline = try PruningPipeline(teacher: f.teacher, student: f.student, data: f.data, evaluator: f.evaluator,
                                           settings: s, output: out)
        var expected: [Double] = []
        pipeline.onStep = { stage, _, scalars in if stage == "prune" { expected.append(scalars["expected_sparsity"]!) } }
        let summary = try pipeline.run()
        print(summary.text)
        let predicted = try XCTUnwrap(summary.predictedLatencyMs)
        print("target \(dense * 0.5) ms, predicted \(predicted) ms (dense \(dense) ms)")
        XCTAssertEqual(predicted, dense * 0.5, accuracy: dense * 0.5 * 0.05 + 1e-9, "the gate: ± 5 % of the target")
        XCTAssertEqual(summary.targetLatencyMs ?? .nan, dense * 0.5, accuracy: 1e-9)
        XCTAssertNil(summary.gateMissed)
        let final = try CompactModel.load(directory: out.appendingPathComponent("final"))
        XCTAssertEqual(profile.predict(final.model.shape), predicted, accuracy: 1e-12)
        let report = try String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("predicted latency"), report)
    }

    /// A latency target and a size target at once: the tracking controller solves two multipliers per step, and at
    /// the end of the ramp both expected values sit on their targets; the delivered structure meets both gates.
    func testALatencyAndASizeTargetTogether() throws {
        let f = P.fixture()
        var (s, _, dense) = try Self.latencySettings(f, fraction: 0.6)
        s.sizeTarget = 0.6
        s.sparsityEpsilon = 0.06
        try s.validate()
        let out = try temporaryDirectory()
        let pipeline = try PruningPipeline(teacher: f.teacher, student: f.student, data: f.data, evaluator: f.evaluator,
                                           settings: s, output: out)
        var last: [String: Double] = [:]
        var lambdas: [Double] = []
        pipeline.onStep = { stage, _, scalars in
            guard stage == "prune" else { return }
            last = scalars
            lambdas.append(scalars["lambda_size"] ?? .nan)
        }
        let summary = try pipeline.run()
        print(summary.text)
        print("last step:", last)
        XCTAssertEqual(last["expected_latency_ms"]!, dense * 0.6, accuracy: dense * 0.6 * 0.01)
        XCTAssertEqual(last["expected_sparsity"]!, 0.6, accuracy: 0.01)
        XCTAssertTrue(lambdas.contains { $0 != 0 && $0.isFinite }, "the size multiplier works")
        XCTAssertNil(summary.gateMissed, "both gates met")
        XCTAssertEqual(summary.exactSparsity, 0.6, accuracy: 0.06 + 1e-9)
        XCTAssertEqual(summary.predictedLatencyMs ?? .nan, dense * 0.6, accuracy: dense * 0.6 * 0.05 + 1e-9)
        XCTAssertEqual(summary.sizeTarget ?? .nan, 0.6, accuracy: 1e-6)
        // Only with a latency target, the tracking controller and no ladder.
        var bad = s
        bad.controller = .budgetAware()
        XCTAssertThrowsError(try bad.validate()) { XCTAssertTrue("\($0)".contains("tracking controller"), "\($0)") }
        bad = s
        bad.latency = nil
        XCTAssertThrowsError(try bad.validate()) { XCTAssertTrue("\($0)".contains("latency target only"), "\($0)") }
    }

    func testRungsOutOfOrderAndLaddersTooLongForTheWarmUpAreRefused() throws {
        var s = Self.ladderSettings()
        s.rungs = [0.5, 0.3]
        XCTAssertThrowsError(try s.validate()) { XCTAssertTrue("\($0)".contains("out of order or repeated"), "\($0)") }
        s.rungs = [0.3, 0.7]
        XCTAssertThrowsError(try s.validate()) { XCTAssertTrue("\($0)".contains("out of order or repeated"), "\($0)") }
        s.rungs = [0.3, 0.5]
        s.rungHoldSteps = 12
        let f = P.fixture()
        let out = try temporaryDirectory()
        XCTAssertThrowsError(try PruningPipeline(teacher: f.teacher, student: f.student, data: f.data, evaluator: f.evaluator,
                                                 settings: s, output: out)) {
            XCTAssertTrue("\($0)".contains("needs a warm-up of more than 24 steps"), "\($0)")
        }
    }
}
