import BERT
import Foundation
import Tasks
import Tensor
import Training

/// `cofi prune` as a library call (cofi-spec §6): everything that can fail on the user's input (teacher, student,
/// task, settings, output directory) is checked in `init`, before the output directory is touched; `run()` runs the
/// pipeline — pre-pruning distillation, pruning, fold and cut, fine-tuning of the compact model.
public final class PruningJob: @unchecked Sendable {
    public let pipeline: PruningPipeline
    public let settings: PruningSettings
    public let output: URL
    private let prepared: PreparedTask
    private let teacherDirectory: URL
    private let studentDirectory: URL
    private let resume: Bool

    /// Prepares pruning `student` (distilled from `teacher`) on `task` into `out`. `settings` makes the run's
    /// settings for a task of a given number of training examples (the paper's recipe depends on it; its batch size
    /// and seed, which the task's batches are made with, must not); they are validated here. The run arguments (a
    /// resume must repeat them) are the task's, the models' directories and `PruningSettings.runArguments`.
    ///
    /// With `parallel` (one of several ranks under mpirun), every rank prepares the same job and they agree before
    /// going on (a rank that fails makes every rank throw the agreed `ClusterError` naming it), then check that
    /// their arguments, training data and teacher and student weights are identical. Rank 0 alone prepares and
    /// writes the output directory and reports; every other rank runs the same pipeline on a private scratch
    /// directory (removed at the end) in which it keeps only what the pipeline reads back — the best weights and
    /// gates of each stage — and, on `--resume`, receives rank 0's stage files over MPI.
    public init(teacher: URL, student: URL, task: TaskSelection, out: URL, mode: TrainingOutput.Mode,
                settings makeSettings: (_ trainExamples: Int) throws -> PruningSettings,
                progress: ProgressReporter?, parallel: DataParallel? = nil) throws {
        let group = parallel?.group
        let lead = group?.isLead ?? true
        let made = try agreeing(group) { () throws -> Prepared in
            try Self.prepare(teacher: teacher, student: student, task: task, out: out, settings: makeSettings,
                             fetch: lead)
        }
        if let parallel {
            try parallel.checkSameRun(arguments: made.arguments, settings: String(describing: made.settings),
                                      data: made.prepared.data, models: [
                ("the teacher (\(teacher.appendingPathComponent("model.safetensors").path))", made.teacher.namedParameters),
                ("the student (\(student.appendingPathComponent("model.safetensors").path))", made.student.namedParameters),
            ])
            parallel.distribute(made.prepared.evaluator)
        }
        // Rank 0 writes the output directory; the others a private copy of what the pipeline reads back.
        let directory = try agreeing(group) { lead ? out : try parallel!.scratchDirectory() }
        scratch = lead ? nil : directory
        try agreeing(group) { try PruningOutput.prepare(directory, mode: lead ? mode : .force) }
        if let parallel, mode == .resume {
            try parallel.group.mirror(directory: out, into: scratch, skipping: ["metrics.jsonl", "figures", "report.md"])
        }
        pipeline = try PruningPipeline(teacher: made.teacher, student: made.student, data: made.prepared.data,
                                       evaluator: made.prepared.evaluator, settings: made.settings, output: directory,
                                       export: made.prepared.export, arguments: made.arguments)
        pipeline.parallel = parallel
        pipeline.progress = lead ? progress : nil
        self.settings = made.settings
        self.prepared = made.prepared
        self.output = out
        teacherDirectory = teacher
        studentDirectory = student
        resume = mode == .resume
    }

    deinit {
        if let scratch { try? FileManager.default.removeItem(at: scratch) }
    }

    /// A non-lead rank's private copy of the output directory.
    private let scratch: URL?

    /// What `init` reads and checks before any output is written.
    private struct Prepared {
        let prepared: PreparedTask
        let teacher: BertModel
        let student: BertModel
        let settings: PruningSettings
        let arguments: [String: String]
    }

