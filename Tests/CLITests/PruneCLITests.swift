import BERT
import Foundation
import Training
import XCTest

/// `cofi prune` run as a user runs it, on a tiny random teacher and student written to a temporary directory (a
/// word-level vocab.txt, 2 layers of width 16) and a few lines of CSV: the stages run, the compact model and
/// summary are written, the summary is printed; --resume / --force rules and bad input are named.
final class PruneCLITests: XCTestCase {
    func cofi(_ args: [String]) throws -> (Int32, String, String) { try runCofi(args) }

    var work: URL!
    func url(_ name: String) -> URL { work.appendingPathComponent(name) }

    static let words = ["good", "great", "fun", "loved", "bad", "dull", "awful", "bored", "film", "plot", "a", "the"]

    /// A tiny model directory under `work` (`writeTinyModel`).
    func writeModel(_ name: String, seed: UInt64, head: Bool, hidden: Int = 16, span: Bool = false) throws -> URL {
        try writeTinyModel(at: url(name), vocabulary: Self.words, seed: seed, head: head, hidden: hidden, span: span)
    }

    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-prune-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        var rows = ["text,label"], dev = ["text,label"]
        for i in 0..<24 {
            let good = i % 2 == 0
            let w = good ? ["good", "great", "fun", "loved"] : ["bad", "dull", "awful", "bored"]
            let line = "\"the film \(w[i % 4]) a plot\",\(good ? "positive" : "negative")"
            (i < 16 ? { rows.append($0) } : { dev.append($0) })(line)
        }
        try (rows.joined(separator: "\n") + "\n").write(to: url("train.csv"), atomically: true, encoding: .utf8)
        try (dev.joined(separator: "\n") + "\n").write(to: url("dev.csv"), atomically: true, encoding: .utf8)
        _ = try writeModel("teacher", seed: 1, head: true)
        _ = try writeModel("student", seed: 2, head: false)
    }

    override func tearDownWithError() throws {
        if let work { try? FileManager.default.removeItem(at: work) }
    }

    var base: [String] {
        ["prune", "--teacher", url("teacher").path, "--student", url("student").path, "--train", url("train.csv").path,
         "--dev", url("dev.csv").path, "--max-length", "12", "--batch-size", "4", "--target-sparsity", "0.5",
         "--epochs", "8", "--pre-pruning-epochs", "1", "--warmup-epochs", "2", "--finetune-epochs", "1",
         "--sparsity-epsilon", "0.05", "--budget-aware", "--eval-steps", "4", "--lr", "1e-3", "--logging-steps", "4"]
    }

    /// `base` with some options' values replaced.
    func base(with values: [String: String]) -> [String] {
        var args = base
        for (option, value) in values {
            let i = args.firstIndex(of: option)!
            args[i + 1] = value
        }
        return args
    }

    /// A budget too short for the band: the run still ends with a model, saying so on stderr and in the printed
    /// summary; with --require-gate it stops without one, naming the gate.
    func testARunThatMissesTheGateEndsWithTheClosestModel() throws {
        let short = base(with: ["--target-sparsity": "0.9", "--epochs": "3", "--warmup-epochs": "1",
                                "--sparsity-epsilon": "0.01"])
        let out = url("out-short")
        let (status, stdout, stderr) = try cofi(short + ["--out", out.path])
        XCTAssertEqual(status, 0, stderr)
        XCTAssertTrue(stderr.contains("WARNING: no evaluation met the checkpoint gate (exact sparsity within 0.9 ± ε 0.01); "
                                      + "delivering the closest"), stderr)
        XCTAssertTrue(stdout.contains("WARNING: no evaluation met the checkpoint gate"), stdout)
        for path in ["final/model.safetensors", "prune/closest/closest.json", "prune/closest/model.safetensors", "summary.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(path).path), path)
        }
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("summary.json"))) as? [String: Any]
        XCTAssertGreaterThan(summary?["gateGap"] as? Double ?? 0, 0, "\(summary ?? [:])")
        XCTAssertNotNil(summary?["gateMissed"] as? String, "\(summary ?? [:])")
        XCTAssertTrue((try String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8)).contains("**Warning:**"))
        // The model card says so too, with the gap.
        let card = try String(contentsOf: out.appendingPathComponent("final/README.md"), encoding: .utf8)
        XCTAssertTrue(card.contains("> **Warning:** no evaluation met the checkpoint gate (exact sparsity within 0.9 ± ε 0.01); "
                                    + "this model is the closest one, " + String(format: "%.4f", summary?["gateGap"] as? Double ?? .nan)
                                    + " outside it."), card)

        let (s2, _, e2) = try cofi(short + ["--out", url("out-strict").path, "--require-gate"])
        XCTAssertNotEqual(s2, 0)
        XCTAssertTrue(e2.contains("no evaluation met the checkpoint gate"), e2)
        XCTAssertFalse(FileManager.default.fileExists(atPath: url("out-strict/final").path))
    }

    /// The default controller (tracking, cubic ramp): the logged ŝ (before each step) equals the step's target t(k)
    /// from the second pruning step on, and λ1 is the solved multiplier (λ2 stays 0).
    func testTrackingControllerFollowsTheRamp() throws {
        var args = base(with: ["--logging-steps": "1", "--epochs": "4"])
        args.remove(at: args.firstIndex(of: "--budget-aware")!)
        let out = url("out-tracking")
        let (status, _, stderr) = try cofi(args + ["--out", out.path])
        XCTAssertEqual(status, 0, stderr)
        let lines = try String(contentsOf: out.appendingPathComponent("prune/metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let arguments = try XCTUnwrap(lines.first { $0["event"] as? String == "start" }?["arguments"] as? [String: String])
        XCTAssertEqual(arguments["ramp"], "cubic")
        XCTAssertEqual(arguments["tracking_horizon"], "10")
        let steps = lines.filter { $0["event"] as? String == "train" }
        XCTAssertGreaterThan(steps.count, 8)
        for step in steps.dropFirst() {
            let s = try XCTUnwrap(step["expected_sparsity"] as? Double), t = try XCTUnwrap(step["target_sparsity"] as? Double)
            XCTAssertEqual(s, t, accuracy: 1e-4, "\(step)")
            XCTAssertEqual(step["lambda_2"] as? Double, 0)
            XCTAssertTrue((step["lambda_1"] as? Double)?.isFinite ?? false)
        }
    }

    func testPruneEndToEnd() throws {
        let out = url("out")
        let (status, stdout, stderr) = try cofi(base + ["--out", out.path])
        XCTAssertEqual(status, 0, stderr)
        print(stdout)
        XCTAssertTrue(stdout.contains("exact sparsity"), stdout)
        XCTAssertTrue(stdout.contains("encoder parameters"), stdout)
        XCTAssertTrue(stderr.contains("[prune] step"), stderr)
        XCTAssertTrue(stderr.contains("ŝ "), stderr)
        for path in ["final/config.json", "final/model.safetensors", "final/vocab.txt", "pruned/model.safetensors",
                     "prune/best/model.safetensors", "prune/best_gates.safetensors", "prune/metrics.jsonl",
                     "summary.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(path).path), path)
        }
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("final/config.json"))) as? [String: Any]
        XCTAssertNotNil(config?["cofi"])
        // The head is described as transformers expects, with the task's label names (the student had no head).
        XCTAssertEqual(config?["architectures"] as? [String], ["BertForSequenceClassification"])
        XCTAssertEqual(config?["id2label"] as? [String: String], ["0": "negative", "1": "positive"])
        // The model card has the summary's exact sparsity and metrics, and the command (an argument with a space quoted).
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("summary.json"))) as! [String: Any]
        let card = try String(contentsOf: out.appendingPathComponent("final/README.md"), encoding: .utf8)
        let sparsity = try XCTUnwrap(summary["exactSparsity"] as? Double), metric = try XCTUnwrap(summary["finalMetric"] as? Double)
        let teacherMetric = try XCTUnwrap(summary["teacherMetric"] as? Double)
        XCTAssertTrue(card.hasPrefix("---\nlibrary_name: cofi\nbase_model: \"\(url("student").path)\"\n"), card)
        XCTAssertTrue(card.contains("| exact sparsity (of the prunable encoder parameters) | \(String(format: "%.4f", sparsity)) |"), card)
        XCTAssertTrue(card.contains("\n      value: \(metric)\n"), card)
        XCTAssertTrue(card.contains("| dev accuracy: this model | \(String(format: "%.4f", metric)) |"), card)
        XCTAssertTrue(card.contains("| dev accuracy: teacher | \(String(format: "%.4f", teacherMetric)) |"), card)
        XCTAssertTrue(card.contains(" prune --teacher \(url("teacher").path) --student "), card)
        XCTAssertTrue(card.contains("cannot load this directory"), card)
        XCTAssertTrue(card.contains("cofi eval --model \(out.path)/final --dev \(url("dev.csv").path) --max-length 12   # the dev metric"), card)
        // Every run measures the delivered model's and the teacher's latency (B = 1, T = 128 capped at the positions).
        let measured = try XCTUnwrap(summary["measuredLatencyMs"] as? Double), teacherMs = try XCTUnwrap(summary["measuredTeacherLatencyMs"] as? Double)
        XCTAssertNotNil(card.range(of: #"\| measured latency \(B = 1, T = \d+, \d+ threads?, [^)]+\) \| "#
                                   + String(format: "%.3f", measured) + " ms \\|", options: .regularExpression), card)
        XCTAssertTrue(card.contains("| the teacher's, measured alike | \(String(format: "%.3f", teacherMs)) ms |"), card)
        XCTAssertFalse(card.contains("**Warning:**"), card)
        // The final model evaluates with cofi eval, as its card says, to the metric the card has.
        let evalLine = try XCTUnwrap(card.components(separatedBy: "\n").first { $0.hasPrefix("cofi eval ") })
        let (s2, o2, e2) = try cofi(evalLine.components(separatedBy: "   #")[0].split(separator: " ").dropFirst().map(String.init))
        XCTAssertEqual(s2, 0, e2)
        XCTAssertTrue(o2.contains("accuracy \(String(format: "%.4f", metric))"), o2)

        // A second run into the same OUT is refused; --force starts over; --resume of a finished run is quick.
        let (s3, _, e3) = try cofi(base + ["--out", out.path])
        XCTAssertNotEqual(s3, 0)
        XCTAssertTrue(e3.contains("--resume"), e3)
        let (s4, _, e4) = try cofi(base + ["--out", out.path, "--resume"])
        XCTAssertEqual(s4, 0, e4)
        XCTAssertTrue(e4.contains("already done"), e4)
    }

    /// Extractive QA end to end: a span teacher, SQuAD v1.1 files, the span distillation (start and end averaged),
    /// compaction of a span model, and the F1 of the result.
    func testPruneSQuAD() throws {
        let squad = url("squad")
        try writeSQuADSample(to: squad)
        _ = try writeModel("qa-teacher", seed: 4, head: true, span: true)
        let out = url("qa-out")
        let (status, stdout, stderr) = try cofi(
            ["prune", "--teacher", url("qa-teacher").path, "--student", url("student").path, "--task", "squad",
             "--data", squad.path, "--max-length", "32", "--doc-stride", "8", "--batch-size", "16",
             "--target-sparsity", "0.5", "--epochs", "4", "--pre-pruning-epochs", "0", "--warmup-epochs", "2",
             "--finetune-epochs", "1", "--sparsity-epsilon", "0.2", "--budget-aware", "--eval-steps", "2",
             "--lr", "1e-3", "--logging-steps", "2", "--out", out.path])
        XCTAssertEqual(status, 0, stderr)
        XCTAssertTrue(stderr.contains("on squad: 9 training questions ("), stderr)
        XCTAssertTrue(stdout.contains("dev f1: teacher"), stdout)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("final/config.json"))) as! [String: Any]
        XCTAssertEqual(config["architectures"] as? [String], ["BertForQuestionAnswering"])
        XCTAssertNotNil(config["cofi"])
        let (s2, o2, e2) = try cofi(["eval", "--model", out.appendingPathComponent("final").path, "--task", "squad",
                                     "--data", squad.path, "--max-length", "32", "--doc-stride", "8"])
        XCTAssertEqual(s2, 0, e2)
        XCTAssertTrue(o2.contains("f1"), o2)
    }

    func testBadInputIsNamed() throws {
        func expectFailure(_ args: [String], _ fragment: String, line: UInt = #line) throws {
            let (status, _, stderr) = try cofi(args)
            XCTAssertNotEqual(status, 0, line: line)
            XCTAssertTrue(stderr.contains(fragment), "expected '\(fragment)' in: \(stderr)", line: line)
        }
        var args = base + ["--out", url("bad").path]
        let target = args.firstIndex(of: "--target-sparsity")! + 1
        args[target] = "1.2"
        try expectFailure(args, "strictly between 0 and 1")
        try expectFailure(["prune", "--teacher", url("teacher").path, "--student", url("student").path,
                           "--train", url("train.csv").path, "--target-sparsity", "0.5", "--out", url("bad").path],
                          "no dev set")
        _ = try writeModel("wide", seed: 3, head: false, hidden: 20)
        var wide = base + ["--out", url("bad").path]
        wide[wide.firstIndex(of: url("student").path)!] = url("wide").path
        try expectFailure(wide, "widths must match")
        var headless = base + ["--out", url("bad").path]
        headless[headless.firstIndex(of: url("teacher").path)!] = url("student").path
        try expectFailure(headless, "fine-tuned on the task")
        try expectFailure(base(with: ["--epochs": "8"]) + ["--controller", "pid", "--out", url("bad").path],
                          "--controller is 'pid'; expected one of tracking, budget-aware, paper")
        try expectFailure(base + ["--controller", "paper", "--out", url("bad").path], "--controller paper contradicts --budget-aware")
        try expectFailure(base + ["--controller", "tracking", "--out", url("bad").path], "--controller tracking contradicts --budget-aware")
        XCTAssertFalse(FileManager.default.fileExists(atPath: url("bad").path), "bad input must leave no output")
    }

    /// Issue 17 from the command line: a ladder of two sparsities delivers a compact model per rung with measured
    /// latencies in the summary and the report; a latency target with a profile runs, warning that the profile was
    /// measured elsewhere; and the bad input of both is refused before anything is written.
    func testLadderAndLatencyTargets() throws {
        let ladder = base(with: ["--target-sparsity": "0.3,0.5", "--eval-steps": "1"]).filter { $0 != "--budget-aware" }
            + ["--rung-hold-steps", "3", "--out", url("ladder").path]
        let (status, stdout, stderr) = try cofi(ladder)
        XCTAssertEqual(status, 0, stderr)
        print(stdout)
        let summary = try JSONDecoder().decode(LadderSummary.self, from: Data(contentsOf: url("ladder/summary.json")))
        XCTAssertEqual(summary.rungs.map(\.label), ["0.30", "0.50"])
        for r in summary.rungs {
            XCTAssertEqual(r.exactSparsity ?? .nan, r.target, accuracy: 0.05 + 1e-9, r.label)
            XCTAssertGreaterThan(r.measuredLatencyMs ?? 0, 0, r.label)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: url("ladder/rungs/0.30/final/model.safetensors").path))
        // Every rung's model card shows its own exact sparsity and measured latency.
        for r in summary.rungs {
            let dir = r.label == "0.50" ? "ladder/final" : "ladder/rungs/\(r.label)/final"
            let card = try String(contentsOf: url(dir).appendingPathComponent("README.md"), encoding: .utf8)
            XCTAssertTrue(card.contains("| exact sparsity (of the prunable encoder parameters) | \(String(format: "%.4f", r.exactSparsity ?? .nan)) |"), card)
            XCTAssertTrue(card.contains("| measured latency (B = 1, T = 32, "), card)  // the tiny model's max positions
            XCTAssertTrue(card.contains(" | \(String(format: "%.3f", r.measuredLatencyMs ?? .nan)) ms |"), card)
            XCTAssertTrue(card.contains("| target | sparsity \(r.label) |"), card)
        }
        let report = try String(contentsOf: url("ladder/report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("## Ladder"), report)

        // A latency target under a profile of this model (made up, and "measured" on another processor).
        let student = try BertModel.load(directory: url("student"))
        typealias B = LatencyProfile.Bilinear
        let profile = LatencyProfile(
            conditions: .init(batch: 1, sequenceLength: 12, threads: 1, processor: "another processor", kernels: "generic"),
            model: student.shape, pooled: true, base: .init(c0: 0.05, cD: 0.001),
            attention: B(c0: 0.02, cD: 0.001, cN: 0.01, cND: 0.001), lastAttention: B(c0: 0.01, cD: 0.0005, cN: 0.005, cND: 0.0005),
            ffn: B(c0: 0.01, cD: 0.001, cN: 0.001, cND: 0.0001), clsFFN: B(c0: 0.005, cD: 0.0002, cN: 0.0001, cND: 0.00001))
        try profile.write(to: url("profile.json"))
        let dense = profile.predict(student.shape)
        var latency = base + ["--out", url("latency").path, "--profile", url("profile.json").path, "--latency-tolerance", "0.1"]
        let t = latency.firstIndex(of: "--target-sparsity")!
        latency.replaceSubrange(t...(t + 1), with: ["--target-latency", String(format: "%.4f", dense / 2)])
        let (s2, out2, err2) = try cofi(latency)
        XCTAssertEqual(s2, 0, err2)
        XCTAssertTrue(err2.contains("warning: the latency profile") && err2.contains("another processor"), err2)
        print(out2)
        let latencySummary = try JSONDecoder().decode(LadderSummary.self, from: Data(contentsOf: url("latency/summary.json")))
        XCTAssertEqual(latencySummary.targetLatencyMs ?? .nan, dense / 2, accuracy: 1e-3)
        XCTAssertNotNil(latencySummary.predictedLatencyMs)
        XCTAssertNotNil(latencySummary.measuredLatencyMs)
        let latencyCard = try String(contentsOf: url("latency/final/README.md"), encoding: .utf8)
        XCTAssertTrue(latencyCard.contains("| target | latency " + String(format: "%.3f", dense / 2) + " ms as the profile predicts (± 10 %); "
                                           + "predicted for this structure " + String(format: "%.3f", latencySummary.predictedLatencyMs ?? .nan) + " ms |"),
                      latencyCard)
        XCTAssertTrue(latencyCard.contains("| " + String(format: "%.3f", latencySummary.measuredLatencyMs ?? .nan) + " ms |"), latencyCard)

        func expectFailure(_ args: [String], _ fragment: String, line: UInt = #line) throws {
            let (status, _, stderr) = try cofi(args)
            XCTAssertNotEqual(status, 0, line: line)
            XCTAssertTrue(stderr.contains(fragment), "expected '\(fragment)' in: \(stderr)", line: line)
        }
        let bad = ["--out", url("bad").path]
        try expectFailure(base(with: ["--target-sparsity": "0.5,0.3"]) + bad, "out of order or repeated")
        try expectFailure(base(with: ["--target-sparsity": "0.5,0.5"]) + bad, "out of order or repeated")
        try expectFailure(base(with: ["--target-sparsity": "0.5,x"]) + bad, "comma-separated list of numbers")
        try expectFailure(base(with: ["--target-sparsity": "0.3,0.5"]) + ["--target-latency", "2"] + bad, "a ladder takes one kind of target")
        try expectFailure(base + ["--target-latency", "2"] + bad, "--target-latency needs --profile")
        var noProfile = base + bad
        noProfile.replaceSubrange(t...(t + 1), with: ["--target-latency", "2"])
        try expectFailure(noProfile, "--target-latency needs --profile")
        var unreachable = noProfile + ["--profile", url("profile.json").path]
        unreachable[unreachable.firstIndex(of: "--target-latency")! + 1] = String(format: "%.4f", dense * 2)
        try expectFailure(unreachable, "cannot be reached")
        try expectFailure(noProfile + ["--profile", url("train.csv").path], "not a latency profile")
        XCTAssertFalse(FileManager.default.fileExists(atPath: url("bad").path), "bad input must leave no output")
    }
}

/// The fields of summary.json these tests read.
private struct LadderSummary: Decodable {
    struct Rung: Decodable {
        var target: Double
        var label: String
        var exactSparsity: Double?
        var measuredLatencyMs: Double?
    }
    var rungs: [Rung] = []
    var targetLatencyMs: Double?
    var predictedLatencyMs: Double?
    var measuredLatencyMs: Double?
    enum CodingKeys: String, CodingKey { case rungs, targetLatencyMs, predictedLatencyMs, measuredLatencyMs }
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        rungs = try c.decodeIfPresent([Rung].self, forKey: .rungs) ?? []
        targetLatencyMs = try c.decodeIfPresent(Double.self, forKey: .targetLatencyMs)
        predictedLatencyMs = try c.decodeIfPresent(Double.self, forKey: .predictedLatencyMs)
        measuredLatencyMs = try c.decodeIfPresent(Double.self, forKey: .measuredLatencyMs)
    }
}
