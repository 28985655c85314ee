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
    public init(teacher: URL, student: URL, task: TaskSelection, out: URL, mode: TrainingOutput.Mode,
                settings makeSettings: (_ trainExamples: Int) throws -> PruningSettings,
                progress: ProgressReporter?) throws {
        try AssetsDirectory.fetchIfDefault(student) { FileHandle.standardError.write(Data("fetch: \($0)\n".utf8)) }
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
        pipeline = try PruningPipeline(teacher: teacherModel, student: studentModel, data: prepared.data,
                                       evaluator: prepared.evaluator, settings: runSettings, output: out,
                                       export: prepared.export, arguments: runArguments)
        try PruningOutput.prepare(out, mode: mode)
        pipeline.progress = progress
        self.settings = runSettings
        self.prepared = prepared
        self.output = out
        teacherDirectory = teacher
        studentDirectory = student
        resume = mode == .resume
    }

    /// Runs (or, after `init(mode: .resume)`, continues) the pipeline to the end, or until `requestStop`.
    public func run() throws -> PruningSummary {
        let s = settings
        let large = prepared.trainExamples >= PruningSettings.largeTaskThreshold
        pipeline.progress?.message(
            "pruning \(studentDirectory.path) to sparsity \(s.targetSparsity) (ε \(s.sparsityEpsilon)) on \(prepared.taskName): "
                + "\(prepared.description) (\(large ? "large" : "small") task), "
                + "metric \(prepared.evaluator.primaryName)\nteacher \(teacherDirectory.path); \(prepared.data.batchCount) steps per epoch, "
                + "\(s.epochs) epochs (\(s.prePruningEpochs) pre-pruning, warm-up "
                + (s.warmupSteps.map { "\($0) steps" } ?? "\(s.warmupEpochs) epochs") + "), "
                + "\(s.finetuneEpochs) fine-tuning epochs; lr \(s.learningRate), reg lr \(s.regLearningRate)"
                + (s.controller.budgetAware ? " (budget-aware)" : "") + ", max length \(prepared.maxLength), seed \(s.seed)\noutput: \(output.path)")
        return try pipeline.run(resume: resume)
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
        ["target_sparsity": "\(targetSparsity)", "sparsity_epsilon": "\(sparsityEpsilon)",
         "reg_lr": "\(regLearningRate)", "budget_aware": "\(controller.budgetAware)",
         "anti_windup": "\(controller.budgetAware && controller.antiWindup)", "controller_safety": "\(controller.safety)",
         "checkpoint_gate": checkpointGate.rawValue, "temperature": "\(distillation.temperature)",
         "alpha_ce": "\(distillation.predictionWeight)", "alpha_layer": "\(distillation.layerWeight)",
         "alpha_label": "\(distillation.labelWeight)", "layer_mapping": distillation.mappingVersion.rawValue,
         "teacher_layers": distillation.teacherLayers.map { $0.map(String.init).joined(separator: ",") } ?? "default",
         "epochs": "\(epochs)", "pre_pruning_epochs": "\(prePruningEpochs)", "warmup_epochs": "\(warmupEpochs)",
         "warmup_steps": warmupSteps.map { "\($0)" } ?? "none"]
    }
}
