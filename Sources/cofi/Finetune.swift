import ArgumentParser
import Formats
import Foundation
import Platform
import Runtime
import Tasks
import Tensor
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
            best/ (the best model by the dev metric, loadable by transformers, with README.md: its model card, \
            written at the end) and metrics.jsonl. An OUT that holds \
            anything is refused unless --force (which replaces only the run's own files) or --resume (which continues \
            the run there exactly, with the same arguments).
            <assets> is $COFI_ASSETS, else ./.assets.
            """)

    @Option(help: "Model directory: config.json, model.safetensors and the tokenizer (vocab.txt or tokenizer.json).")
    var model: String

    @OptionGroup var taskOptions: TaskOptions

    @OptionGroup var parallelOptions: ParallelOptions

    @Option(help: "Examples per evaluation batch.")
    var evalBatchSize: Int = 32

    @Option(help: "Output directory.")
    var out: String

    @Option(name: [.customLong("learning-rate"), .customLong("lr")], help: "Peak learning rate.")
    var learningRate: Float = 2e-5

    @Option(help: "Training examples per step.")
    var batchSize: Int = 32

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

    @Flag(help: "Run the padding through the model, as the reference does (default: sequence-level tasks train on the real tokens only; the two differ by rounding).")
    var paddedBatches = false

    @Flag(help: "Continue the run in --out from its checkpoint (same arguments required).")
    var resume = false

    @Flag(help: "Start over in --out even if it holds a run (replaces checkpoint/, best/, metrics.jsonl only).")
    var force = false

    func validate() throws {
        try taskOptions.validate(training: true)
        guard evalBatchSize > 0 else { throw ValidationError("--eval-batch-size is \(evalBatchSize); expected a positive number") }
        if resume && force { throw ValidationError("--resume and --force exclude each other") }
        guard learningRate.isFinite && learningRate > 0 else {
            throw ValidationError("--learning-rate is \(learningRate); expected a finite positive number")
        }
        guard batchSize > 0 else { throw ValidationError("--batch-size is \(batchSize); expected a positive number") }
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
        c.packTokens = paddedBatches ? false : nil
        return c
    }

    func run() throws {
        do { try runTraining() } catch let e as UserError { throw e } catch let e as ValidationError { throw e }
        catch let e as ExitCode { throw e } catch {
            throw UserError(description: "\(error)")
        }
    }

    private func runTraining() throws {
        let session = try parallelOptions.start()
        try session.run { parallel in try runTraining(parallel: parallel, lead: session.isLead) }
    }

    private func runTraining(parallel: DataParallel?, lead: Bool) throws {
        let job = try FinetuneJob(model: absoluteURL(model), task: taskOptions.selection(evalBatchSize: evalBatchSize),
                                  configuration: trainerConfiguration, out: absoluteURL(out),
                                  mode: resume ? .resume : (force ? .force : .fresh),
                                  progress: ProgressReporter(lineEvery: loggingSteps), parallel: parallel)
        job.command = Shell.quote(CommandLine.arguments)
        if lead {
            // best/'s latency for its card: B = 1, T = 128 (capped at the model's positions), the engine's threads.
            var bench = ModelBenchmark(warmup: 3, budget: 2, threads: nil)
            bench.policy = RepeatPolicy(warmup: 3, repeats: nil, budget: 1, bounds: 10...1000)
            job.latencyMeter = { try bench.latency(of: $0, batch: 1, length: 128) }
            job.latencyConditions = .init(batch: 1, sequenceLength: 128, threads: Parallel.workers, processor: Processor.modelName)
        }
        let interrupt = InterruptHandler(note: lead ? "\ninterrupted: stopping after this step and saving checkpoint/ "
                                         + "(Ctrl-C again to quit without saving)\n" : "") { [weak job] in job?.requestStop() }
        defer { interrupt.cancel() }
        let summary = try job.run()
        guard lead else { return }
        var lines: [String] = []
        if let name = summary.bestMetricName, let value = summary.bestMetric, let step = summary.bestStep {
            lines.append("best \(name) \(String(format: "%.4f", value)) at step \(step): \(job.output.best.path)")
        }
        lines.append("latest checkpoint: \(job.output.checkpoint.path); metrics: \(job.output.metrics.path)")
        print(lines.joined(separator: "\n"))
    }
}
