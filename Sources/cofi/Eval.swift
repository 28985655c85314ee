import ArgumentParser
import Foundation
import Training

/// `cofi eval`: the task metric(s) of a classification, regression or SQuAD checkpoint on a dev set.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a fine-tuned checkpoint on a task's dev set and print its metric(s).",
        discussion: """
            MODEL holds config.json, model.safetensors (with a classification, regression or span head) and the \
            tokenizer. \
            The data is --task NAME [--data DIR] (as for finetune) or your own --dev FILE; a file's labels are read \
            with the model's id2label (from config.json), so they must be among the labels it was trained on.
            --max-length (and SQuAD's --doc-stride) default to what the checkpoint was trained with (its \
            trainer_state.json), else 128 (SQuAD: 384 and 128).
            """)

    @Option(help: "Model directory (a finetune output's best/ or checkpoint/, or any Hugging Face BERT classifier).")
    var model: String

    @Option(help: "Task name: a GLUE task, movie-snippets, squad or squad_v2.")
    var task: String?

    @Option(help: "Data folder of --task.")
    var data: String?

    @Option(help: "Your dev file (.csv, .tsv, .jsonl).")
    var dev: String?

    @OptionGroup var columns: UserFileOptions

    @Option(help: "Maximum tokens per example (default: the checkpoint's training value, else 128).")
    var maxLength: Int?

    @Option(help: "SQuAD: context tokens shared by consecutive windows (default: the checkpoint's, else 128).")
    var docStride: Int?

    @Option(help: "Examples per batch.")
    var batchSize: Int = 32

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        if (task == nil) == (dev == nil) { throw ValidationError("give either --task NAME or --dev FILE") }
        if data != nil && task == nil { throw ValidationError("--data goes with --task") }
        guard batchSize > 0 else { throw ValidationError("--batch-size is \(batchSize); expected a positive number") }
        if let maxLength, maxLength < 3 {
            throw ValidationError("--max-length is \(maxLength); expected at least 3 ([CLS], a token, [SEP])")
        }
    }

    func run() throws {
        do { try evaluate() } catch let e as UserError { throw e } catch { throw UserError(description: "\(error)") }
    }

    private func evaluate() throws {
        let modelDir = absoluteURL(model)
        let bert = try BertModel.load(directory: modelDir)
        guard let head = bert.task else {
            throw UserError(description: "\(modelDir.path): the model has no task head (no classifier in model.safetensors); "
                            + "fine-tune it first (cofi finetune)")
        }
        let tokenizer = try WordPieceTokenizer.load(directory: modelDir)
        let trained = try? TrainingCheckpoint.readState(modelDir)
        if let task, let squad = SQuADSource.named(task, data: data.map(absoluteURL), assets: assetsDirectory()) {
            guard head == .span else {
                throw UserError(description: "\(modelDir.path): the model's head is \(Self.describe(head)); \(squad.name) needs span extraction")
            }
            let length = maxLength ?? trained?.arguments["max_length"].flatMap { Int($0) } ?? 384
            let stride = docStride ?? trained?.arguments["doc_stride"].flatMap { Int($0) } ?? 128
            guard length <= bert.shape.maxPositions else {
                throw UserError(description: "--max-length \(length) exceeds the model's max_position_embeddings (\(bert.shape.maxPositions))")
            }
            let (_, devSet) = try squad.load(train: false)
            let features = try SQuADFeature.make(dataset: devSet, tokenizer: tokenizer,
                                                 options: SQuADFeatureOptions(maxLength: length, stride: stride, padToMaxLength: false))
            let evaluator = SQuADEvaluator(dataset: devSet, features: features, padId: tokenizer.padId, batchSize: batchSize)
            try report(try evaluator.evaluate(model: bert), model: modelDir, task: squad.name, length: length)
            return
        }
        guard head != .span else {
            throw UserError(description: "\(modelDir.path): a question-answering (span) model; evaluate it with --task squad or squad_v2")
        }
        let source: TaskSource
        if let task {
            source = try TaskSource.named(task, data: data.map(absoluteURL), assets: assetsDirectory())
        } else {
            var spec = columns.spec(regression: head == .regression)
            // Names a run gave its labels; transformers' placeholders (LABEL_0, …) say nothing about the file's.
            if case .classification(let n) = head, let names = Self.labelNames(bert.config), names.count == n,
               names != (0..<n).map({ "LABEL_\($0)" }) {
                spec.labels = names
            }
            source = .files(train: nil, dev: absoluteURL(dev!), spec: spec)
        }
        let (_, devSet) = try source.load(train: false)
        guard TaskHeadKind(devSet.kind) == head else {
            throw UserError(description: "\(modelDir.path): the model's head is \(Self.describe(head)) but \(source.name) "
                            + "is \(Self.describe(TaskHeadKind(devSet.kind)))")
        }
        let length = maxLength ?? trained?.arguments["max_length"].flatMap { Int($0) } ?? 128
        guard length <= bert.shape.maxPositions else {
            throw UserError(description: "--max-length \(length) exceeds the model's max_position_embeddings (\(bert.shape.maxPositions))")
        }
        let evaluator = try TaskEvaluator(dataset: devSet, encoder: TaskEncoder(tokenizer: tokenizer, maxLength: length),
                                          batchSize: batchSize)
        try report(evaluator.evaluate(model: bert), model: modelDir, task: source.name, length: length)
    }

    private func report(_ evaluate: @autoclosure () throws -> EvaluationResult, model: URL, task: String, length: Int) throws {
        let start = Date()
        let result = try evaluate()
        let seconds = Date().timeIntervalSince(start)
        if json {
            let metrics: [(String, Any?)] = result.metrics.map { ($0.name, $0.value) }
            print(MetricsLog.json([("model", model.path), ("task", task), ("examples", result.examples),
                                   ("max_length", length), ("metrics", metrics), ("primary", result.primaryName),
                                   ("value", result.primary), ("loss", result.loss), ("seconds", seconds)]))
        } else {
            print("\(task) dev, \(result.examples) examples, max length \(length): \(result.summary)"
                  + (result.loss.map { String(format: " (loss %.4f)", $0) } ?? ""))
        }
    }

    /// The label names of config.json's id2label in index order, if it names every index.
    static func labelNames(_ config: BertConfig) -> [String]? {
        guard let id2label = config.id2label else { return nil }
        let names = (0..<id2label.count).map { id2label["\($0)"] }
        guard names.allSatisfy({ $0 != nil }) else { return nil }
        return names.map { $0! }
    }

    static func describe(_ head: TaskHeadKind) -> String {
        switch head {
        case .classification(let n): return "classification with \(n) labels"
        case .regression: return "regression"
        case .span: return "span extraction"
        }
    }
}
