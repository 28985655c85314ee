import BERT
import Foundation
import Tasks
import Tensor
import XCTest
@testable import Training

/// What the trainer refuses, and what it never overwrites: every error names the field, file or value at fault.
final class TrainerBadInputTests: XCTestCase {
    func testConfigurationErrorsNameTheFieldAndValue() {
        func error(_ change: (inout TrainerConfiguration) -> Void) -> String {
            var c = TrainerConfiguration()
            change(&c)
            do { try c.validate() } catch { return "\(error)" }
            return "no error"
        }
        XCTAssertEqual(error { $0.batchSize = 0 }, "batch_size is 0; expected a positive number of examples")
        XCTAssertEqual(error { $0.learningRate = .nan }, "learning_rate is nan; expected a finite positive number")
        XCTAssertEqual(error { $0.learningRate = -1e-5 }, "learning_rate is -1e-05; expected a finite positive number")
        XCTAssertEqual(error { $0.epochs = 0 }, "epochs is 0; expected a positive number of epochs (or max_steps)")
        XCTAssertEqual(error { $0.maxSteps = 0 }, "max_steps is 0; expected a positive number of steps")
        XCTAssertEqual(error { $0.warmupRatio = 1.5 }, "warmup_ratio is 1.5; expected a number in [0, 1]")
        XCTAssertEqual(error { $0.weightDecay = .infinity }, "weight_decay is inf; expected a finite number ≥ 0")
        XCTAssertEqual(error { $0.evalSteps = 0 }, "eval_steps is 0; expected a positive number of steps")
        XCTAssertEqual(error { $0.maxGradNorm = 0 }, "max_grad_norm is 0.0; expected a finite positive number")
        XCTAssertEqual(error { $0.epochs = 0; $0.maxSteps = 10 }, "no error", "max_steps replaces epochs")
    }

    func testTrainerValidatesBeforeTouchingAnything() throws {
        let dir = try TinyRun.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let parts = try TinyRun.parts(dir)
        var bad = TinyRun.configuration
        bad.learningRate = .nan
        XCTAssertThrowsError(try Trainer(model: TinyRun.model(), data: parts.batcher, configuration: bad)) {
            XCTAssertEqual("\($0)", "learning_rate is nan; expected a finite positive number")
        }
        let empty = Batcher(examples: [], padId: 0, options: BatchingOptions(batchSize: 4))
        XCTAssertThrowsError(try Trainer(model: TinyRun.model(), data: empty, configuration: TinyRun.configuration)) {
            XCTAssertEqual("\($0)", "the training set has no examples")
        }
    }

    func testTaskFilesWithoutExamplesOrWithUnknownDevLabelsAreNamed() throws {
        let dir = try TinyRun.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let train = dir.appendingPathComponent("train.csv"), dev = dir.appendingPathComponent("dev.csv")

        let headerOnly = dir.appendingPathComponent("empty.csv")
        try "text,label\n".write(to: headerOnly, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TaskSource.files(train: headerOnly, dev: dev, spec: UserDataSpec()).load(train: true)) {
            XCTAssertTrue("\($0)".hasPrefix(headerOnly.path), "\($0)")
            XCTAssertTrue("\($0)".contains("no examples"), "\($0)")
        }

        let unknown = dir.appendingPathComponent("dev-unknown.csv")
        try "text,label\ngood movie,pos\nthe plot,neutral\n".write(to: unknown, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TaskSource.files(train: train, dev: unknown, spec: UserDataSpec()).load(train: true)) {
            let message = "\($0)"
            XCTAssertTrue(message.hasPrefix("\(unknown.path):3: column "), message)
            XCTAssertTrue(message.contains("label \"neutral\" is not in the label set"), message)
            XCTAssertTrue(message.contains("\"neg\", \"pos\""), message)
        }

        let oneLabel = dir.appendingPathComponent("one-label.csv")
        try "text,label\ngood movie,pos\ngreat film,pos\n".write(to: oneLabel, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TaskSource.files(train: oneLabel, dev: oneLabel, spec: UserDataSpec()).load(train: true)) {
            XCTAssertTrue("\($0)".contains("the training set has 1 label value(s) (pos)"), "\($0)")
        }

        XCTAssertThrowsError(try TaskSource.named("sst3", data: nil, assets: dir)) {
            XCTAssertTrue("\($0)".hasPrefix("unknown task 'sst3'; expected movie-snippets or a GLUE task"), "\($0)")
        }
        XCTAssertThrowsError(try TaskSource.named("sst2", data: dir.appendingPathComponent("nope"), assets: dir)) {
            XCTAssertTrue("\($0)".contains("nope: no such directory"), "\($0)")
        }
    }

