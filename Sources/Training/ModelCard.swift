import BERT
import Foundation
import Formats

/// The `README.md` of a model directory in the Hugging Face model-card format: YAML front matter (library, base
/// model, pipeline tag, tags, and a `model-index` with the dev metric when one is known), then a short Markdown
/// card — what the model is, its kept structure per layer, exact sparsity and encoder parameters, the dev metric of
/// the teacher and of the model, the measured latency, the command that made it, and how to load it in cofi, ONNX
/// Runtime and PyTorch. The structure comes from the directory's config.json (a compact model's `cofi` block, else
/// the dense sizes); every other number only when the caller measured it: a card never shows an unknown value, it
/// leaves its row out. `cofi finetune` writes one into `best/`, `cofi prune` into `final/` and each rung's `final/`.
public struct ModelCard {
    /// How the model was made, for the summary paragraph.
    public enum Origin: Sendable {
        /// Fine-tuned by `cofi finetune` (dense).
        case finetune
        /// Pruned by `cofi prune` (compact), then fine-tuned with distillation (or not, when it ran no fine-tuning).
        case prune
    }

    /// How a latency was measured: the median of engine calls on `batch` sequences of `sequenceLength` tokens, on
    /// `threads` threads of `processor` (what `cofi prune` measures under its latency profile's conditions).
    public struct LatencyConditions: Equatable, Sendable {
        public var batch: Int
        public var sequenceLength: Int
        public var threads: Int
        public var processor: String

        public init(batch: Int, sequenceLength: Int, threads: Int, processor: String) {
            self.batch = batch
            self.sequenceLength = sequenceLength
            self.threads = threads
            self.processor = processor
        }
    }

    /// The model directory the card describes (its path appears in the loading commands).
    public var directory: URL
    /// Its config.json.
    public var config: BertConfig
    /// The head, from config.json's `architectures` and `problem_type` (nil: no head, or one not described).
    public var head: TaskHeadKind?
    /// Whether the directory holds tokenizer.json (else the tokenizer is vocab.txt).
    public var hasTokenizerJSON: Bool
    public var origin: Origin?
    /// The model the run started from (the student of a pruning run, the model a fine-tuning started from), as given.
    public var baseModel: String?
    /// The teacher a pruning run distilled from, as given.
    public var teacher: String?
    /// The task's name (`movie-snippets`, `sst2`, `squad`, a user file's name).
    public var dataset: String?
    /// The task options of `cofi eval` that measure the dev metric again (`evalOptions(runArguments:)`).
    public var evalOptions: [String]?
    /// The pruning run's target in words ("sparsity 0.90", "latency 3.000 ms as the profile predicts (± 5 %)").
    public var target: String?
    /// The dev metric's name and this model's value; the teacher's value under the same metric.
    public var metricName: String?
    public var metric: Double?
    public var teacherMetric: Double?
    /// This model's measured latency (ms), the teacher's measured alike, and how (no row without the conditions).
    public var latencyMs: Double?
    public var teacherLatencyMs: Double?
    public var latencyConditions: LatencyConditions?
    /// The command that made the model, shell-quoted (`Shell.quote(CommandLine.arguments)`).
    public var command: String?
    /// Only when known (nothing here guesses a license).
    public var license: String?
    /// A caveat shown under the summary (`cofi prune`: no evaluation met the checkpoint gate).
    public var warning: String?

    /// The card of the model in `directory` with what its files say: config.json (structure, head) and whether
    /// tokenizer.json is there. Throws what `BertConfig.load` throws for a missing or invalid config.json.
    public init(directory: URL) throws {
        self.directory = directory
        config = try BertConfig.load(from: directory.appendingPathComponent("config.json"))
        head = Self.head(of: config)
        hasTokenizerJSON = FileManager.default.fileExists(atPath: directory.appendingPathComponent("tokenizer.json").path)
    }

    /// The `cofi eval` options that name a run's dev set, from its run arguments (`PreparedTask.arguments`): a user's
    /// `--dev FILE`, else `--task NAME` with its `--data DIR`, and the max length it was trained with; nil when the
    /// arguments name no task.
    public static func evalOptions(runArguments arguments: [String: String]) -> [String]? {
        let length = arguments["max_length"].map { ["--max-length", $0] } ?? []
        if let dev = arguments["dev"] { return ["--dev", dev] + length }
        guard let task = arguments["task"] else { return nil }
        return ["--task", task] + (arguments["data"].map { ["--data", $0] } ?? []) + length
    }

    /// The head that config.json describes (as `ModelExport.config(for:)` writes it).
    static func head(of config: BertConfig) -> TaskHeadKind? {
        let architectures = config.architectures ?? []
        if architectures.contains("BertForQuestionAnswering") { return .span }
        guard architectures.contains("BertForSequenceClassification") else { return nil }
        return config.problemType == "regression" ? .regression : .classification(labels: config.numLabels)
    }

    /// The file name.
    public static let fileName = "README.md"

