import BERT
import Foundation
import Runtime
import Tasks
import Training
import XCTest

/// Small random fine-tuned models written to a directory as `cofi finetune` writes them (config.json with labels,
/// model.safetensors with the head, a word-level vocab.txt) — for the predict and bench CLI tests.
enum TinyModels {
    static let words = ["the", "film", "plot", "was", "good", "great", "fun", "bad", "dull", "awful", "a", "and",
                        "who", "directed", "it", "ann", "lee", "in", "paris", "where", "made", "story", "."]

    /// Writes a random model with `task` into `dir` (classification: labels negative, positive).
    @discardableResult
    static func write(_ dir: URL, task: TaskHeadKind?, seed: UInt64, hidden: Int = 16, layers: Int = 2,
                      maxPositions: Int = 32) throws -> BertModel {
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
        let config = BertConfig(vocabSize: vocab.count, hiddenSize: hidden, numHiddenLayers: layers,
                                numAttentionHeads: 4, intermediateSize: 2 * hidden, maxPositionEmbeddings: maxPositions,
                                initializerRange: 0.2)
        let model = BertModel.randomlyInitialized(config: config, task: task, seed: seed)
        let labels: LabelKind? = task == .classification(labels: 2) ? .classification(names: ["negative", "positive"]) : nil
        try TrainingCheckpoint.write(to: dir, model: model, export: ModelExport(labels: labels, tokenizerDirectory: nil))
        // After the model: writing the checkpoint replaces the directory.
        try (vocab.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("vocab.txt"), atomically: true,
                                                          encoding: .utf8)
        return model
    }
}

