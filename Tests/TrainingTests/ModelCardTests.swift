import BERT
import Formats
import Foundation
import Tensor
import XCTest
@testable import Training

/// The model card (`ModelCard`): its front matter reads as the Hugging Face keys, the structure table follows the
/// config's shape, unknown numbers are left out, the command is shell-quoted, and the write is atomic.
final class ModelCardTests: XCTestCase {
    var work: URL!

    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-card-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let work { try? FileManager.default.removeItem(at: work) }
    }

    /// The dense config of the tiny models: 3 layers of 4 heads (width 24) and 20 FFN units, a 2-label classifier.
    func denseConfig() -> BertConfig {
        var c = BertConfig(vocabSize: 30, hiddenSize: 24, numHiddenLayers: 3, numAttentionHeads: 4, intermediateSize: 20,
                           maxPositionEmbeddings: 64)
        c.architectures = ["BertForSequenceClassification"]
        c.problemType = "single_label_classification"
        c.numLabels = 2
        c.id2label = ["0": "negative", "1": "positive"]
        c.label2id = ["negative": 0, "positive": 1]
        return c
    }

    /// A model directory `name/final` holding only `config` (all a card reads) and, when asked, tokenizer.json.
    func directory(_ name: String, config: BertConfig, tokenizerJSON: Bool = false) throws -> URL {
        let dir = work.appendingPathComponent(name).appendingPathComponent("final")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try config.write(to: dir.appendingPathComponent("config.json"))
        if tokenizerJSON { try Data("{}".utf8).write(to: dir.appendingPathComponent("tokenizer.json")) }
        return dir
    }

    /// The front matter's lines, between the two `---`.
    func frontMatter(_ card: String) -> [String] {
        let lines = card.components(separatedBy: "\n")
        XCTAssertEqual(lines.first, "---")
        let end = lines.dropFirst().firstIndex(of: "---") ?? lines.count
        return Array(lines[1..<end])
    }

    func testFrontMatterHasTheHuggingFaceKeys() throws {
        let layout = CompactLayout(describing: BertShape(vocabSize: 30, hiddenSize: 16, headDim: 6, maxPositions: 64, typeVocabSize: 2,
                                                         layers: [.init(heads: 2, ffnWidth: 10), .init(heads: 0, ffnWidth: 20),
                                                                  .init(heads: 4, ffnWidth: 0)]),
                                   config: denseConfig())
        var config = denseConfig()
        config.compact = layout
        var card = try ModelCard(directory: directory("run \"1\"", config: config, tokenizerJSON: true))
        card.origin = .prune
        card.baseModel = "/models/mini \"LM\""
        card.teacher = "/runs/teacher/best"
        card.dataset = "movie-snippets"
        card.metricName = "accuracy"
        card.metric = 0.8333333333333334
        card.teacherMetric = 0.875
        card.target = "sparsity 0.60"
        let yaml = frontMatter(card.markdown())
        XCTAssertEqual(yaml, [
            "library_name: cofi",
            #"base_model: "/models/mini \"LM\"""#,
            "pipeline_tag: text-classification",
            "tags:", "- cofi", "- bert", "- structured-pruning", "- compact", "- text-classification",
            "model-index:",
            #"- name: "run \"1\"/final""#,
            "  results:",
            "  - task:",
            "      type: text-classification",
            "    dataset:",
            #"      name: "movie-snippets""#,
            #"      type: "movie-snippets""#,
            "      split: dev",
            "    metrics:",
            #"    - type: "accuracy""#,
            "      value: 0.8333333333333334",
            #"      name: "dev accuracy""#,
        ])
        // Every line is a key, a list item or a nested key, two spaces per level: what a YAML reader needs.
        for line in yaml {
            let indent = line.prefix { $0 == " " }.count
            XCTAssertEqual(indent % 2, 0, line)
            let body = line.dropFirst(indent)
            XCTAssertTrue(body.hasPrefix("- ") || body.contains(": ") || body.hasSuffix(":"), line)
        }
        let text = card.markdown()
        XCTAssertTrue(text.contains("A compact BERT model cut by CoFi structured pruning (`cofi prune`) from `/models/mini \"LM\"`, "
                                    + "distilled from the teacher `/runs/teacher/best` on movie-snippets, for text classification "
                                    + "with 2 labels (negative, positive)."), text)
        XCTAssertTrue(text.contains("| dev accuracy: teacher | 0.8750 |"), text)
        XCTAssertTrue(text.contains("| target | sparsity 0.60 |"), text)
        XCTAssertTrue(text.contains("| dev accuracy: this model | 0.8333 |"), text)
        XCTAssertTrue(text.contains("Tokenizer.from_file("), text)
        XCTAssertTrue(text.contains("load_model_dir("), text)
    }

    func testMetricValuesReadAsNumbers() {
        XCTAssertEqual(ModelCard.yamlNumber(0.8333333333333334), "0.8333333333333334")
        XCTAssertEqual(ModelCard.yamlNumber(1), "1.0")
        XCTAssertEqual(ModelCard.yamlNumber(1e-05), "0.00001000000000000")
        XCTAssertEqual(ModelCard.yamlNumber(1.5e-07), "1.5e-07")
    }

    /// Random compact shapes: one table row per layer with kept/original counts, "removed" where nothing is left;
    /// the hidden width, the exact sparsity and the parameters are the layout's.
    func testStructureTableFollowsARandomCompactShape() throws {
        var rng = Xoshiro256(seed: 18)
        let dense = denseConfig()
        for trial in 0..<20 {
            let layers = (0..<3).map { _ in LayerShape(heads: Int.random(in: 0...4, using: &rng), ffnWidth: Int.random(in: 0...20, using: &rng)) }
            let shape = BertShape(vocabSize: 30, hiddenSize: Int.random(in: 1...24, using: &rng), headDim: 6, maxPositions: 64,
                                  typeVocabSize: 2, layers: layers)
            guard let layout = CompactLayout(describing: shape, config: dense) else { continue }
            var config = dense
            config.compact = layout
            let text = try ModelCard(directory: directory("trial\(trial)", config: config)).markdown()
            let rows = text.components(separatedBy: "\n").filter { $0.range(of: #"^\| \d+ \|"#, options: .regularExpression) != nil }
            XCTAssertEqual(rows.count, 3, text)
            for (l, layer) in layers.enumerated() {
                func kept(_ n: Int, of total: Int) -> String { n == 0 ? "removed (0/\(total))" : "\(n)/\(total)" }
                XCTAssertEqual(rows[l], "| \(l + 1) | \(kept(layer.heads, of: 4)) | \(kept(layer.ffnWidth, of: 20)) |", "trial \(trial)")
            }
            XCTAssertTrue(text.contains("Hidden dims (embeddings, residual stream): \(shape.hiddenSize)/24."), text)
            XCTAssertTrue(text.contains("| exact sparsity (of the prunable encoder parameters) | \(String(format: "%.4f", layout.sparsity)) |"), text)
            XCTAssertTrue(text.contains("| encoder parameters (dense → this model) | \(BertShape(config: dense).encoderParameters) → "
                                        + "\(shape.encoderParameters) |"), text)
        }
    }

    /// A dense model alone (no run): 100 % everywhere, sparsity 0, no metric, latency or command, no model-index, and
    /// the transformers route; a latency without its conditions is left out too.
    func testUnknownNumbersAreLeftOut() throws {
        var card = try ModelCard(directory: directory("dense", config: denseConfig()))
        card.latencyMs = 3.5
        card.metricName = "accuracy"
        let text = card.markdown()
        XCTAssertFalse(frontMatter(text).contains("model-index:"), text)
        XCTAssertFalse(frontMatter(text).contains { $0.hasPrefix("base_model") || $0.hasPrefix("license") }, text)
        for absent in ["teacher", "this model |", "latency", "The command that made it", "structured-pruning", "| target |"] {
            XCTAssertFalse(text.contains(absent), "\(absent) in \(text)")
        }
        XCTAssertTrue(text.contains("| 1 | 4/4 | 20/20 |"), text)
        XCTAssertTrue(text.contains("| exact sparsity (of the prunable encoder parameters) | 0 (dense) |"), text)
        XCTAssertTrue(text.contains("AutoModelForSequenceClassification.from_pretrained("), text)
        XCTAssertTrue(text.contains("BertWordPieceTokenizer("), text)

        card.latencyConditions = .init(batch: 1, sequenceLength: 128, threads: 2, processor: "AMD EPYC")
        card.teacherLatencyMs = .nan
        let timed = card.markdown()
        XCTAssertTrue(timed.contains("| measured latency (B = 1, T = 64, 2 threads, AMD EPYC) | 3.500 ms |"), timed)
        XCTAssertFalse(timed.contains("the teacher's"), timed)
    }

    /// The command as recorded: words with spaces and quotes come back as the same words from a shell.
    func testCommandIsShellQuoted() throws {
        let argv = ["/usr/bin/cofi", "prune", "--out", "my runs/it's", "--train", "a\"b.csv", "--note", "", "--x", "$HOME"]
        let quoted = Shell.quote(argv)
        XCTAssertEqual(quoted, #"/usr/bin/cofi prune --out 'my runs/it'\''s' --train 'a"b.csv' --note '' --x '$HOME'"#)
        var card = try ModelCard(directory: directory("cmd", config: denseConfig()))
        card.command = quoted
        XCTAssertTrue(card.markdown().contains("## The command that made it\n\n```sh\n\(quoted)\n```\n"))
        let sh = Process()
        sh.executableURL = URL(fileURLWithPath: "/bin/sh")
        sh.arguments = ["-c", "printf '%s\\n' " + Shell.quote(Array(argv.dropFirst()))]
        let pipe = Pipe()
        sh.standardOutput = pipe
        try sh.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        sh.waitUntilExit()
        XCTAssertEqual(String(decoding: out, as: UTF8.self), argv.dropFirst().map { $0 + "\n" }.joined())
    }

    /// `write()` leaves README.md and nothing else; a span model's card names the QA pipeline and outputs.
    func testWriteIsAtomicAndSpanCardsSaySo() throws {
        var config = denseConfig()
        config.architectures = ["BertForQuestionAnswering"]
        config.problemType = nil
        config.id2label = nil
        config.label2id = nil
        let dir = try directory("qa", config: config)
        let card = try ModelCard(directory: dir)
        try card.write()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["README.md", "config.json"])
        let text = try String(contentsOf: dir.appendingPathComponent("README.md"), encoding: .utf8)
        XCTAssertEqual(text, card.markdown())
        XCTAssertTrue(text.contains("pipeline_tag: question-answering"), text)
        XCTAssertTrue(text.contains("session.run([\"start_logits\", \"end_logits\"], feed)"), text)
        XCTAssertTrue(text.contains("AutoModelForQuestionAnswering"), text)
    }

    /// A fine-tuning run writes best/README.md once it has ended: the best evaluation's metric and the command, no
    /// teacher and no latency; best/ still loads (the card is not a tensor file) and the card is its only addition.
    func testFinetuneJobWritesTheCardOfTheFinalBest() throws {
        let data = try TinyRun.directory(train: 16, dev: 8)
        defer { try? FileManager.default.removeItem(at: data) }
        let modelDir = data.appendingPathComponent("model")
        let config = BertConfig(vocabSize: TinyRun.vocabulary.count, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 4,
                                intermediateSize: 12, maxPositionEmbeddings: 32)
        try TrainingCheckpoint.write(to: modelDir, model: BertModel.randomlyInitialized(config: config, task: nil, seed: 3),
                                     export: ModelExport(tokenizerDirectory: data))
        var c = TrainerConfiguration()
        c.batchSize = 8
        c.epochs = 2
        c.evalSteps = 1
        let job = try FinetuneJob(model: modelDir, task: TaskSelection(train: data.appendingPathComponent("train.csv"),
                                                                      dev: data.appendingPathComponent("dev.csv"), maxLength: 16),
                                  configuration: c, out: data.appendingPathComponent("run"), mode: .fresh, progress: nil)
        job.command = Shell.quote(["cofi", "finetune", "--out", "my run"])
        let summary = try job.run()
        let best = data.appendingPathComponent("run/best")
        let card = try String(contentsOf: best.appendingPathComponent("README.md"), encoding: .utf8)
        let metric = try XCTUnwrap(summary.bestMetric)
        XCTAssertEqual(try TrainingCheckpoint.readState(best).bestMetric, metric)
        XCTAssertTrue(card.contains("\n      value: \(metric)\n"), card)
        XCTAssertTrue(card.contains("| dev accuracy: this model | \(String(format: "%.4f", metric)) |"), card)
        XCTAssertTrue(card.contains("A BERT model fine-tuned by `cofi finetune` from `\(modelDir.path)` on train.csv"), card)
        XCTAssertTrue(card.contains("```sh\ncofi finetune --out 'my run'\n```"), card)
        XCTAssertTrue(card.contains("cofi eval --model \(best.path) --dev \(data.appendingPathComponent("dev.csv").path) --max-length 16"), card)
        XCTAssertFalse(card.contains("teacher") || card.contains("latency"), card)
        _ = try BertModel.load(directory: best)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: best.path).filter { !$0.hasSuffix(".json")
            && !$0.hasSuffix(".safetensors") && $0 != "vocab.txt" }, ["README.md"])
    }
}
