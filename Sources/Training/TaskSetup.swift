import BERT
import Foundation
import Tasks

/// The task a command names — `--task NAME [--data DIR]` or the user's `--train FILE --dev FILE` — and the one place
/// that turns it into training batches and a dev evaluator (`cofi finetune`, `cofi prune`) or a dev evaluator for a
/// trained model (`cofi eval`).
public struct TaskSelection: Sendable {
    /// A GLUE task, movie-snippets, squad or squad_v2; nil for the user's files.
    public var task: String?
    /// The data folder of `task` (default: under `assets`).
    public var data: URL?
    /// The user's training file (finetune, prune).
    public var train: URL?
    /// The user's dev file.
    public var dev: URL?
    /// The columns of the user's files.
    public var columns: UserDataSpec
    /// Maximum tokens per example; nil: the default (128, SQuAD 384; for evaluation the checkpoint's training value).
    public var maxLength: Int?
    /// SQuAD: context tokens shared by consecutive windows; nil: 128 (evaluation: the checkpoint's).
    public var docStride: Int?
    /// Examples per evaluation batch.
    public var evalBatchSize: Int
    /// Where the fetched assets are (`AssetsDirectory.url`).
    public var assets: URL

    public init(task: String? = nil, data: URL? = nil, train: URL? = nil, dev: URL? = nil,
                columns: UserDataSpec = UserDataSpec(), maxLength: Int? = nil, docStride: Int? = nil,
                evalBatchSize: Int = 32, assets: URL = AssetsDirectory.url) {
        self.task = task
        self.data = data
        self.train = train
        self.dev = dev
        self.columns = columns
        self.maxLength = maxLength
        self.docStride = docStride
        self.evalBatchSize = evalBatchSize
        self.assets = assets
    }

    /// What the selection names.
    enum Source {
        case squad(SQuADSource)
        case sequences(TaskSource)
    }

    /// The source of the task; `spec` describes the user's files. Fetches the movie-snippets raw file when it is
    /// the default one and neither it nor a built task is there.
    func source(spec: UserDataSpec) throws -> Source {
        guard let task else {
            guard let dev else { throw TrainerError("no task: give --task NAME, or --train FILE and --dev FILE") }
            return .sequences(.files(train: train, dev: dev, spec: spec))
        }
        if let squad = SQuADSource.named(task, data: data, assets: assets) { return .squad(squad) }
        let source = try TaskSource.named(task, data: data, assets: assets)
        if case let .movieSnippets(directory, rawFile?) = source,
           !FileManager.default.fileExists(atPath: directory.appendingPathComponent("dev.tsv").path) {
            try AssetsDirectory.fetchIfDefault(rawFile) { FileHandle.standardError.write(Data("fetch: \($0)\n".utf8)) }
        }
        return .sequences(source)
    }

    /// Reads and checks the task for training (nothing is written): training batches of `batchSize` shuffled with
    /// `seed`, the dev evaluator, the head the models need, and the run arguments a resume must repeat.
    /// `tokenizerDirectory` is where the saved models' tokenizer comes from.
    public func prepareTraining(tokenizer: WordPieceTokenizer, tokenizerDirectory: URL, batchSize: Int,
                                seed: UInt64) throws -> PreparedTask {
        switch try source(spec: columns) {
        case .squad(let squad):
            let length = maxLength ?? 384, stride = docStride ?? 128
            let (trainSet, devSet) = try squad.load(train: true)
            guard let trainSet else { throw TrainerError("no training set in \(squad.directory.path)") }
            let options = SQuADFeatureOptions(maxLength: length, stride: stride, padToMaxLength: false)
            let trainFeatures = try SQuADFeature.make(dataset: trainSet, tokenizer: tokenizer, options: options)
            let devFeatures = try SQuADFeature.make(dataset: devSet, tokenizer: tokenizer, options: options)
            return PreparedTask(
                head: .span,
                data: SQuADTrainingData(features: trainFeatures, batchSize: batchSize, seed: seed, padId: tokenizer.padId),
                evaluator: SQuADEvaluator(dataset: devSet, features: devFeatures, padId: tokenizer.padId, batchSize: evalBatchSize),
                export: ModelExport(tokenizerDirectory: tokenizerDirectory),
                arguments: ["task": squad.name, "data": squad.directory.path, "max_length": "\(length)",
                            "doc_stride": "\(stride)", "eval_batch_size": "\(evalBatchSize)"],
                description: "\(trainSet.examples.count) training questions (\(trainFeatures.count) windows) / "
                    + "\(devSet.examples.count) dev questions (\(devFeatures.count) windows), span extraction",
                taskName: squad.name, maxLength: length, trainExamples: trainSet.examples.count)
        case .sequences(let source):
            let length = maxLength ?? 128
            let (trainSet, devSet) = try source.load(train: true)
            guard let trainSet else { throw TrainerError("no training set") }
            let encoder = TaskEncoder(tokenizer: tokenizer, maxLength: length)
            let batcher = encoder.batcher(trainSet, options: BatchingOptions(batchSize: batchSize, shuffle: true, seed: seed))
            let evaluator = try TaskEvaluator(dataset: devSet, encoder: encoder, batchSize: evalBatchSize)
            let labels = trainSet.kind.isRegression ? "regression"
                : "\(trainSet.numLabels) labels (\(trainSet.labelNames.joined(separator: ", ")))"
            var arguments = ["task": source.name, "max_length": "\(length)", "eval_batch_size": "\(evalBatchSize)"]
            switch source {
            case let .glue(_, directory): arguments["data"] = directory.path
            case let .movieSnippets(directory, _): arguments["data"] = directory.path
            case let .files(train, dev, spec):
                arguments["train"] = train?.path
                arguments["dev"] = dev.path
                arguments["text_column"] = spec.textColumn
                arguments["pair_column"] = spec.pairColumn
                arguments["label_column"] = spec.labelColumn
                arguments["regression"] = "\(spec.regression)"
            }
            return PreparedTask(head: TaskHeadKind(trainSet.kind), data: batcher, evaluator: evaluator,
                                export: ModelExport(labels: trainSet.kind, tokenizerDirectory: tokenizerDirectory),
                                arguments: arguments,
                                description: "\(trainSet.examples.count) training / \(devSet.examples.count) dev examples, \(labels)",
                                taskName: source.name, maxLength: length, trainExamples: trainSet.examples.count)
        }
    }

