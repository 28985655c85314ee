import ArgumentParser
import BERT
import CoFi
import Formats
import Foundation
import Platform
import Runtime
import Tasks
import Tensor
import Training

/// `cofi prune`: the whole CoFi run (cofi-spec §6) — pre-pruning distillation, pruning to a target sparsity with
/// the Lagrangian, fold and cut of the best checkpoint, fine-tuning of the compact model.
struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prune a BERT student to a target sparsity by CoFi, distilling from a fine-tuned teacher.",
        discussion: """
            Stages (cofi-spec §6): pre-pruning distillation (no masks) → pruning: one mask sample per step, \
            distillation + Lagrangian λ1(ŝ−t) + λ2(ŝ−t)², the target warmed up linearly, a new model optimiser and \
            linear schedule from the switch on, evaluation with the deterministic masks; the best dev checkpoint is \
            kept only when it passes the checkpoint gate (default: the exact sparsity within t ± ε) → fold and cut → fine-tuning of the compact model with \
            distillation at a constant lr. Embeddings are frozen throughout (as the reference does).
            Defaults are the paper's recipe by task size: tasks with at least \(PruningSettings.largeTaskThreshold) \
            training examples are "large" (20 epochs in all, 1 pre-pruning, 2 warm-up, eval every 500 steps), \
            others "small" (100, 4, 20, eval every 50); 20 fine-tuning epochs; lr 2e-5, reg lr 0.01, batch 32, \
            max length 128, temperature 2, α_ce 0.1, α_layer 0.9, layer mapping v4 (fixed), seed 57, ε 0.01; \
            with three decisions of this project (BENCHMARKS.md, issue 16): the tracking controller (--controller \
            paper for the reference's), the cubic ramp (--ramp linear for the paper's) and the compact model \
            fine-tuned at lr \(PruningSettings.compactFinetuneLearningRate) (--finetune-lr 2e-5 for the paper's). A shorter --epochs scales the \
            stages: pre-pruning in the paper's proportion (rounded down: none below 25 small / 20 large epochs), \
            warm-up two thirds of the pruning epochs (e.g. --epochs 3: none, 2, then 1 at the target).
            The student starts from the pre-trained model (as the paper); pass the teacher's directory as \
            --student to start from the teacher. Teacher and student must share the tokenizer and, for layer \
            distillation, the hidden size.
            OUT receives preprune/, prune/ (best/ = full-size weights at the best eligible evaluation, \
            best_gates.safetensors = log α, λ and the layer transformation), finetune/ (each with checkpoint/ \
            and metrics.jsonl, JSON lines), pruned/ (the compact model before fine-tuning), final/ (the compact \
            model after fine-tuning: config.json with the cofi block, model.safetensors, tokenizer, README.md: its \
            model card with the structure, exact sparsity, dev metrics, measured latency and this command), \
            summary.json, and report.md with figures/ (SVG: kept structure, sparsity and λ trajectories, losses, \
            dev metric; remade any time with `cofi report OUT`). An OUT that holds anything is refused unless --force (replaces only these) or --resume \
            (continues the unfinished stage exactly). Ctrl-C saves the running stage's checkpoint and stops.
            Task: as for finetune (--task NAME [--data DIR], or --train FILE --dev FILE; squad / squad_v2 for \
            extractive QA, distilled on the average of the start and end distributions).
            """)

    @Option(help: "Fine-tuned teacher directory (config.json, model.safetensors with the task head, tokenizer).")
    var teacher: String

    @Option(help: "Student directory: the pre-trained model to prune (its tokenizer is used and saved).")
    var student: String

    @OptionGroup var taskOptions: TaskOptions

    @OptionGroup var parallelOptions: ParallelOptions

    @Option(help: "Examples per evaluation batch.")
    var evalBatchSize: Int = 32

    @Option(help: "Output directory.")
    var out: String

    @Option(help: ArgumentHelp("Fraction of the prunable encoder size to remove, in (0, 1); an ascending list (0.6,0.75,0.9,0.95) is a ladder: one run, a compact model per rung (OUT/rungs/<rung>/final; the last rung's in OUT/final). With --target-latency, one value: a size target driven together with the latency.",
                               valueName: "t[,t…]"))
    var targetSparsity: String?

    @Option(help: ArgumentHelp("Target latency (ms) of one forward pass as --profile predicts it, under the profile's batch, sequence length and threads; a descending list is a ladder of latencies.",
                               valueName: "ms[,ms…]"))
    var targetLatency: String?

    @Option(help: "Latency profile of this machine (made by cofi profile): required by --target-latency; with --target-sparsity it adds the predicted latency to the report.")
    var profile: String?

    @Option(help: "With --target-latency: the checkpoint gate admits a structure whose predicted latency is within ± this fraction of the target.")
    var latencyTolerance: Double = LatencyTarget.defaultTolerance

    @Option(help: "With a ladder: pruning steps the target ramp holds at each rung before the last (default: --eval-steps, so that an evaluation lands there).")
    var rungHoldSteps: Int?

    @Option(help: "ε of the checkpoint gate.")
    var sparsityEpsilon: Float = 0.01

    @Option(help: ArgumentHelp("Checkpoint gate: exact-band (the exact sparsity of the deterministic masks within target ± ε) or expected (the paper: ŝ ≥ target − ε).",
                               valueName: "gate"))
    var checkpointGate: String = CheckpointGate.exactBand.rawValue

    @Flag(help: "Stop without a model when no evaluation meets the checkpoint gate (default: deliver the closest one, with a warning and the gap).")
    var requireGate = false

    @Option(help: "Epochs of the pruning run, pre-pruning and warm-up included (default 20 large / 100 small).")
    var epochs: Int?

    @Option(help: "Pre-pruning distillation epochs (default 1 large / 4 small).")
    var prePruningEpochs: Int?

    @Option(help: "Target warm-up epochs, counted from the start of pruning (default 2 large / 20 small).")
    var warmupEpochs: Int?

    @Option(help: "Target warm-up in pruning steps (overrides --warmup-epochs).")
    var warmupSteps: Int?

    @Option(help: "Fine-tuning epochs of the compact model (0: none).")
    var finetuneEpochs: Int = 20

    @Option(name: [.customLong("learning-rate"), .customLong("lr")], help: "Model learning rate while pruning.")
    var learningRate: Float = 2e-5

    @Option(help: "Constant learning rate of the compact model's fine-tuning (default \(PruningSettings.compactFinetuneLearningRate); the paper 2e-5).")
    var finetuneLr: Float?

    @Option(help: "Learning rate of log α (λ gets its negative).")
    var regLr: Float = 0.01

    @Option(help: ArgumentHelp("Sparsity controller: tracking (λ solved at every step so that the gates' step lands ŝ on the target ramp; rates paced to the warm-up), budget-aware (rates paced to the warm-up, λ learned with anti-windup) or paper (the reference's rates, from 0).",
                               valueName: "controller"))
    var controller: String?

    @Flag(help: .hidden)
    var budgetAware = false

    @Flag(help: .hidden)
    var tracking = false

    @Flag(help: "With --controller budget-aware: let λ1 integrate the gap at every step, as the paper (no anti-windup).")
    var noAntiWindup = false

    @Option(help: "With --controller tracking or budget-aware: how many times the minimal gate travel the rates allow during the warm-up (larger: faster gates and λ; default 5 tracking, 2.5 budget-aware).")
    var controllerSafety: Float?

    @Option(help: "With --controller tracking: steps in which a gap between ŝ and the ramp is closed.")
    var trackingHorizon: Int = 10

    @Option(help: ArgumentHelp("Shape of the target's rise over the warm-up: cubic (the default: t − (t − t₀)(1 − k/W)³, Zhu & Gupta's gradual-pruning schedule, fast at first, slowing to the target) or linear (the paper).",
                               valueName: "shape"))
    var ramp: String?

    @Option(help: "Distillation temperature.")
    var temperature: Float = 2

    @Option(help: "α_ce: weight of the prediction distillation loss.")
    var alphaCe: Float = 0.1

    @Option(help: "α_layer: weight of the layer distillation loss (0: off).")
    var alphaLayer: Float = 0.9

    @Option(help: "Weight of the task's own label loss (0: off, as the paper).")
    var alphaLabel: Float = 0

    @Option(help: "Layer mapping: v3 (argmin over all layers) or v4 (ordered, existing layers).")
    var layerMapping: String = "v4"

    @Option(help: "Distilled teacher layers, 1-based, comma-separated (default ⌈k·L/4⌉, k = 1…4).")
    var teacherLayers: String?

    @Option(help: "Seed of shuffling, dropout, gate initialisation and mask noise.")
    var seed: UInt64 = 57

    @Option(help: "Evaluate every N pruning steps (default 500 large / 50 small).")
    var evalSteps: Int?

    @Option(help: "Evaluate every N fine-tuning steps (default: as --eval-steps).")
    var finetuneEvalSteps: Int?

    @Option(help: "Training examples per step.")
    var batchSize: Int = 32

    @Option(help: "Print a progress line and log to metrics.jsonl every N steps.")
    var loggingSteps: Int = 50

    @Flag(help: "Run the padding through the models in every stage, as the reference does (default: sequence-level tasks train on the real tokens only, and layer distillation compares the real tokens' states).")
    var paddedBatches = false

    @Flag(help: "Continue the run in --out (same arguments required).")
    var resume = false

    @Flag(help: "Start over in --out (replaces only the run's own files).")
    var force = false

    func validate() throws {
        try taskOptions.validate(training: true)
        guard evalBatchSize > 0 else { throw ValidationError("--eval-batch-size is \(evalBatchSize); expected a positive number") }
        if resume && force { throw ValidationError("--resume and --force exclude each other") }
        switch (targetSparsity, targetLatency) {
        case (nil, nil): throw ValidationError("give --target-sparsity or --target-latency")
        case (let sparsity?, let latency?):
            let (a, b) = (try Self.list(sparsity, option: "--target-sparsity"), try Self.list(latency, option: "--target-latency"))
            guard a.count == 1, b.count == 1 else {
                throw ValidationError("a ladder takes one kind of target: a list of --target-sparsity or of --target-latency, not both")
            }
            guard a[0] > 0 && a[0] < 1, b[0] > 0 else {
                throw ValidationError("--target-sparsity must be strictly between 0 and 1 and --target-latency positive")
            }
            if profile == nil { throw ValidationError("--target-latency needs --profile FILE, the latency profile of this machine") }
        case (let text?, nil):
            for t in try Self.list(text, option: "--target-sparsity") where !(t > 0 && t < 1) {
                throw ValidationError("--target-sparsity has \(t); expected numbers strictly between 0 and 1")
            }
        case (nil, let text?):
            for ms in try Self.list(text, option: "--target-latency") where !(ms > 0) {
                throw ValidationError("--target-latency has \(ms); expected positive milliseconds")
            }
            if profile == nil {
                throw ValidationError("--target-latency needs --profile FILE, the latency profile of this machine (make one with cofi profile --model \(student) --out FILE)")
            }
        }
        guard latencyTolerance.isFinite && latencyTolerance > 0 && latencyTolerance < 1 else {
            throw ValidationError("--latency-tolerance is \(latencyTolerance); expected a fraction strictly between 0 and 1")
        }
        if let rungHoldSteps, rungHoldSteps < 1 { throw ValidationError("--rung-hold-steps is \(rungHoldSteps); expected a positive number") }
        guard LayerMappingVersion(rawValue: layerMapping) != nil else {
            throw ValidationError("--layer-mapping is \"\(layerMapping)\"; expected one of "
                                  + LayerMappingVersion.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if let teacherLayers { _ = try parsedTeacherLayers(teacherLayers) }
        guard CheckpointGate(rawValue: checkpointGate) != nil else {
            throw ValidationError("--checkpoint-gate is '\(checkpointGate)'; expected one of "
                                  + CheckpointGate.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if let controller, ControllerKind(rawValue: controller) == nil {
            throw ValidationError("--controller is '\(controller)'; expected one of "
                                  + ControllerKind.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if budgetAware && tracking { throw ValidationError("--budget-aware and --tracking exclude each other") }
        // The flags of earlier versions, --budget-aware and --tracking, name a controller too.
        if let controller, let legacy = legacyControllerFlag, controller != legacy.rawValue {
            throw ValidationError("--controller \(controller) contradicts --\(legacy.rawValue)")
        }
        if let ramp, RampShape(rawValue: ramp) == nil {
            throw ValidationError("--ramp is '\(ramp)'; expected one of " + RampShape.allCases.map(\.rawValue).joined(separator: ", "))
        }
        guard trackingHorizon >= 1 else {
            throw ValidationError("--tracking-horizon is \(trackingHorizon); expected a positive number of steps")
        }
        if let controllerSafety, !(controllerSafety.isFinite && controllerSafety > 0) {
            throw ValidationError("--controller-safety is \(controllerSafety); expected a positive number")
        }
        guard loggingSteps > 0 else { throw ValidationError("--logging-steps is \(loggingSteps); expected a positive number") }
        for (name, v) in [("--eval-steps", evalSteps), ("--finetune-eval-steps", finetuneEvalSteps)] {
            if let v, v <= 0 { throw ValidationError("\(name) is \(v); expected a positive number") }
        }
    }

    /// The numbers of a comma-separated list option.
    static func list(_ text: String, option: String) throws -> [Double] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let values = parts.compactMap { Double($0) }
        guard !parts.isEmpty, values.count == parts.count, values.allSatisfy(\.isFinite) else {
            throw ValidationError("\(option) is \"\(text)\"; expected a number or a comma-separated list of numbers")
        }
        return values
    }

    /// The controller named by a flag of earlier versions (`--budget-aware`, `--tracking`), if one is given.
    private var legacyControllerFlag: ControllerKind? {
        budgetAware ? .budgetAware : tracking ? .tracking : nil
    }

    func parsedTeacherLayers(_ text: String) throws -> [Int] {
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let layers = parts.compactMap { Int($0) }
        guard !layers.isEmpty, layers.count == parts.count, zip(layers, layers.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw ValidationError("--teacher-layers is \"\(text)\"; expected increasing 1-based layer numbers, e.g. 3,6,9,12")
        }
        return layers
    }

    /// The default recipe (`PruningSettings.recipe`) for a task of `trainExamples`, with the flags given (validated by the job).
    func settings(trainExamples: Int, latency: LatencyTarget?) throws -> PruningSettings {
        let ladder = try latency?.reductions ?? Self.list(targetSparsity ?? "", option: "--target-sparsity").map { Float($0) }
        var s = PruningSettings.recipe(targetSparsity: ladder.last!, trainExamples: trainExamples, epochs: epochs)
        s.rungs = Array(ladder.dropLast())
        s.rungHoldSteps = rungHoldSteps
        s.latency = latency
        if latency != nil, let targetSparsity { s.sizeTarget = try Float(Self.list(targetSparsity, option: "--target-sparsity")[0]) }
        if let prePruningEpochs { s.prePruningEpochs = prePruningEpochs }
        if let warmupEpochs { s.warmupEpochs = warmupEpochs }
        s.warmupSteps = warmupSteps
        if let evalSteps { s.evalSteps = evalSteps }
        s.finetuneEvalSteps = finetuneEvalSteps ?? s.evalSteps
        s.finetuneEpochs = finetuneEpochs
        if let ramp { s.rampShape = RampShape(rawValue: ramp)! }
        s.sparsityEpsilon = sparsityEpsilon
        s.checkpointGate = CheckpointGate(rawValue: checkpointGate)!
        s.requireGate = requireGate
        s.learningRate = learningRate
        if let finetuneLr { s.finetuneLearningRate = finetuneLr }
        s.regLearningRate = regLr
        s.batchSize = batchSize
        s.seed = seed
        s.loggingSteps = loggingSteps
        s.packTokens = paddedBatches ? false : nil
        s.distillation = DistillationConfig(temperature: temperature, predictionWeight: alphaCe, layerWeight: alphaLayer,
                                            labelWeight: alphaLabel, mappingVersion: LayerMappingVersion(rawValue: layerMapping)!,
                                            teacherLayers: try teacherLayers.map(parsedTeacherLayers))
        switch controller.flatMap(ControllerKind.init(rawValue:)) ?? legacyControllerFlag ?? .tracking {
        case .tracking: s.controller = .tracking(safety: controllerSafety ?? ControllerOptions.trackingSafety, horizon: trackingHorizon)
        case .budgetAware: s.controller = .budgetAware(safety: controllerSafety ?? ControllerOptions.budgetAwareSafety,
                                                       antiWindup: !noAntiWindup)
        case .paper: s.controller = .paper
        }
        return s
    }

    func run() throws {
        do { try runPruning() } catch let e as UserError { throw e } catch let e as ValidationError { throw e }
        catch let e as ExitCode { throw e } catch {
            throw UserError(description: "\(error)")
        }
    }

    private func runPruning() throws {
        let outDir = absoluteURL(out)
        let session = try parallelOptions.start()
        let (latency, profiled) = try latencyTarget(lead: session.isLead)
        try session.run { parallel in
            let job = try PruningJob(teacher: absoluteURL(teacher), student: absoluteURL(student),
                                     task: taskOptions.selection(evalBatchSize: evalBatchSize), out: outDir,
                                     mode: resume ? .resume : (force ? .force : .fresh),
                                     settings: { try settings(trainExamples: $0, latency: latency) },
                                     progress: ProgressReporter(lineEvery: loggingSteps), parallel: parallel)
            if session.isLead {
                // Measured latencies of the delivered models (and the teacher), for the summary, the report and the
                // model cards: under the profile's conditions, else B = 1, T = 128 on the engine's threads.
                let c = profiled?.conditions
                var bench = ModelBenchmark(warmup: 3, budget: 2, threads: c?.threads)
                bench.policy = RepeatPolicy(warmup: 3, repeats: nil, budget: 2, bounds: 20...1000)
                let batch = c?.batch ?? 1, length = c?.sequenceLength ?? 128
                job.pipeline.latencyMeter = { try bench.latency(of: $0, batch: batch, length: length) }
                job.pipeline.latencyConditions = .init(batch: batch, sequenceLength: length, threads: c?.threads ?? Parallel.workers,
                                                       processor: Processor.modelName)
            }
            job.pipeline.command = Shell.quote(CommandLine.arguments)
            let interrupt = InterruptHandler(note: session.isLead
                ? "\ninterrupted: stopping after this step and saving the stage's checkpoint\n" : "") {
                [weak job] in job?.requestStop()
            }
            defer { interrupt.cancel() }
            let summary = try job.run()
            guard session.isLead else { return }
            print(summary.text)
            print("compact model: \(outDir.appendingPathComponent("final").path); summary: "
                  + outDir.appendingPathComponent("summary.json").path)
        }
    }
}

extension Prune {
    /// With --target-latency: the target checked against the profile and the student's dense shape (the reachable
    /// range is an error, other conditions than this machine's a warning); and the profile read, when given.
    func latencyTarget(lead: Bool) throws -> (LatencyTarget?, LatencyProfile?) {
        guard let profile else { return (nil, nil) }
        let read = try LatencyProfile.read(absoluteURL(profile))
        let here = (processor: Processor.modelName, kernels: KernelFamily.selected.family.rawValue)
        var differences: [String] = []
        if read.conditions.processor != here.processor {
            differences.append("it was measured on '\(read.conditions.processor)', this machine is '\(here.processor)'")
        }
        if read.conditions.kernels != here.kernels {
            differences.append("it was measured with the \(read.conditions.kernels) kernels, this run uses \(here.kernels)")
        }
        if lead && !differences.isEmpty {
            FileHandle.standardError.write(Data(("warning: the latency profile \(profile) may not predict this machine: "
                + differences.joined(separator: "; ") + " (measure one here with cofi profile)\n").utf8))
        }
        let studentModel = try BertModel.load(directory: absoluteURL(student))
        if read.model.hiddenSize != studentModel.shape.hiddenSize || read.model.layers != studentModel.shape.layers, lead {
            FileHandle.standardError.write(Data(("warning: the latency profile \(profile) was measured on a model of another shape "
                + "(hidden \(read.model.hiddenSize), \(read.model.layers.count) layers) than the student (hidden "
                + "\(studentModel.shape.hiddenSize), \(studentModel.shape.layers.count) layers); its per-sublayer costs are used as they are\n").utf8))
        }
        guard let targetLatency else { return (nil, read) }
        let ms = try Self.list(targetLatency, option: "--target-latency")
        do {
            return (try LatencyTarget(milliseconds: ms, tolerance: latencyTolerance, profile: read, student: studentModel.shape), read)
        } catch let e as PruningError {
            throw ValidationError("--target-latency: \(e.description)")
        }
    }
}

/// The values of `cofi prune --controller` (`ControllerOptions`).
enum ControllerKind: String, CaseIterable {
    case tracking
    case budgetAware = "budget-aware"
    case paper
}