    /// Writes `README.md` into `directory` atomically (a temporary file renamed into place), so that a reader never
    /// sees half a card.
    public func write() throws {
        let url = directory.appendingPathComponent(Self.fileName)
        do { try Data(markdown().utf8).write(to: url, options: .atomic) } catch {
            throw TrainerError("\(url.path): cannot write the model card (\(error.localizedDescription))")
        }
    }

    /// The kept structure (from config.json) and the dense original.
    var shape: BertShape { BertShape(describedBy: config) }
    var original: BertShape { BertShape(config: config) }
    var isCompact: Bool { config.compact != nil }

    /// The whole card: front matter, then Markdown.
    public func markdown() -> String {
        (frontMatter() + [""] + [summary(), ""] + (warning.map { ["> **Warning:** \($0)", ""] } ?? []) + structure()
            + results() + provenance() + usage())
            .joined(separator: "\n") + "\n"
    }

    var pipelineTag: String? {
        switch head {
        case .span?: return "question-answering"
        case .classification?, .regression?: return "text-classification"
        case nil: return nil
        }
    }

    /// The YAML front matter; strings are double-quoted (a JSON string is a YAML double-quoted scalar).
    func frontMatter() -> [String] {
        let q = JSON.quote
        var lines = ["---", "library_name: cofi"]
        if let baseModel { lines.append("base_model: \(q(baseModel))") }
        if let license { lines.append("license: \(q(license))") }
        if let pipelineTag { lines.append("pipeline_tag: \(pipelineTag)") }
        lines.append("tags:")
        for tag in ["cofi", "bert"] + (isCompact ? ["structured-pruning", "compact"] : []) + (pipelineTag.map { [$0] } ?? []) {
            lines.append("- \(tag)")
        }
        if let metricName, let metric, metric.isFinite {
            lines += ["model-index:", "- name: \(q(BertModel.displayName(of: directory)))", "  results:", "  - task:"]
            if let pipelineTag { lines.append("      type: \(pipelineTag)") }
            if let dataset { lines += ["    dataset:", "      name: \(q(dataset))", "      type: \(q(dataset))", "      split: dev"] }
            lines += ["    metrics:", "    - type: \(q(metricName))", "      value: \(Self.yamlNumber(metric))", "      name: \(q("dev \(metricName)"))"]
        }
        lines.append("---")
        return lines
    }

    /// `value` as a YAML float that YAML 1.1 readers (PyYAML) take for a number too: Swift's shortest round-trip
    /// form, or fixed-point where that form has an exponent without a dot ("1e-05" reads as a string there).
    static func yamlNumber(_ value: Double) -> String {
        let shortest = "\(value)"
        return shortest.contains("e") && !shortest.contains(".") ? String(format: "%.17f", value) : shortest
    }

    /// The one-paragraph summary: what the model is, how it was made, what it does.
    func summary() -> String {
        let task: String = switch head {
        case .classification(let n)?:
            "text classification with \(n) labels"
                + ((config.id2label.map { m in (0..<n).compactMap { m["\($0)"] } }).map { " (\($0.joined(separator: ", ")))" } ?? "")
        case .regression?: "text regression (one score)"
        case .span?: "extractive question answering (answer spans in a context)"
        case nil: "BERT encoding (no task head described in config.json)"
        }
        let on = dataset.map { " on \($0)" } ?? ""
        var text = "# \(BertModel.displayName(of: directory))\n\n"
        switch (origin, isCompact) {
        case (.prune?, _):
            text += "A compact BERT model cut by CoFi structured pruning (`cofi prune`)" + (baseModel.map { " from `\($0)`" } ?? "")
                + (teacher.map { ", distilled from the teacher `\($0)`" } ?? "") + on + ", for \(task)."
        case (.finetune?, _):
            text += "A BERT model fine-tuned by `cofi finetune`" + (baseModel.map { " from `\($0)`" } ?? "") + on + ", for \(task)."
        case (nil, true): text += "A compact BERT model (CoFi structured pruning), for \(task)."
        case (nil, false): text += "A BERT model, for \(task)."
        }
        if isCompact {
            text += " Its layers keep their own numbers of attention heads and FFN units, and the hidden width is "
                + "\(shape.hiddenSize) of \(original.hiddenSize): it runs in cofi and through ONNX Runtime, not in stock transformers."
        }
        return text
    }

    /// The kept structure per layer, against the dense original.
    func structure() -> [String] {
        func kept(_ n: Int, of total: Int) -> String { n == 0 ? "removed (0/\(total))" : "\(n)/\(total)" }
        var lines = ["## Structure", "",
                     "Hidden dims (embeddings, residual stream): \(shape.hiddenSize)/\(original.hiddenSize).", "",
                     "| layer | attention heads | FFN units |", "| ---: | ---: | ---: |"]
        for (l, (a, b)) in zip(shape.layers, original.layers).enumerated() {
            lines.append("| \(l + 1) | \(kept(a.heads, of: b.heads)) | \(kept(a.ffnWidth, of: b.ffnWidth)) |")
        }
        return lines + [""]
    }