/// `cofi predict` as a user runs it, on tiny random models in a temporary directory: every input format, ids,
/// truncation, per-line errors (empty lines, invalid UTF-8, malformed JSON, records of the wrong kind), streaming
/// answers before stdin is closed, equality with the `Predictor` library, and model directories from other tools.
final class PredictCLITests: XCTestCase {
    var work: URL!
    func url(_ name: String) -> URL { work.appendingPathComponent(name) }
    var classifier: URL { url("classifier") }

    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-predict-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        try TinyModels.write(classifier, task: .classification(labels: 2), seed: 1)
    }

    override func tearDownWithError() throws {
        if let work { try? FileManager.default.removeItem(at: work) }
    }

    /// The JSON objects of stdout's lines.
    func objects(_ stdout: String, file: StaticString = #filePath, line: UInt = #line) throws -> [[String: Any]] {
        try stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], String($0), file: file, line: line)
        }
    }

    func write(_ name: String, _ text: String) throws -> URL {
        try Data(text.utf8).write(to: url(name))
        return url(name)
    }

    func testTextLinesFromFileAndStdinWithPerLineErrors() throws {
        let text = "the film was good\n\nthe plot was awful and dull\r\n   \nfun\n"
        let (status, stdout, stderr) = try runCofi(["predict", "--model", classifier.path, "--input", write("in.txt", text).path])
        XCTAssertEqual(status, 0, stderr)
        let lines = try objects(stdout)
        XCTAssertEqual(lines.count, 5, stdout)
        for k in [0, 2, 4] {
            let p = try XCTUnwrap(lines[k]["probabilities"] as? [String: Double], stdout)
            XCTAssertEqual(Set(p.keys), ["negative", "positive"])
            XCTAssertEqual(p.values.reduce(0, +), 1, accuracy: 1e-5)
            XCTAssertEqual(lines[k]["label"] as? String, p["positive"]! > p["negative"]! ? "positive" : "negative")
            XCTAssertNil(lines[k]["truncated"])
        }
        XCTAssertEqual(lines[1]["error"] as? String, "line 2: empty line; expected a record")
        XCTAssertEqual(lines[3]["error"] as? String, "line 4: empty line; expected a record")
        // stdin gives the same answers; --skip-empty drops the empty lines' answers.
        let (s2, o2, e2) = try runCofi(["predict", "--model", classifier.path], input: Data(text.utf8))
        XCTAssertEqual(s2, 0, e2)
        XCTAssertEqual(o2, stdout)
        let (s3, o3, e3) = try runCofi(["predict", "--model", classifier.path, "--skip-empty"], input: Data(text.utf8))
        XCTAssertEqual(s3, 0, e3)
        XCTAssertEqual(o3.split(separator: "\n").map(String.init),
                       [0, 2, 4].map { String(stdout.split(separator: "\n")[$0]) })
    }

    func testAnswersEqualThePredictorLibrary() throws {
        let texts = ["the film was good", "awful", "a great story and a good plot", "ann lee directed it in paris"]
        let (status, stdout, stderr) = try runCofi(["predict", "--model", classifier.path, "--batch-size", "3"],
                                                   input: Data((texts.joined(separator: "\n") + "\n").utf8))
        XCTAssertEqual(status, 0, stderr)
        let model = try BertModel.load(directory: classifier)
        let predictor = try Predictor(model: model, tokenizer: WordPieceTokenizer.load(directory: classifier),
                                      labels: ["negative", "positive"])
        // The engine's sums may round differently with another batch composition: equal to float rounding.
        let expected = predictor.predict(texts.map { .text($0) })
        let answers = try stdout.split(separator: "\n").map {
            try JSONDecoder().decode(Prediction.self, from: Data($0.utf8))
        }
        XCTAssertEqual(answers.count, texts.count)
        for (a, e) in zip(answers, expected) {
            XCTAssertEqual(a.label, e.label)
            for (name, p) in e.probabilities! { XCTAssertEqual(a.probabilities?[name] ?? -1, p, accuracy: 1e-6) }
        }
        XCTAssertGreaterThan(Set(stdout.split(separator: "\n")).count, 3, "the random model must tell inputs apart")
    }

    func testJSONLinesIdsPairsAndBadLines() throws {
        var bytes = Data("""
            {"id": "a", "text": "the film was good"}
            {"id": 2, "text": "the plot", "text_pair": "was dull"}
            {"text": "the film", oops}
            [1, 2]
            {"id": 5, "question": "who directed it", "context": "ann lee directed it"}
            {"id": true, "text": "x"}
            {"id": 7, "text_pair": "fun"}

            """.utf8)
        bytes += Data([0x66, 0x75, 0x6e, 0xff, 0xfe, 0x0a])  // "fun" and invalid UTF-8, line 8
        bytes += Data(#"{"text": "the story", "text_pair": "was great"}"#.utf8)  // last line without "\n"
        let input = url("in.jsonl")
        try bytes.write(to: input)
        let (status, stdout, stderr) = try runCofi(["predict", "--model", classifier.path, "--input", input.path])
        XCTAssertEqual(status, 0, stderr)
        let lines = try objects(stdout)
        XCTAssertEqual(lines.count, 9, stdout)
        XCTAssertEqual(lines[0]["id"] as? String, "a")
        XCTAssertNotNil(lines[0]["label"])
        XCTAssertEqual(lines[1]["id"] as? Int, 2)
        XCTAssertNotNil(lines[1]["probabilities"])
        XCTAssertTrue((lines[2]["error"] as? String)?.hasPrefix("line 3: malformed JSON") ?? false, stdout)
        XCTAssertTrue((lines[3]["error"] as? String)?.hasPrefix("line 4: a JSON array, expected an object") ?? false, stdout)
        XCTAssertEqual(lines[4]["id"] as? Int, 5)
        XCTAssertTrue((lines[4]["error"] as? String)?.contains("line 5: a question and context need a question-answering") ?? false, stdout)
        XCTAssertEqual(lines[5]["error"] as? String, "line 6: \"id\" is a boolean; expected a string or a number")
        XCTAssertEqual(lines[6]["error"] as? String, "line 7: \"text_pair\" without \"text\"; expected both")
        XCTAssertEqual(lines[6]["id"] as? Int, 7)
        XCTAssertEqual(lines[7]["error"] as? String, "line 8: not valid UTF-8; expected UTF-8 text")
        XCTAssertNotNil(lines[8]["label"], stdout)

        // The same pair as TSV and with --pair-separator gives the same answer as JSON lines.
        let (_, tsv, _) = try runCofi(["predict", "--model", classifier.path, "--format", "tsv"],
                                      input: Data("the plot\twas dull\na\tb\tc\n".utf8))
        let tsvLines = try objects(tsv)
        XCTAssertEqual(tsvLines[0]["probabilities"] as? [String: Double], lines[1]["probabilities"] as? [String: Double])
        XCTAssertEqual(tsvLines[1]["error"] as? String,
                       "line 2: 3 tab-separated columns; expected 1 (text) or 2 (text, text_pair)")
        let (_, separated, _) = try runCofi(["predict", "--model", classifier.path, "--pair-separator", " ||| "],
                                            input: Data("the plot ||| was dull\n".utf8))
        XCTAssertEqual(try objects(separated)[0]["probabilities"] as? [String: Double],
                       lines[1]["probabilities"] as? [String: Double])
    }

    func testLongInputsAreTruncatedAndSaySo() throws {
        let long = Array(repeating: "the film was good", count: 12).joined(separator: " ")  // 48 tokens > 32 positions
        let (status, stdout, stderr) = try runCofi(["predict", "--model", classifier.path],
                                                   input: Data("\(long)\nfun\n".utf8))
        XCTAssertEqual(status, 0, stderr)
        let lines = try objects(stdout)
        XCTAssertEqual(lines[0]["truncated"] as? Bool, true, stdout)
        XCTAssertNotNil(lines[0]["label"])
        XCTAssertNil(lines[1]["truncated"])
        // --max-length truncates earlier; above the model's positions it is refused.
        let (_, o2, _) = try runCofi(["predict", "--model", classifier.path, "--max-length", "5"],
                                     input: Data("the film was good\n".utf8))
        XCTAssertEqual(try objects(o2)[0]["truncated"] as? Bool, true, o2)
        let (s3, _, e3) = try runCofi(["predict", "--model", classifier.path, "--max-length", "64"], input: Data())
        XCTAssertNotEqual(s3, 0)
        XCTAssertTrue(e3.contains("max length 64 is outside 3 … 32"), e3)
    }

    func testQuestionAnsweringModel() throws {
        let qa = url("qa")
        try TinyModels.write(qa, task: .span, seed: 4)
        let context = "the film was made in paris . ann lee directed it . the story was fun and the plot was good ."
        let input = #"{"id": 1, "question": "who directed it", "context": "\#(context)"}"# + "\n"
            + #"{"text": "the film"}"# + "\n"
        let (status, stdout, stderr) = try runCofi(["predict", "--model", qa.path, "--format", "jsonl",
                                                    "--max-length", "16", "--doc-stride", "4"], input: Data(input.utf8))
        XCTAssertEqual(status, 0, stderr)
        let lines = try objects(stdout)
        let answer = try XCTUnwrap(lines[0]["answer"] as? String, stdout)
        let start = try XCTUnwrap(lines[0]["start"] as? Int), end = try XCTUnwrap(lines[0]["end"] as? Int)
        XCTAssertEqual(String(String.UnicodeScalarView(Array(context.unicodeScalars)[start..<end])), answer)
        XCTAssertFalse(answer.isEmpty)
        XCTAssertGreaterThan(try XCTUnwrap(lines[0]["score"] as? Double), 0)
        XCTAssertTrue((lines[1]["error"] as? String)?.contains("give a question and a context") ?? false, stdout)
        // In the text formats a pair is the question and its context.
        let (_, tsv, _) = try runCofi(["predict", "--model", qa.path, "--format", "tsv", "--max-length", "16",
                                       "--doc-stride", "4"], input: Data("who directed it\t\(context)\n".utf8))
        XCTAssertEqual(try objects(tsv)[0]["answer"] as? String, answer)
    }

    /// Lines written one at a time to stdin are answered before stdin is closed.
    func testStreamsAnswersBeforeStdinCloses() throws {
        let p = Process()
        p.executableURL = productsDirectory.appendingPathComponent("cofi")
        p.arguments = ["predict", "--model", classifier.path, "--batch-size", "8"]
        let stdin = Pipe(), stdout = Pipe()
        p.standardInput = stdin
        p.standardOutput = stdout
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        final class Lines: @unchecked Sendable {
            let lock = NSLock()
            var buffer = Data()
            let arrived = DispatchSemaphore(value: 0)
        }
        let lines = Lines()
        stdout.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else { return }
            lines.lock.lock()
            lines.buffer += data
            let newlines = data.filter { $0 == 0x0a }.count
            lines.lock.unlock()
            for _ in 0..<newlines { lines.arrived.signal() }
        }
        for (k, text) in ["the film was good", "awful plot", "fun"].enumerated() {
            stdin.fileHandleForWriting.write(Data("\(text)\n".utf8))
            guard lines.arrived.wait(timeout: .now() + 60) == .success else {
                XCTFail("no answer to line \(k + 1) within 60 s while stdin is still open")
                break
            }
        }
        lines.lock.lock()
        let answered = String(decoding: lines.buffer, as: UTF8.self)
        lines.lock.unlock()
        XCTAssertEqual(answered.split(separator: "\n").count, 3, answered)
        XCTAssertTrue(p.isRunning, "cofi predict must wait for more input")
        try stdin.fileHandleForWriting.close()
        p.waitUntilExit()
        stdout.fileHandleForReading.readabilityHandler = nil
        XCTAssertEqual(p.terminationStatus, 0)
    }

    func testModelDirectoriesFromOtherToolsAreNamed() throws {
        func expectFailure(_ args: [String], _ fragments: [String], line: UInt = #line) throws {
            let (status, _, stderr) = try runCofi(args, input: Data("good\n".utf8))
            XCTAssertNotEqual(status, 0, line: line)
            for f in fragments { XCTAssertTrue(stderr.contains(f), "expected '\(f)' in: \(stderr)", line: line) }
        }
        try expectFailure(["predict", "--model", url("missing").path], ["no such directory", "cofi finetune"])
        let empty = url("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: empty.appendingPathComponent("pytorch_model.bin"))
        try expectFailure(["predict", "--model", empty.path], ["no config.json", "cofi finetune (OUT/best)", "cofi prune (OUT/final)"])
        let bare = url("bare")
        try TinyModels.write(bare, task: nil, seed: 2)
        try expectFailure(["predict", "--model", bare.path], ["no task head", "cofi finetune writes OUT/best"])
        try FileManager.default.removeItem(at: classifier.appendingPathComponent("vocab.txt"))
        try expectFailure(["predict", "--model", classifier.path], ["no tokenizer"])
        try expectFailure(["predict", "--model", bare.path, "--input", url("nope.txt").path], ["no task head"])
    }

    func testMissingInputFileIsNamed() throws {
        let (status, _, stderr) = try runCofi(["predict", "--model", classifier.path, "--input", url("nope.txt").path])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(stderr.contains("nope.txt: no such file"), stderr)
    }
}
