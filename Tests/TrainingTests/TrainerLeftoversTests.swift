import BERT
import Foundation
import Tensor
import XCTest
@testable import Training

/// What a stopped or killed run leaves behind: the partial writes of dead processes are removed at the next start
/// (and only those), a run that diverged names why `--resume` would not help, and the wall time adds up across
/// resumes.
final class TrainerLeftoversTests: XCTestCase {
    /// The id of a process that has exited (and been reaped), so that `kill(pid, 0)` fails with ESRCH.
    func deadProcessID() throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "exit 0"]
        try p.run()
        p.waitUntilExit()
        return p.processIdentifier
    }

    func testLeftoversOfDeadProcessesAreRemovedAtEveryStart() throws {
        let dir = try TinyRun.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        let dead = try deadProcessID()
        let live = ProcessInfo.processInfo.processIdentifier
        let hex = { (pid: Int32) in String(pid, radix: 16, uppercase: true) }
        let uuid = UUID().uuidString
        let ours = [".checkpoint.partial-\(dead)", ".best.partial-\(dead)", ".dat.nosync\(hex(dead)).a1B2c3",
                    ".model.safetensors.\(uuid).tmp", ".best_gates.safetensors.\(uuid).tmp"]
        let kept = [".checkpoint.partial-\(live)", ".best.partial-\(live)", ".dat.nosync\(hex(live)).a1B2c3",
                    ".other.partial-\(dead)", ".checkpoints.partial-\(dead)", ".dat.nosync\(hex(dead)).a1B2",
                    ".notes.txt.\(uuid).tmp", ".safetensors.\(uuid).tmp", "notes.txt"]

        func populate(_ out: URL) throws {
            try fm.createDirectory(at: out, withIntermediateDirectories: true)
            for name in ours + kept {
                let url = out.appendingPathComponent(name)
                if name.contains(".partial-") {
                    try fm.createDirectory(at: url, withIntermediateDirectories: true)
                    try Data(count: 64).write(to: url.appendingPathComponent("model.safetensors"))
                } else {
                    try Data(count: 64).write(to: url)
                }
            }
        }
        // Every mode sweeps: a resume, a forced start, and a fresh start (refused here for notes.txt, but swept).
        let parts = try TinyRun.parts(dir)
        var short = TinyRun.configuration
        short.maxSteps = 4
        let run = dir.appendingPathComponent("run")
        try fm.createDirectory(at: run, withIntermediateDirectories: true)
        try Trainer(model: TinyRun.model(), data: parts.batcher, configuration: short, evaluator: parts.evaluator,
                    output: try TrainingOutput.prepare(run, mode: .fresh), export: parts.export).train()
        for mode in [TrainingOutput.Mode.resume, .force, .fresh] {
            try populate(run)
            _ = try? TrainingOutput.prepare(run, mode: mode)
            let left = Set(try fm.contentsOfDirectory(atPath: run.path))
            XCTAssertTrue(left.isDisjoint(with: ours), "\(mode): \(left.intersection(ours).sorted())")
            XCTAssertTrue(left.isSuperset(of: kept), "\(mode): \(Set(kept).subtracting(left).sorted())")
        }
        // A directory that holds nothing but a dead run's leftovers takes a fresh run.
        let empty = dir.appendingPathComponent("only-leftovers")
        try fm.createDirectory(at: empty, withIntermediateDirectories: true)
        for name in ours { try Data(count: 8).write(to: empty.appendingPathComponent(name)) }
        _ = try TrainingOutput.prepare(empty, mode: .fresh)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: empty.path), [])
    }

    /// A NaN loss stops the run with advice; `--resume` then refuses, naming the step, the checkpoint before it and
    /// the learning rate to lower, instead of diverging at the same step again; `--force` starts over.
    func testDivergedRunNamesWhyResumeCannotHelp() throws {
        let dir = try TinyRun.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let parts = try TinyRun.parts(dir)
        let out = dir.appendingPathComponent("run")
        func trainer(_ mode: TrainingOutput.Mode) throws -> Trainer {
            let output = try TrainingOutput.prepare(out, mode: mode)
            return try Trainer(model: TinyRun.model(), data: parts.batcher, configuration: TinyRun.configuration,
                               evaluator: parts.evaluator, output: output, export: parts.export,
                               arguments: ["task": "tiny"])
        }
        let first = try trainer(.fresh)
        first.onStep = { record in
            // After step 14 (last checkpoint: step 12) the classifier turns NaN: step 15's loss is NaN.
            if record.step == 14 { let w = first.model.head!.weight; w.assign(w.value.map { _ in Float.nan }) }
        }
        XCTAssertThrowsError(try first.train()) {
            let m = "\($0)"
            XCTAssertTrue(m.hasPrefix("step 15 (epoch 2, batch 5 of 10): the loss is nan; training stopped"), m)
            XCTAssertTrue(m.contains("The last checkpoint is \(out.path)/checkpoint (step 12)"), m)
            XCTAssertTrue(m.contains("resuming with the same settings would stop at step 15 again: start over (--force) "
                                     + "with a lower --learning-rate (this run's is 0.01)"), m)
        }
        let output = TrainingOutput(directory: out)
        XCTAssertEqual(output.divergence(after: 12)?.step, 15)
        XCTAssertNil(output.divergence(after: 15))

        let second = try trainer(.resume)
        XCTAssertThrowsError(try second.resume(from: output.checkpoint)) {
            XCTAssertEqual("\($0)", "cannot resume: the run stopped at step 15 because the loss is nan, after its last "
                + "checkpoint (\(out.path)/checkpoint, step 12). Training is deterministic (same data order, dropout and "
                + "updates), so resuming with the same settings would stop at step 15 again: start over (--force) with "
                + "a lower --learning-rate (this run's is 0.01)")
        }
        let third = try trainer(.force)
        XCTAssertEqual(try third.train().steps, 60)
    }

    /// A run stopped on request and resumed: the state's wall seconds are the sum of both processes' time in
    /// `train()`, and the checkpoint keeps them.
    func testWallSecondsAddUpAcrossResumes() throws {
        let dir = try TinyRun.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let parts = try TinyRun.parts(dir)
        let out = dir.appendingPathComponent("run")
        var measured = 0.0
        func run(_ mode: TrainingOutput.Mode, stopAfter: Int?) throws -> TrainingSummary? {
            let output = try TrainingOutput.prepare(out, mode: mode)
            let trainer = try Trainer(model: TinyRun.model(), data: parts.batcher, configuration: TinyRun.configuration,
                                      evaluator: parts.evaluator, output: output, export: parts.export)
            if mode == .resume { try trainer.resume(from: output.checkpoint) }
            var firstStep: Double?
            trainer.onStep = { record in
                let now = Trainer.now()
                if firstStep == nil { firstStep = now }
                if record.step == 3 { Thread.sleep(forTimeInterval: 0.3) }
                if record.step == stopAfter { trainer.requestStop() }
                if record.step == stopAfter || record.step == trainer.totalSteps { measured += now - firstStep! }
            }
            do { return try trainer.train() } catch let e as TrainerError where stopAfter != nil {
                XCTAssertTrue(e.description.hasPrefix("stopped on request after step \(stopAfter!)"), e.description)
                return nil
            }
        }
        XCTAssertNil(try run(.fresh, stopAfter: 20))
        let stopped = try XCTUnwrap(TrainingCheckpoint.readState(out.appendingPathComponent("checkpoint")).wallSeconds)
        XCTAssertGreaterThanOrEqual(stopped, 0.3)
        let summary = try XCTUnwrap(try run(.resume, stopAfter: nil))
        print("wall seconds over both processes \(summary.wallSeconds), measured between their steps \(measured)")
        XCTAssertGreaterThanOrEqual(summary.wallSeconds, measured)
        XCTAssertGreaterThan(summary.wallSeconds, summary.seconds + 0.3, "the first process's time is included")
        let saved = try XCTUnwrap(TrainingCheckpoint.readState(out.appendingPathComponent("checkpoint")).wallSeconds)
        XCTAssertGreaterThan(saved, stopped)
        XCTAssertLessThanOrEqual(saved, summary.wallSeconds)
    }
}
