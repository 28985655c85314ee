import Foundation
import XCTest

/// `cofi finetune` and `cofi eval`, run as a user runs them, on all-MiniLM-L6-v2 and a few lines of CSV (a couple of
/// steps: these check the command line, not the learning).
final class FinetuneCLITests: XCTestCase {
    func cofi(_ args: [String]) throws -> (Int32, String, String) { try runCofi(args) }

    var work: URL!

    override func setUpWithError() throws {
        guard FileManager.default.fileExists(atPath: miniLM.appendingPathComponent("model.safetensors").path) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "\(miniLM.path) is missing: run scripts/fetch-assets.sh first"])
        }
        work = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-finetune-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let good = ["a wonderful, moving film", "great acting and a clever plot", "i loved every minute",
                    "funny and warm", "a delight", "beautifully shot", "the best film of the year", "charming"]
        let bad = ["a dull, lifeless mess", "the plot makes no sense", "i was bored", "awful acting",
                   "a waste of time", "badly edited", "the worst film of the year", "tedious"]
        var train = ["text,label"], dev = ["text,label"]
        for i in 0..<8 {
            (i < 6 ? { train.append($0) } : { dev.append($0) })("\"\(good[i])\",positive")
            (i < 6 ? { train.append($0) } : { dev.append($0) })("\"\(bad[i])\",negative")
        }
        train += ["\"not bad at all\",positive", "\"not good\",negative"]
        try (train.joined(separator: "\n") + "\n").write(to: url("train.csv"), atomically: true, encoding: .utf8)
        try (dev.joined(separator: "\n") + "\n").write(to: url("dev.csv"), atomically: true, encoding: .utf8)
    }

    override func tearDownWithError() throws {
        if let work { try? FileManager.default.removeItem(at: work) }
    }

    func url(_ name: String) -> URL { work.appendingPathComponent(name) }

    /// A short run: 2 steps of 4 examples at max length 16, evaluated after each.
    func finetuneArgs(out: String, _ extra: [String] = []) -> [String] {
        ["finetune", "--model", miniLM.path, "--train", url("train.csv").path, "--dev", url("dev.csv").path,
         "--out", url(out).path, "--max-steps", "2", "--batch-size", "4", "--max-length", "16", "--eval-steps", "1",
         "--logging-steps", "1"] + extra
    }

    func testFinetuneWritesAHuggingFaceCheckpointThatEvalScores() throws {
        let (status, out, err) = try cofi(finetuneArgs(out: "run"))
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(err.contains("fine-tuning \(miniLM.path) on train.csv: 14 training / 4 dev examples, 2 labels (negative, positive)"), err)
        XCTAssertTrue(err.contains("epoch 1/1  step 2/2  loss "), err)
        XCTAssertTrue(err.contains("eval at step 1 (epoch 0.25): accuracy "), err)
        XCTAssertTrue(out.contains("best accuracy "), out)

        let best = url("run/best")
        for file in ["config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                     "trainer_state.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: best.appendingPathComponent(file).path), file)
        }
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: best.appendingPathComponent("config.json"))) as! [String: Any]
        XCTAssertEqual(config["id2label"] as? [String: String], ["0": "negative", "1": "positive"])
        XCTAssertEqual(config["label2id"] as? [String: Int], ["negative": 0, "positive": 1])
        XCTAssertEqual(config["num_labels"] as? Int, 2)
        XCTAssertEqual(config["problem_type"] as? String, "single_label_classification")
        XCTAssertEqual(config["architectures"] as? [String], ["BertForSequenceClassification"])
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: best.appendingPathComponent("trainer_state.json"))) as! [String: Any]
        let bestMetric = try XCTUnwrap(state["best_metric"] as? Double)
        XCTAssertEqual((state["arguments"] as? [String: String])?["max_length"], "16")
        // The model card: the best evaluation's metric, the command, best/'s measured latency, no teacher.
        let card = try String(contentsOf: best.appendingPathComponent("README.md"), encoding: .utf8)
        XCTAssertTrue(card.hasPrefix("---\nlibrary_name: cofi\nbase_model: \"\(miniLM.path)\"\n"), card)
        XCTAssertTrue(card.contains("\n    - type: \"accuracy\"\n      value: \(bestMetric)\n"), card)
        XCTAssertTrue(card.contains("| dev accuracy: this model | \(String(format: "%.4f", bestMetric)) |"), card)
        XCTAssertTrue(card.contains(" finetune --model \(miniLM.path) "), card)
        XCTAssertTrue(card.contains("Tokenizer.from_file(\"\(best.path)/tokenizer.json\")"), card)
        XCTAssertTrue(card.contains("AutoModelForSequenceClassification.from_pretrained"), card)
        XCTAssertFalse(card.contains("teacher"), card)
        XCTAssertNotNil(card.range(of: #"\| measured latency \(B = 1, T = 128, \d+ threads?, [^)]+\) \| \d+\.\d{3} ms \|"#,
                                   options: .regularExpression), card)

        let lines = try String(contentsOf: url("run/metrics.jsonl")).split(separator: "\n")
        let events = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }.map { $0["event"] as! String }
        XCTAssertEqual(events, ["start", "train", "eval", "train", "eval", "end"])

        // eval reads the dev file with the model's labels and the max length it was trained with.
        let (s2, json, e2) = try cofi(["eval", "--model", best.path, "--dev", url("dev.csv").path, "--json"])
        XCTAssertEqual(s2, 0, e2)
        let result = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        XCTAssertEqual(result["value"] as? Double, bestMetric)
        XCTAssertEqual(result["max_length"] as? Int, 16)
        XCTAssertEqual(result["examples"] as? Int, 4)
        let (s3, text, e3) = try cofi(["eval", "--model", best.path, "--dev", url("dev.csv").path])
        XCTAssertEqual(s3, 0, e3)
        XCTAssertTrue(text.hasPrefix("dev.csv dev, 4 examples, max length 16: accuracy "), text)
    }

    func testAnExistingRunNeedsForceOrAMatchingResume() throws {
        XCTAssertEqual(try cofi(finetuneArgs(out: "run")).0, 0)
        let (s1, _, e1) = try cofi(finetuneArgs(out: "run"))
        XCTAssertNotEqual(s1, 0)
        XCTAssertTrue(e1.contains("\(url("run").path) holds another training run (its checkpoint is at step 2 of 2); continue it with --resume"), e1)

        let (s2, _, e2) = try cofi(finetuneArgs(out: "run", ["--resume", "--learning-rate", "3e-5"]))
        XCTAssertNotEqual(s2, 0)
        XCTAssertTrue(e2.contains("cannot resume") && e2.contains("learning_rate: 2e-05 vs 3e-05"), e2)
        let (s3, _, e3) = try cofi(finetuneArgs(out: "run", ["--resume", "--max-length", "12"]))
        XCTAssertNotEqual(s3, 0)
        XCTAssertTrue(e3.contains("max_length: 16 vs 12"), e3)

        let (s4, _, e4) = try cofi(finetuneArgs(out: "run", ["--resume"]))
        XCTAssertEqual(s4, 0, e4)
        XCTAssertTrue(e4.contains("resuming at step 2 of 2"), e4)

        try "mine".write(to: url("run/notes.txt"), atomically: true, encoding: .utf8)
        let (s5, _, e5) = try cofi(finetuneArgs(out: "run", ["--force"]))
        XCTAssertEqual(s5, 0, e5)
        XCTAssertEqual(try String(contentsOf: url("run/notes.txt")), "mine", "--force replaces only the run's files")

        try FileManager.default.createDirectory(at: url("theirs"), withIntermediateDirectories: true)
        try "x".write(to: url("theirs/data.bin"), atomically: true, encoding: .utf8)
        let (s6, _, e6) = try cofi(finetuneArgs(out: "theirs"))
        XCTAssertNotEqual(s6, 0)
        XCTAssertTrue(e6.contains("exists and is not empty (it holds data.bin)"), e6)
        let (s7, _, e7) = try cofi(finetuneArgs(out: "nothing-here", ["--resume"]))
        XCTAssertNotEqual(s7, 0)
        XCTAssertTrue(e7.contains("nothing to resume in"), e7)
    }

    func testBadInputIsNamedAndLeavesNoOutput() throws {
        func fails(_ args: [String], _ expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
            let (status, _, err) = try cofi(args)
            XCTAssertNotEqual(status, 0, file: file, line: line)
            XCTAssertTrue(err.contains(expected), "expected “\(expected)” in: \(err)", file: file, line: line)
            XCTAssertFalse(FileManager.default.fileExists(atPath: url("out").path), "no output for a refused run", file: file, line: line)
        }
        try fails(finetuneArgs(out: "out", ["--batch-size", "0"]), "--batch-size is 0; expected a positive number")
        try fails(finetuneArgs(out: "out", ["--learning-rate", "nan"]), "--learning-rate is nan; expected a finite positive number")
        var noSteps = finetuneArgs(out: "out")
        noSteps.removeSubrange(noSteps.firstIndex(of: "--max-steps")!...noSteps.firstIndex(of: "--max-steps")! + 1)
        try fails(noSteps + ["--epochs", "0"], "--epochs is 0; expected a positive number")

        // A model directory without weights.
        let weightless = url("weightless")
        try FileManager.default.createDirectory(at: weightless, withIntermediateDirectories: true)
        for f in ["config.json", "vocab.txt", "tokenizer_config.json"] {
            try FileManager.default.copyItem(at: miniLM.appendingPathComponent(f), to: weightless.appendingPathComponent(f))
        }
        var args = finetuneArgs(out: "out")
        args[args.firstIndex(of: miniLM.path)!] = weightless.path
        try fails(args, "\(weightless.path)/model.safetensors: no such file")

        // A training file with no examples; a dev label the training file does not have.
        try "text,label\n".write(to: url("empty.csv"), atomically: true, encoding: .utf8)
        args = finetuneArgs(out: "out")
        args[args.firstIndex(of: url("train.csv").path)!] = url("empty.csv").path
        try fails(args, "\(url("empty.csv").path): no examples")
        try "text,label\n\"fine\",positive\n\"so-so\",mixed\n".write(to: url("dev2.csv"), atomically: true, encoding: .utf8)
        args = finetuneArgs(out: "out")
        args[args.firstIndex(of: url("dev.csv").path)!] = url("dev2.csv").path
        try fails(args, "\(url("dev2.csv").path):3: column 2 (label): label \"mixed\" is not in the label set")

        try fails(["finetune", "--model", miniLM.path, "--task", "sst3", "--out", url("out").path], "unknown task 'sst3'")
    }

    func testSQuADFinetuneAndEval() throws {
        let squad = url("squad")
        try writeSQuADSample(to: squad)

        let (status, out, err) = try cofi(["finetune", "--model", miniLM.path, "--task", "squad", "--data", squad.path,
                                           "--out", url("qa").path, "--max-steps", "1", "--batch-size", "2",
                                           "--max-length", "64", "--doc-stride", "24"])
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(err.contains("on squad: 9 training questions (34 windows) / 1 dev questions ("), err)
        XCTAssertTrue(out.contains("best f1 "), out)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: url("qa/best/config.json"))) as! [String: Any]
        XCTAssertEqual(config["architectures"] as? [String], ["BertForQuestionAnswering"])
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: url("qa/best/trainer_state.json"))) as! [String: Any]

        let (s2, result, e2) = try cofi(["eval", "--model", url("qa/best").path, "--task", "squad", "--data", squad.path, "--json"])
        XCTAssertEqual(s2, 0, e2)
        let scores = try JSONSerialization.jsonObject(with: Data(result.utf8)) as! [String: Any]
        XCTAssertEqual(scores["primary"] as? String, "f1")
        XCTAssertEqual(scores["value"] as? Double, state["best_metric"] as? Double)
        XCTAssertEqual((scores["metrics"] as? [String: Double]).map { Set($0.keys) }, ["exact_match", "f1"])

        let (s3, _, e3) = try cofi(["eval", "--model", url("qa/best").path, "--dev", url("dev.csv").path])
        XCTAssertNotEqual(s3, 0)
        XCTAssertTrue(e3.contains("evaluate it with --task squad"), e3)
    }

    func testEvalNeedsATaskHead() throws {
        let (status, _, err) = try cofi(["eval", "--model", miniLM.path, "--dev", url("dev.csv").path])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("the model has no task head"), err)
    }
}
