import ArgumentParser
import Foundation
import Training

/// `cofi finetune`: fine-tune a model on a task — the teacher CoFi starts from (cofi-spec §6).
struct Finetune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune a BERT model on a task and keep the best dev checkpoint (Hugging Face format).",
        discussion: """
            Defaults are CoFi's teacher recipe (run_FT.sh): learning rate 2e-5 with linear decay, batch 32, max \
            length 128, 5 epochs, seed 57, AdamW (betas 0.9/0.999, eps 1e-8, weight decay 0, none on biases and \
            LayerNorm), gradient clipping at norm 1.0, evaluation at each epoch end.
            Task: --task NAME with a GLUE name (the official files in --data DIR, default <assets>/glue_data) or \
            movie-snippets (built into --data DIR, default <assets>/movie-snippets, from the fetched raw file), or \
            squad / squad_v2 (train-v1.1.json and dev-v1.1.json, or the v2.0 files, in --data DIR, default \
            <assets>/squad; max length 384, --doc-stride 128; metric F1); or your own --train FILE --dev FILE \
            (.csv, .tsv or .jsonl with a header / keys naming the columns).
            OUT receives checkpoint/ (latest: weights, config, vocab, trainer_state.json, optimizer.safetensors; \
            written at each evaluation and epoch end, every --save-steps, and on Ctrl-C), \
            best/ (the best model by the dev metric, loadable by transformers) and metrics.jsonl. An OUT that holds \
            anything is refused unless --force (which replaces only the run's own files) or --resume (which continues \
            the run there exactly, with the same arguments).
            <assets> is $COFI_ASSETS, else ./.assets.
            """)

    @Option(help: "Model directory: config.json, model.safetensors and the tokenizer (vocab.txt or tokenizer.json).")
    var model: String

    @Option(help: "Task: a GLUE task (cola, sst2, mrpc, stsb, qqp, mnli, mnli-mm, qnli, rte, wnli), movie-snippets, squad or squad_v2.")
    var task: String?

    @Option(help: "Data folder of --task (GLUE: glue_data or the task's folder; movie-snippets: where it is built; SQuAD: the official JSON files).")
    var data: String?

    @Option(help: "Your training file (.csv, .tsv, .jsonl).")
    var train: String?

    @Option(help: "Your dev file, same columns as --train; its labels must occur in the training file.")
    var dev: String?

    @OptionGroup var columns: UserFileOptions

    @Option(help: "Output directory.")
    var out: String

    @Option(name: [.customLong("learning-rate"), .customLong("lr")], help: "Peak learning rate.")
    var learningRate: Float = 2e-5

    @Option(help: "Training examples per step.")
    var batchSize: Int = 32

    @Option(help: "Maximum tokens per example, [CLS] and [SEP] included (default 128; SQuAD 384).")
    var maxLength: Int?

    @Option(help: "SQuAD: context tokens shared by consecutive windows of a long context.")
    var docStride: Int = 128

    @Option(help: "Seed of shuffling, dropout and a new head's initialisation.")
    var seed: UInt64 = 57

    @Option(help: "Passes over the training set.")
    var epochs: Int = 5

    @Option(help: "Stop after this many steps in all (overrides --epochs).")
    var maxSteps: Int?

    @Option(help: "Warm-up as a fraction of all steps (0 to 1).")
    var warmupRatio: Double = 0

    @Option(help: "Warm-up steps (overrides --warmup-ratio).")
    var warmupSteps: Int?

    @Option(help: "Decoupled weight decay (not on biases and LayerNorm weights).")
    var weightDecay: Float = 0

    @Option(help: "Learning-rate schedule after warm-up: linear (decay to 0) or constant.")
    var schedule: String = "linear"

    @Option(help: "Clip the global gradient norm to this.")
    var maxGradNorm: Float = 1

    @Option(help: "Evaluate and checkpoint every N steps too (default: at each epoch end only).")
    var evalSteps: Int?

    @Option(help: "Also write checkpoint/ every N steps, without evaluating (default: at evaluations and epoch ends).")
    var saveSteps: Int?

    @Option(help: "Log the training loss every N steps (metrics.jsonl; progress lines when stderr is not a terminal).")
    var loggingSteps: Int = 50

    @Option(help: "Examples per evaluation batch.")
    var evalBatchSize: Int = 32

    @Flag(help: "Continue the run in --out from its checkpoint (same arguments required).")
    var resume = false

    @Flag(help: "Start over in --out even if it holds a run (replaces checkpoint/, best/, metrics.jsonl only).")
    var force = false

    func validate() throws {
        let files = train != nil || dev != nil
        if task == nil && !files { throw ValidationError("give --task NAME, or --train FILE and --dev FILE") }
        if task != nil && files { throw ValidationError("give either --task or --train/--dev, not both") }
        if files && (train == nil || dev == nil) { throw ValidationError("--train and --dev go together") }
        if data != nil && task == nil { throw ValidationError("--data goes with --task") }
        if resume && force { throw ValidationError("--resume and --force exclude each other") }
        guard learningRate.isFinite && learningRate > 0 else {
            throw ValidationError("--learning-rate is \(learningRate); expected a finite positive number")
        }
        guard batchSize > 0 else { throw ValidationError("--batch-size is \(batchSize); expected a positive number") }
        guard evalBatchSize > 0 else { throw ValidationError("--eval-batch-size is \(evalBatchSize); expected a positive number") }
        if let maxLength, maxLength < 3 {
            throw ValidationError("--max-length is \(maxLength); expected at least 3 ([CLS], a token, [SEP])")
        }
        guard docStride >= 0 else { throw ValidationError("--doc-stride is \(docStride); expected 0 or more") }
        if let maxSteps { guard maxSteps > 0 else { throw ValidationError("--max-steps is \(maxSteps); expected a positive number") } }
        else { guard epochs > 0 else { throw ValidationError("--epochs is \(epochs); expected a positive number") } }
        guard warmupRatio.isFinite && warmupRatio >= 0 && warmupRatio <= 1 else {
            throw ValidationError("--warmup-ratio is \(warmupRatio); expected a number from 0 to 1")
        }
        if let warmupSteps, warmupSteps < 0 { throw ValidationError("--warmup-steps is \(warmupSteps); expected 0 or more") }
        guard weightDecay.isFinite && weightDecay >= 0 else {
            throw ValidationError("--weight-decay is \(weightDecay); expected a finite number ≥ 0")
        }
        guard maxGradNorm.isFinite && maxGradNorm > 0 else {
            throw ValidationError("--max-grad-norm is \(maxGradNorm); expected a finite positive number")
        }
        guard TrainerConfiguration.Schedule(rawValue: schedule) != nil else {
            throw ValidationError("--schedule is \"\(schedule)\"; expected linear or constant")
        }
        if let evalSteps, evalSteps <= 0 { throw ValidationError("--eval-steps is \(evalSteps); expected a positive number") }
        if let saveSteps, saveSteps <= 0 { throw ValidationError("--save-steps is \(saveSteps); expected a positive number") }
        guard loggingSteps > 0 else { throw ValidationError("--logging-steps is \(loggingSteps); expected a positive number") }
    }

    var trainerConfiguration: TrainerConfiguration {
        var c = TrainerConfiguration()
        c.learningRate = learningRate
        c.batchSize = batchSize
        c.epochs = epochs
        c.maxSteps = maxSteps
        c.schedule = TrainerConfiguration.Schedule(rawValue: schedule)!
        c.warmupRatio = warmupRatio
        c.warmupSteps = warmupSteps
        c.weightDecay = weightDecay
        c.maxGradNorm = maxGradNorm
        c.seed = seed
        c.evalSteps = evalSteps
        c.saveSteps = saveSteps
        c.loggingSteps = loggingSteps
        return c
    }

    func run() throws {
        do { try runTraining() } catch let e as UserError { throw e } catch let e as ValidationError { throw e } catch {
            throw UserError(description: "\(error)")
        }
    }

    /// What a run trains on and is scored by, read and checked before the output directory is touched.
    struct Prepared {
        let model: BertModel
        let data: TrainingData
        let evaluator: Evaluator
        let export: ModelExport
        let arguments: [String: String]
        /// "14 training / 4 dev examples, 2 labels (negative, positive)"
        let description: String
        let taskName: String
        let maxLength: Int
    }

    private func runTraining() throws {
        let modelDir = absoluteURL(model)
        let outDir = absoluteURL(out)
        let configuration = trainerConfiguration
        try configuration.validate()

        // Everything that can fail on the user's input fails here, before the output directory is touched.
        let tokenizer = try WordPieceTokenizer.load(directory: modelDir)
        let prepared: Prepared
        if let task, let squad = SQuADSource.named(task, data: data.map(absoluteURL), assets: assetsDirectory()) {
            prepared = try prepareSQuAD(squad, tokenizer: tokenizer, modelDir: modelDir)
        } else {
            prepared = try prepareSequenceTask(try taskSource(), tokenizer: tokenizer, modelDir: modelDir)
        }

        let output = try TrainingOutput.prepare(outDir, mode: resume ? .resume : (force ? .force : .fresh))
        let trainer = try Trainer(model: prepared.model, data: prepared.data, configuration: configuration,
                                  evaluator: prepared.evaluator, output: output, export: prepared.export,
                                  arguments: prepared.arguments)
        trainer.progress = ProgressReporter(lineEvery: loggingSteps)
        if resume { try trainer.resume(from: output.checkpoint) }

        let warmup = configuration.warmup(totalSteps: trainer.totalSteps)
        trainer.progress?.message(
            "fine-tuning \(modelDir.path) on \(prepared.taskName): \(prepared.description), metric \(prepared.evaluator.primaryName)\n"
                + "\(trainer.totalSteps) steps (\(trainer.stepsPerEpoch) per epoch, batch \(batchSize)), lr \(learningRate) "
                + "\(schedule) with \(warmup) warm-up steps, weight decay \(weightDecay), max length \(prepared.maxLength), "
                + "seed \(seed)\noutput: \(outDir.path)")
        // Ctrl-C: finish the step, write checkpoint/ and stop (a second Ctrl-C quits at once).
        signal(SIGINT, SIG_IGN)
        let interrupt = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        interrupt.setEventHandler { [weak trainer] in
            let note = "\ninterrupted: stopping after this step and saving checkpoint/ (Ctrl-C again to quit without saving)\n"
            FileHandle.standardError.write(Data(note.utf8))
            trainer?.requestStop()
            signal(SIGINT, SIG_DFL)
            interrupt.cancel()
        }
        interrupt.resume()
        defer { interrupt.cancel() }
        let summary = try trainer.train()
        var lines: [String] = []
        if let name = summary.bestMetricName, let value = summary.bestMetric, let step = summary.bestStep {
            lines.append("best \(name) \(String(format: "%.4f", value)) at step \(step): \(output.best.path)")
        }
        lines.append("latest checkpoint: \(output.checkpoint.path); metrics: \(output.metrics.path)")
        print(lines.joined(separator: "\n"))
    }

    /// Sequence classification or regression: GLUE, movie-snippets or the user's files.
    private func prepareSequenceTask(_ source: TaskSource, tokenizer: WordPieceTokenizer, modelDir: URL) throws -> Prepared {
        let length = maxLength ?? 128
        let (trainSet, devSet) = try source.load(train: true)
        guard let trainSet else { throw UserError(description: "no training set") }
        let model = try BertModel.load(directory: modelDir, task: TaskHeadKind(trainSet.kind), seed: seed)
        try checkLength(length, model)
        let encoder = TaskEncoder(tokenizer: tokenizer, maxLength: length)
        let batcher = encoder.batcher(trainSet, options: BatchingOptions(batchSize: batchSize, shuffle: true, seed: seed))
        let evaluator = try TaskEvaluator(dataset: devSet, encoder: encoder, batchSize: evalBatchSize)
        let labels = trainSet.kind.isRegression ? "regression"
            : "\(trainSet.numLabels) labels (\(trainSet.labelNames.joined(separator: ", ")))"
        var arguments = ["model": modelDir.path, "task": source.name, "max_length": "\(length)",
                         "eval_batch_size": "\(evalBatchSize)"]
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
        return Prepared(model: model, data: batcher, evaluator: evaluator,
                        export: ModelExport(labels: trainSet.kind, tokenizerDirectory: modelDir), arguments: arguments,
                        description: "\(trainSet.examples.count) training / \(devSet.examples.count) dev examples, \(labels)",
                        taskName: source.name, maxLength: length)
    }

    /// Extractive QA: SQuAD v1.1 or v2.0 windows (run_qa.py's max length 384, doc stride 128 by default).
    private func prepareSQuAD(_ squad: SQuADSource, tokenizer: WordPieceTokenizer, modelDir: URL) throws -> Prepared {
        let length = maxLength ?? 384
        let (trainSet, devSet) = try squad.load(train: true)
        let model = try BertModel.load(directory: modelDir, task: .span, seed: seed)
        try checkLength(length, model)
        let options = SQuADFeatureOptions(maxLength: length, stride: docStride, padToMaxLength: false)
        let trainFeatures = try SQuADFeature.make(dataset: trainSet!, tokenizer: tokenizer, options: options)
        let devFeatures = try SQuADFeature.make(dataset: devSet, tokenizer: tokenizer, options: options)
        let arguments = ["model": modelDir.path, "task": squad.name, "data": squad.directory.path,
                         "max_length": "\(length)", "doc_stride": "\(docStride)", "eval_batch_size": "\(evalBatchSize)"]
        return Prepared(model: model,
                        data: SQuADTrainingData(features: trainFeatures, batchSize: batchSize, seed: seed, padId: tokenizer.padId),
                        evaluator: SQuADEvaluator(dataset: devSet, features: devFeatures, padId: tokenizer.padId,
                                                  batchSize: evalBatchSize),
                        export: ModelExport(tokenizerDirectory: modelDir), arguments: arguments,
                        description: "\(trainSet!.examples.count) training questions (\(trainFeatures.count) windows) / "
                            + "\(devSet.examples.count) dev questions (\(devFeatures.count) windows), span extraction",
                        taskName: squad.name, maxLength: length)
    }

    private func checkLength(_ length: Int, _ model: BertModel) throws {
        guard length <= model.shape.maxPositions else {
            throw UserError(description: "--max-length \(length) exceeds the model's max_position_embeddings (\(model.shape.maxPositions))")
        }
    }

    func taskSource() throws -> TaskSource {
        if let task { return try TaskSource.named(task, data: data.map(absoluteURL), assets: assetsDirectory()) }
        return .files(train: absoluteURL(train!), dev: absoluteURL(dev!), spec: columns.spec())
    }
}

/// `$COFI_ASSETS`, else `./.assets`.
func assetsDirectory() -> URL {
    if let dir = ProcessInfo.processInfo.environment["COFI_ASSETS"] { return absoluteURL(dir) }
    return absoluteURL(".assets")
}

/// A path as given on the command line, made absolute against the working directory.
func absoluteURL(_ path: String) -> URL {
    URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true))
        .standardizedFileURL
}