    func testModelDirectoryWithoutWeightsIsNamed() throws {
        let dir = try TinyRun.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try TinyRun.config.write(to: dir.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try BertModel.load(directory: dir, task: .classification(labels: 2))) {
            XCTAssertTrue("\($0)".contains(dir.appendingPathComponent("model.safetensors").path + ": no such file"), "\($0)")
        }
    }

    func testOutputDirectoryRulesNeverOverwriteWithoutForce() throws {
        let dir = try TinyRun.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default

        // A directory of the user's: refused; --force writes beside the user's files and keeps them.
        let mine = dir.appendingPathComponent("mine")
        try fm.createDirectory(at: mine, withIntermediateDirectories: true)
        try "notes".write(to: mine.appendingPathComponent("notes.txt"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainingOutput.prepare(mine, mode: .fresh)) {
            XCTAssertTrue("\($0)".contains("exists and is not empty (it holds notes.txt)"), "\($0)")
        }
        XCTAssertThrowsError(try TrainingOutput.prepare(mine, mode: .resume)) {
            XCTAssertTrue("\($0)".hasPrefix("nothing to resume in \(mine.path)"), "\($0)")
        }
        let parts = try TinyRun.parts(dir)
        var short = TinyRun.configuration
        short.maxSteps = 4
        let output = try TrainingOutput.prepare(mine, mode: .force)
        try Trainer(model: TinyRun.model(), data: parts.batcher, configuration: short, evaluator: parts.evaluator,
                    output: output, export: parts.export).train()
        XCTAssertEqual(try String(contentsOf: mine.appendingPathComponent("notes.txt")), "notes")

        // Now it holds a run: refused, with the way out named; --force replaces only the run's files.
        XCTAssertThrowsError(try TrainingOutput.prepare(mine, mode: .fresh)) {
            let m = "\($0)"
            XCTAssertTrue(m.contains("holds another training run (its checkpoint is at step 4 of 4)"), m)
            XCTAssertTrue(m.contains("--resume") && m.contains("--force"), m)
        }
        _ = try TrainingOutput.prepare(mine, mode: .force)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: mine.path), ["notes.txt"])

        let file = dir.appendingPathComponent("a-file")
        try "x".write(to: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainingOutput.prepare(file, mode: .force)) {
            XCTAssertTrue("\($0)".contains("exists and is not a directory"), "\($0)")
        }
    }

    func testCheckpointWritesAreAtomic() throws {
        let dir = try TinyRun.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let parts = try TinyRun.parts(dir)
        let target = dir.appendingPathComponent("ckpt")
        let model = TinyRun.model()
        try TrainingCheckpoint.write(to: target, model: model, export: parts.export)
        let before = try Data(contentsOf: target.appendingPathComponent("model.safetensors"))

        // A write that fails after the weights, config and vocab are staged leaves the old directory as it was.
        model.namedParameters[0].1.update { $0.scalars[0] += 1 }
        XCTAssertThrowsError(try TrainingCheckpoint.write(to: target, model: model, export: parts.export,
                                                          objectiveTensors: ["__metadata__": Tensor(zeros: [1])]))
        XCTAssertEqual(try Data(contentsOf: target.appendingPathComponent("model.safetensors")), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }, [])

        // A crash between the two renames leaves the previous directory renamed aside; it is put back.
        let aside = TrainingCheckpoint.previousURL(target)
        try FileManager.default.moveItem(at: target, to: aside)
        TrainingCheckpoint.recover(target)
        XCTAssertEqual(try Data(contentsOf: target.appendingPathComponent("model.safetensors")), before)
        XCTAssertFalse(FileManager.default.fileExists(atPath: aside.path))
    }
}