    private static func prepare(teacher: URL, student: URL, task: TaskSelection, out: URL,
                                settings makeSettings: (_ trainExamples: Int) throws -> PruningSettings,
                                fetch: Bool) throws -> Prepared {
        if fetch {
            try AssetsDirectory.fetchIfDefault(student) { FileHandle.standardError.write(Data("fetch: \($0)\n".utf8)) }
        }
        let tokenizer = try WordPieceTokenizer.load(directory: student)
        let batching = try makeSettings(0)
        let prepared = try task.prepareTraining(tokenizer: tokenizer, tokenizerDirectory: student,
                                                batchSize: batching.batchSize, seed: batching.seed)
        let head = prepared.head
        let teacherWeights = teacher.appendingPathComponent("model.safetensors")
        let teacherFile = try SafetensorsFile(contentsOf: teacherWeights)
        guard teacherFile.contains(CheckpointKeys.head(head).weight) else {
            throw PruningError("\(teacherWeights.path) has no '\(CheckpointKeys.head(head).weight)': the teacher must be "
                               + "fine-tuned on the task (cofi finetune)")
        }
        let teacherModel = try BertModel.load(directory: teacher, task: head, seed: batching.seed)
        let studentModel = try BertModel.load(directory: student, task: head, seed: batching.seed)
        try prepared.checkLength(teacherModel, role: "teacher")
        try prepared.checkLength(studentModel, role: "student")
        let runSettings = try makeSettings(prepared.trainExamples)
        do { try runSettings.validate() } catch { throw PruningError("\(error)") }
        let runArguments = prepared.arguments
            .merging(runSettings.runArguments.merging(["teacher": teacher.path, "student": student.path]) { a, _ in a }) { a, _ in a }
        // The pipeline's own checks (teacher and student fit), before anything is written.
        _ = try PruningPipeline(teacher: teacherModel, student: studentModel, data: prepared.data,
                                evaluator: prepared.evaluator, settings: runSettings, output: nil,
                                export: prepared.export, arguments: runArguments)
        return Prepared(prepared: prepared, teacher: teacherModel, student: studentModel, settings: runSettings,
                        arguments: runArguments)
    }

    /// Runs (or, after `init(mode: .resume)`, continues) the pipeline to the end, or until `requestStop`.
    public func run() throws -> PruningSummary {
        let s = settings
        let large = prepared.trainExamples >= PruningSettings.largeTaskThreshold
        pipeline.progress?.message(
            "pruning \(studentDirectory.path) to " + Self.goal(s) + " on \(prepared.taskName): "
                + "\(prepared.description) (\(large ? "large" : "small") task), "
                + "metric \(prepared.evaluator.primaryName)\nteacher \(teacherDirectory.path); \(prepared.data.batchCount) steps per epoch, "
                + "\(s.epochs) epochs (\(s.prePruningEpochs) pre-pruning, warm-up "
                + (s.warmupSteps.map { "\($0) steps" } ?? "\(s.warmupEpochs) epochs") + "), "
                + "\(s.finetuneEpochs) fine-tuning epochs; lr \(s.learningRate), reg lr \(s.regLearningRate)"
                + (s.controller.tracking ? " (tracking)" : s.controller.budgetAware ? " (budget-aware)" : "") + ", max length \(prepared.maxLength), seed \(s.seed)\noutput: \(output.path)")
        return try pipeline.run(resume: resume)
    }

    /// The run's target in words: the sparsity or latency, the rungs of a ladder, and ε.
    static func goal(_ s: PruningSettings) -> String {
        let ladder = s.rungs + [s.targetSparsity]
        if let latency = s.latency {
            return "latency " + latency.milliseconds.map { String(format: "%.3g ms", $0) }.joined(separator: ", ")
                + " (± \(Int((latency.tolerance * 100).rounded())) % of the profile's prediction; dense "
                + String(format: "%.3g ms", latency.denseMilliseconds) + ")"
                + (s.sizeTarget.map { " and sparsity \($0) (ε \(s.sparsityEpsilon))" } ?? "")
        }
        return (ladder.count > 1 ? "the sparsity ladder " : "sparsity ") + ladder.map { "\($0)" }.joined(separator: ", ")
            + " (ε \(s.sparsityEpsilon))"
    }

    /// Finishes the running step, saves the running stage's checkpoint and stops.
    public func requestStop() { pipeline.requestStop() }
}