    /// Sizes, the dev metrics and the measured latency: only the rows whose numbers are known.
    func results() -> [String] {
        func f(_ v: Double, _ digits: Int = 4) -> String { String(format: "%.\(digits)f", v) }
        let sparsity = config.compact?.sparsity ?? 0
        var rows = ["| exact sparsity (of the prunable encoder parameters) | \(isCompact ? f(sparsity) : "0 (dense)") |",
                    "| encoder parameters (dense → this model) | \(original.encoderParameters) → \(shape.encoderParameters) |"]
        if let target { rows.append("| target | \(target) |") }
        if let metricName {
            if let teacherMetric, teacherMetric.isFinite { rows.append("| dev \(metricName): teacher | \(f(teacherMetric)) |") }
            if let metric, metric.isFinite { rows.append("| dev \(metricName): this model | \(f(metric)) |") }
        }
        if let c = latencyConditions, let ms = latencyMs, ms.isFinite {
            // T capped at the model's positions, as `ModelBenchmark.latency` caps what it times.
            let conditions = "B = \(c.batch), T = \(min(c.sequenceLength, config.maxPositionEmbeddings)), \(c.threads) thread\(c.threads == 1 ? "" : "s"), \(c.processor)"
            rows.append("| measured latency (\(conditions)) | \(f(ms, 3)) ms |")
            if let t = teacherLatencyMs, t.isFinite { rows.append("| the teacher's, measured alike | \(f(t, 3)) ms |") }
        }
        return ["## Results", "", "| measure | value |", "| --- | ---: |"] + rows + [""]
    }

    func provenance() -> [String] {
        guard let command else { return [] }
        return ["## The command that made it", "", "```sh", command, "```", ""]
    }

    /// How to run it: cofi, ONNX Runtime, PyTorch.
    func usage() -> [String] {
        let dir = directory.path, quoted = Shell.quote(directory.path)
        let span = head == .span
        var lines = ["## How to use", "", "With cofi:", "", "```sh"]
        lines.append(span ? "echo '{\"question\": \"Who?\", \"context\": \"…\"}' | cofi predict --model \(quoted) --format jsonl"
                          : "echo 'a text to classify' | cofi predict --model \(quoted)")
        lines += ["cofi serve --model \(quoted)",
                  "cofi eval --model \(quoted) \(evalOptions.map(Shell.quote) ?? "--task TASK")   # the dev metric",
                  "```", "",
                  "With ONNX Runtime (inputs `input_ids`, `attention_mask`, `token_type_ids`: int64 [batch, sequence]; "
                      + (span ? "outputs `start_logits`, `end_logits`: [batch, sequence]):" : "output `logits`: [batch, labels]):"), "",
                  "```sh", "cofi export --model \(quoted) --onnx model.onnx", "```", "", "```python",
                  "import numpy as np, onnxruntime as ort"]
        if hasTokenizerJSON {
            lines += ["from tokenizers import Tokenizer", "tokenizer = Tokenizer.from_file(\(pythonString(dir + "/tokenizer.json")))"]
        } else {
            lines += ["from tokenizers import BertWordPieceTokenizer",
                      "tokenizer = BertWordPieceTokenizer(\(pythonString(dir + "/vocab.txt")), lowercase=True)  # False for a cased vocabulary"]
        }
        lines += ["session = ort.InferenceSession(\"model.onnx\")",
                  span ? "enc = tokenizer.encode(\"Who?\", \"…context…\")" : "enc = tokenizer.encode(\"a text to classify\")",
                  "feed = {name: np.array([ids], dtype=np.int64) for name, ids in [(\"input_ids\", enc.ids),",
                  "        (\"attention_mask\", enc.attention_mask), (\"token_type_ids\", enc.type_ids)]}",
                  span ? "start_logits, end_logits = session.run([\"start_logits\", \"end_logits\"], feed)"
                       : "logits = session.run([\"logits\"], feed)[0]",
                  "```", ""]
        let auto = span ? "AutoModelForQuestionAnswering" : "AutoModelForSequenceClassification"
        if isCompact {
            lines += ["With PyTorch: stock transformers cannot load this directory — `from_pretrained` builds every layer at "
                      + "the dense sizes of config.json and fails with \"size mismatch\" on the cut tensors. "
                      + "`scripts/peer_models.py` in the cofi repository builds each module at its tensors' sizes"
                      + (span ? " (sequence classification models only; for this one use ONNX Runtime):" : ":"), "",
                      "```python", "from peer_models import load_model_dir", "model, shape = load_model_dir(\(pythonString(dir)))",
                      "```"]
        } else {
            lines += ["With PyTorch (transformers):", "", "```python", "from transformers import \(auto), AutoTokenizer",
                      "model = \(auto).from_pretrained(\(pythonString(dir)))",
                      "tokenizer = AutoTokenizer.from_pretrained(\(pythonString(dir)))", "```"]
        }
        return lines
    }

    /// A Python string literal (a JSON string is one).
    func pythonString(_ s: String) -> String { JSON.quote(s) }
}
