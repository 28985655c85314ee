import ArgumentParser
import Foundation
import Training

/// The task flags of the training commands (`cofi finetune`, `cofi prune`) and what they resolve to: one place
/// that knows how a task name or the user's files become training batches and a dev evaluator.
struct TaskOptions: ParsableArguments {
    @Option(help: "Task: a GLUE task (cola, sst2, mrpc, stsb, qqp, mnli, mnli-mm, qnli, rte, wnli), movie-snippets, squad or squad_v2.")
    var task: String?

    @Option(help: "Data folder of --task (GLUE: glue_data or the task's folder; movie-snippets: where it is built; SQuAD: the official JSON files).")
    var data: String?

    @Option(help: "Your training file (.csv, .tsv, .jsonl).")
    var train: String?

    @Option(help: "Your dev file, same columns as --train (required with --train: the best checkpoint is chosen on it); its labels must occur in the training file.")
    var dev: String?

    @OptionGroup var columns: UserFileOptions

    @Option(help: "Maximum tokens per example, [CLS] and [SEP] included (default 128; SQuAD 384).")
    var maxLength: Int?

    @Option(help: "SQuAD: context tokens shared by consecutive windows of a long context.")
    var docStride: Int = 128

    @Option(help: "Examples per evaluation batch.")
    var evalBatchSize: Int = 32

    func validate() throws {
        let files = train != nil || dev != nil
        if task == nil && !files { throw ValidationError("give --task NAME, or --train FILE and --dev FILE") }
        if task != nil && files { throw ValidationError("give either --task or --train/--dev, not both") }
        if train != nil && dev == nil {
            throw ValidationError("no dev set: the best checkpoint is chosen on a dev set; give --dev FILE")
        }
        if dev != nil && train == nil { throw ValidationError("--dev needs --train") }
        if data != nil && task == nil { throw ValidationError("--data goes with --task") }
        if let maxLength, maxLength < 3 {
            throw ValidationError("--max-length is \(maxLength); expected at least 3 ([CLS], a token, [SEP])")
        }
        guard docStride >= 0 else { throw ValidationError("--doc-stride is \(docStride); expected 0 or more") }
        guard evalBatchSize > 0 else { throw ValidationError("--eval-batch-size is \(evalBatchSize); expected a positive number") }
    }

    /// The SQuAD source named by --task, if it names one.
    var squadSource: SQuADSource? {
        guard let task else { return nil }
        return SQuADSource.named(task, data: data.map(absoluteURL), assets: assetsDirectory())
    }

    /// Reads and checks the task (nothing is written): training batches of `batchSize` shuffled with `seed`, the dev
    /// evaluator, the head the models need, and the run arguments a resume must repeat. `tokenizerDirectory` is
    /// where the saved models' tokenizer comes from.
    func prepare(tokenizer: WordPieceTokenizer, tokenizerDirectory: URL, batchSize: Int, seed: UInt64) throws -> PreparedTask {
        if let squad = squadSource {
            let length = maxLength ?? 384
            let (trainSet, devSet) = try squad.load(train: true)
            guard let trainSet else { throw UserError(description: "no training set in \(squad.directory.path)") }
            let options = SQuADFeatureOptions(maxLength: length, stride: docStride, padToMaxLength: false)
            let trainFeatures = try SQuADFeature.make(dataset: trainSet, tokenizer: tokenizer, options: options)
            let devFeatures = try SQuADFeature.make(dataset: devSet, tokenizer: tokenizer, options: options)
            return PreparedTask(
                head: .span,
                data: SQuADTrainingData(features: trainFeatures, batchSize: batchSize, seed: seed, padId: tokenizer.padId),
                evaluator: SQuADEvaluator(dataset: devSet, features: devFeatures, padId: tokenizer.padId, batchSize: evalBatchSize),
                export: ModelExport(tokenizerDirectory: tokenizerDirectory),
                arguments: ["task": squad.name, "data": squad.directory.path, "max_length": "\(length)",
                            "doc_stride": "\(docStride)", "eval_batch_size": "\(evalBatchSize)"],
                description: "\(trainSet.examples.count) training questions (\(trainFeatures.count) windows) / "
                    + "\(devSet.examples.count) dev questions (\(devFeatures.count) windows), span extraction",
                taskName: squad.name, maxLength: length, trainExamples: trainSet.examples.count)
        }
        let source: TaskSource
        if let task {
            source = try TaskSource.named(task, data: data.map(absoluteURL), assets: assetsDirectory())
            if case let .movieSnippets(directory, rawFile?) = source,
               !FileManager.default.fileExists(atPath: directory.appendingPathComponent("dev.tsv").path) {
                try fetchDefaultAssets(for: rawFile)
            }
        } else {
            source = .files(train: absoluteURL(train!), dev: absoluteURL(dev!), spec: columns.spec())
        }
        let length = maxLength ?? 128
        let (trainSet, devSet) = try source.load(train: true)
        guard let trainSet else { throw UserError(description: "no training set") }
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

/// A task read and checked before any output is written (see `TaskOptions.prepare`).
struct PreparedTask {
    /// The head the models need (classification with the task's labels, regression, or span).
    let head: TaskHeadKind
    let data: TrainingData
    let evaluator: Evaluator
    /// How the trained models are saved (labels, tokenizer files).
    let export: ModelExport
    /// The task's part of the run arguments (a resume must repeat them).
    let arguments: [String: String]
    /// "14 training / 4 dev examples, 2 labels (negative, positive)"
    let description: String
    let taskName: String
    let maxLength: Int
    /// Training examples (questions for SQuAD): what the paper's recipe sizes the run by.
    let trainExamples: Int

    /// Fails when `model` cannot take inputs of `maxLength` tokens; `role` names it in the message.
    func checkLength(_ model: BertModel, role: String = "model") throws {
        guard maxLength <= model.shape.maxPositions else {
            throw UserError(description: "--max-length \(maxLength) exceeds the \(role)'s max_position_embeddings (\(model.shape.maxPositions))")
        }
    }
}