    /// The dev evaluator of a trained `model` (which must have a head that fits the task) with its `tokenizer`.
    /// The max length and SQuAD's doc stride default to `trained` (the run arguments of the checkpoint's
    /// trainer_state.json), else 128 (SQuAD: 384 and 128); a user's dev file is read with the model's label names.
    /// `modelPath` names the model in messages.
    public func prepareEvaluation(model: BertModel, tokenizer: WordPieceTokenizer, trained: [String: String]?,
                                  modelPath: String) throws -> PreparedEvaluation {
        guard let head = model.task else {
            throw TrainerError("\(modelPath): the model has no task head (no classifier in model.safetensors); "
                               + "fine-tune it first (cofi finetune)")
        }
        func trainedValue(_ key: String) -> Int? { trained?[key].flatMap { Int($0) } }
        var spec = columns
        spec.regression = spec.regression || head == .regression
        // Names a run gave its labels; transformers' placeholders (LABEL_0, …) say nothing about the file's.
        if case .classification(let n) = head, let names = model.config.labelNames, names.count == n,
           names != (0..<n).map({ "LABEL_\($0)" }) {
            spec.labels = names
        }
        switch try source(spec: spec) {
        case .squad(let squad):
            guard head == .span else {
                throw TrainerError("\(modelPath): the model's head is \(head.summary); \(squad.name) needs span extraction")
            }
            let length = maxLength ?? trainedValue("max_length") ?? 384
            let stride = docStride ?? trainedValue("doc_stride") ?? 128
            try PreparedTask.checkLength(length, model, role: "model")
            let (_, devSet) = try squad.load(train: false)
            let features = try SQuADFeature.make(dataset: devSet, tokenizer: tokenizer,
                                                 options: SQuADFeatureOptions(maxLength: length, stride: stride, padToMaxLength: false))
            return PreparedEvaluation(
                evaluator: SQuADEvaluator(dataset: devSet, features: features, padId: tokenizer.padId, batchSize: evalBatchSize),
                taskName: squad.name, maxLength: length)
        case .sequences(let source):
            guard head != .span else {
                throw TrainerError("\(modelPath): a question-answering (span) model; evaluate it with --task squad or squad_v2")
            }
            let (_, devSet) = try source.load(train: false)
            guard TaskHeadKind(devSet.kind) == head else {
                throw TrainerError("\(modelPath): the model's head is \(head.summary) but \(source.name) "
                                   + "is \(TaskHeadKind(devSet.kind).summary)")
            }
            let length = maxLength ?? trainedValue("max_length") ?? 128
            try PreparedTask.checkLength(length, model, role: "model")
            let evaluator = try TaskEvaluator(dataset: devSet, encoder: TaskEncoder(tokenizer: tokenizer, maxLength: length),
                                              batchSize: evalBatchSize)
            return PreparedEvaluation(evaluator: evaluator, taskName: source.name, maxLength: length)
        }
    }
}

/// A task read and checked for training before any output is written (see `TaskSelection.prepareTraining`).
public struct PreparedTask {
    /// The head the models need (classification with the task's labels, regression, or span).
    public let head: TaskHeadKind
    public let data: TrainingData
    public let evaluator: Evaluator
    /// How the trained models are saved (labels, tokenizer files).
    public let export: ModelExport
    /// The task's part of the run arguments (a resume must repeat them).
    public let arguments: [String: String]
    /// "14 training / 4 dev examples, 2 labels (negative, positive)"
    public let description: String
    public let taskName: String
    public let maxLength: Int
    /// Training examples (questions for SQuAD): what the paper's recipe sizes the run by.
    public let trainExamples: Int

    /// Fails when `model` cannot take inputs of `maxLength` tokens; `role` names it in the message.
    public func checkLength(_ model: BertModel, role: String = "model") throws {
        try Self.checkLength(maxLength, model, role: role)
    }

    static func checkLength(_ maxLength: Int, _ model: BertModel, role: String) throws {
        guard maxLength <= model.shape.maxPositions else {
            throw TrainerError("--max-length \(maxLength) exceeds the \(role)'s max_position_embeddings (\(model.shape.maxPositions))")
        }
    }
}

/// A dev set read and checked for evaluating a trained model (see `TaskSelection.prepareEvaluation`).
public struct PreparedEvaluation {
    public let evaluator: Evaluator
    public let taskName: String
    public let maxLength: Int
}

extension TaskHeadKind {
    /// "classification with 2 labels", "regression", "span extraction".
    public var summary: String {
        switch self {
        case .classification(let n): return "classification with \(n) labels"
        case .regression: return "regression"
        case .span: return "span extraction"
        }
    }
}