/// The output directory of a pruning run: what `cofi prune` writes there, and what it does with a run already there
/// (the same three modes as fine-tuning's `TrainingOutput.prepare`).
public enum PruningOutput {
    /// The names a run writes (and `.force` removes).
    public static let runFiles = ["preprune", "prune", "finetune", "pruned", "final", "summary.json", "report.md", "figures"]

    /// The run's directories that a killed write can leave temporary files or staged checkpoints in.
    public static let writtenDirectories = ["", "preprune", "prune", "finetune", "pruned", "final", "figures"]

    /// `.resume` needs a run in `directory`; `.force` removes only the run's files; `.fresh` needs it absent or empty.
    /// First, in every mode, removes what killed runs left in the run's directories (`TrainingOutput.removeLeftovers`).
    /// Creates the directory.
    public static func prepare(_ directory: URL, mode: TrainingOutput.Mode) throws {
        let fm = FileManager.default
        for name in writtenDirectories {
            TrainingOutput.removeLeftovers(in: name.isEmpty ? directory : directory.appendingPathComponent(name))
        }
        let contents = ((try? fm.contentsOfDirectory(atPath: directory.path)) ?? []).sorted()
        switch mode {
        case .resume:
            guard contents.contains(where: { ["preprune", "prune"].contains($0) }) else {
                throw PruningError("nothing to resume in \(directory.path): no preprune/ or prune/ stage; start a new run instead")
            }
        case .force:
            for name in runFiles where contents.contains(name) {
                do { try fm.removeItem(at: directory.appendingPathComponent(name)) } catch {
                    throw PruningError("\(directory.appendingPathComponent(name).path): cannot remove the previous run's file")
                }
            }
        case .fresh:
            guard contents.isEmpty else {
                let ours = contents.contains { runFiles.contains($0) }
                throw PruningError("\(directory.path) " + (ours
                    ? "holds another pruning run; continue it with --resume, or start over with --force"
                    : "exists and is not empty; choose a new output directory, or pass --force"))
            }
        }
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
    }
}

extension PruningSettings {
    /// The settings a resumed run must repeat, as `cofi prune` records them in each stage's trainer_state.json.
    public var runArguments: [String: String] {
        var arguments: [String: String] = ["target_sparsity": "\(targetSparsity)", "sparsity_epsilon": "\(sparsityEpsilon)",
         "reg_lr": "\(regLearningRate)", "budget_aware": "\(controller.budgetAware)",
         "anti_windup": "\(controller.budgetAware && controller.antiWindup)", "controller_safety": "\(controller.safety)",
         "checkpoint_gate": checkpointGate.rawValue, "temperature": "\(distillation.temperature)",
         "alpha_ce": "\(distillation.predictionWeight)", "alpha_layer": "\(distillation.layerWeight)",
         "alpha_label": "\(distillation.labelWeight)", "layer_mapping": distillation.mappingVersion.rawValue,
         "teacher_layers": distillation.teacherLayers.map { $0.map(String.init).joined(separator: ",") } ?? "default",
         "epochs": "\(epochs)", "pre_pruning_epochs": "\(prePruningEpochs)", "warmup_epochs": "\(warmupEpochs)",
         "warmup_steps": warmupSteps.map { "\($0)" } ?? "none"]
            // Only when on (not linear), so that runs saved before the tracking controller (the ramp shape) existed still resume.
        if controller.tracking { arguments["tracking_horizon"] = "\(controller.trackingHorizon)" }
        // Only when not the default (not linear, no ladder, no latency), so that earlier runs still resume.
        if rampShape != .linear { arguments["ramp"] = rampShape.rawValue }
        if !rungs.isEmpty {
            arguments["rungs"] = rungs.map { "\($0)" }.joined(separator: ",")
            arguments["rung_hold_steps"] = rungHoldSteps.map { "\($0)" } ?? "default"
        }
        if let latency {
            arguments["target_latency_ms"] = latency.milliseconds.map { "\($0)" }.joined(separator: ",")
            arguments["latency_tolerance"] = "\(latency.tolerance)"
            arguments["profile_dense_ms"] = String(format: "%.6g", latency.denseMilliseconds)
        }
        if let sizeTarget { arguments["size_target"] = "\(sizeTarget)" }
        return arguments
    }
}
