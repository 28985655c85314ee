#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import BERT
import Foundation
import Tasks
import Tensor

// Checkpoints: Hugging Face model directories (config.json + model.safetensors + tokenizer files) that also carry
// what a run needs to continue (trainer_state.json, optimizer.safetensors, objective.safetensors). Every directory
// is written whole into a hidden sibling and then renamed into place, so a reader (or a resumed run) sees either the
// previous checkpoint or the new one, never half of one; what a killed write leaves behind is removed at the next
// start (`TrainingOutput.removeLeftovers`).

/// Where a run is in its schedule, and what it was started with: `trainer_state.json`.
///
/// Randomness needs no saved generator state: epoch e shuffles with `Xoshiro256(seed &+ e)` (`Batcher`) and the
/// optimiser step k draws its dropout from `Xoshiro256(Trainer.dropoutSeed(seed, step: k))`, so (seed, epoch,
/// batch in epoch, step) determine every later draw.
public struct TrainerState: Codable, Equatable, Sendable {
    public var formatVersion = 1
    /// Optimiser steps taken.
    public var globalStep = 0
    /// The epoch in progress (0-based) and the batches of it already taken.
    public var epoch = 0
    public var batchInEpoch = 0
    public var stepsPerEpoch: Int
    public var totalSteps: Int
    public var trainExamples: Int
    /// Examples trained on so far, over every resume.
    public var examplesSeen = 0
    /// Seconds spent in training steps and in evaluation so far, over every resume.
    public var trainSeconds = 0.0
    public var evaluationSeconds = 0.0
    /// Wall seconds spent in `Trainer.train()` up to this checkpoint, over every resume (nil in states written
    /// before it was recorded). A killed process's time after its last checkpoint is not counted: that work is
    /// redone, and counted, by the resumed run.
    public var wallSeconds: Double?
    public var bestMetricName: String?
    public var bestMetric: Double?
    public var bestStep: Int?
    public var lastEvaluationStep: Int?
    public var seed: UInt64
    /// How every random draw is derived from `seed` (documentation for people reading the file).
    public var rng: String
    public var configuration: TrainerConfiguration
    /// The run's own arguments (model, task, data, max length…), as the caller gave them.
    public var arguments: [String: String]

    /// Epochs done, as a fraction.
    public var epochProgress: Double { Double(epoch) + Double(batchInEpoch) / Double(max(stepsPerEpoch, 1)) }

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", globalStep = "global_step", epoch, batchInEpoch = "batch_in_epoch"
        case stepsPerEpoch = "steps_per_epoch", totalSteps = "total_steps", trainExamples = "train_examples"
        case examplesSeen = "examples_seen", trainSeconds = "train_seconds", evaluationSeconds = "evaluation_seconds"
        case wallSeconds = "wall_seconds"
        case bestMetricName = "best_metric_name", bestMetric = "best_metric", bestStep = "best_step"
        case lastEvaluationStep = "last_evaluation_step", seed, rng, configuration, arguments
    }
}

/// What a saved model directory holds besides the weights: the label names for config.json and the tokenizer files.
public struct ModelExport {
    /// The task's labels; names `id2label` / `label2id` (classification) and sets `problem_type`.
    public var labels: LabelKind?
    /// Copied into every saved directory when present: vocab.txt, tokenizer.json, tokenizer_config.json,
    /// special_tokens_map.json.
    public var tokenizerDirectory: URL?

    public static let tokenizerFiles = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]

    public init(labels: LabelKind? = nil, tokenizerDirectory: URL? = nil) {
        self.labels = labels
        self.tokenizerDirectory = tokenizerDirectory
    }

    /// The model's config with the head described as transformers expects: `architectures`, `num_labels`,
    /// `id2label` / `label2id` (the task's label names, else LABEL_i) and `problem_type`.
    public func config(for model: BertModel) -> BertConfig {
        var c = model.config
        c.modelType = "bert"
        func names(_ n: Int) -> [String] {
            if let given = labels?.labelNames, given.count == n { return given }
            return (0..<n).map { "LABEL_\($0)" }
        }
        func setLabels(_ n: Int) {
            let list = names(n)
            c.numLabels = n
            c.id2label = Dictionary(uniqueKeysWithValues: list.enumerated().map { ("\($0.offset)", $0.element) })
            c.label2id = Dictionary(list.enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { a, _ in a })
        }
        switch model.task {
        case .classification(let n)?:
            setLabels(n)
            c.problemType = "single_label_classification"
            c.architectures = ["BertForSequenceClassification"]
        case .regression?:
            setLabels(1)
            c.problemType = "regression"
            c.architectures = ["BertForSequenceClassification"]
        case .span?:
            c.numLabels = 2
            c.id2label = nil
            c.label2id = nil
            c.problemType = nil
            c.architectures = ["BertForQuestionAnswering"]
        case nil:
            c.architectures = ["BertModel"]
        }
        return c
    }
}

/// Writing and reading checkpoint directories.
public enum TrainingCheckpoint {
    /// Assigns every parameter of `model` from the safetensors file at `url` (same names and shapes), naming the
    /// file and the tensor when one is missing or of another shape.
    public static func loadWeights(into model: BertModel, from url: URL) throws {
        let file = try SafetensorsFile(contentsOf: url)
        for (name, p) in model.namedParameters {
            guard file.contains(name) else { throw TrainerError("\(url.path): missing tensor '\(name)'") }
            let t = try file.tensor(name)
            guard t.shape == p.shape else {
                throw TrainerError("\(url.path): tensor '\(name)' has shape \(t.shape), the model has \(p.shape)")
            }
            p.assign(t)
        }
    }

    /// Every tensor of the safetensors file at `url`, by name.
    public static func readTensors(_ url: URL) throws -> [String: Tensor] {
        let file = try SafetensorsFile(contentsOf: url)
        var tensors: [String: Tensor] = [:]
        for name in file.names { tensors[name] = try file.tensor(name) }
        return tensors
    }

    /// Loads the weights of the checkpoint directory `checkpoint` into `model` and, when it holds
    /// objective.safetensors, restores `objective` from that.
    public static func load(into model: BertModel, objective: TrainingObjective, from checkpoint: URL) throws {
        try loadWeights(into: model, from: checkpoint.appendingPathComponent("model.safetensors"))
        let url = checkpoint.appendingPathComponent(objectiveFile)
        if FileManager.default.fileExists(atPath: url.path) {
            try objective.restore(checkpointTensors: readTensors(url))
        }
    }

    public static let stateFile = "trainer_state.json"
    public static let optimizerFile = "optimizer.safetensors"
    public static let objectiveFile = "objective.safetensors"

    /// Writes a model directory at `directory`, replacing what is there only once the new one is complete:
    /// config.json and model.safetensors (every parameter under its Hugging Face name), the tokenizer files, and
    /// when given trainer_state.json, optimizer.safetensors (tensors named `<optimizer>/<key>`),
    /// objective.safetensors and `extraFiles` (name → contents). On failure the previous directory is left as it was and nothing partial remains.
    public static func write(to directory: URL, model: BertModel, export: ModelExport, state: TrainerState? = nil,
                             optimizers: [(name: String, optimizer: AdamW)] = [],
                             objectiveTensors: [String: Tensor] = [:], extraFiles: [String: Data] = [:]) throws {
        let fm = FileManager.default
        let parent = directory.deletingLastPathComponent()
        let staging = parent.appendingPathComponent(".\(directory.lastPathComponent).partial-\(ProcessInfo.processInfo.processIdentifier)")
        try? fm.removeItem(at: staging)
        do {
            try fm.createDirectory(at: staging, withIntermediateDirectories: true)
            var tensors: [String: Tensor] = [:]
            for (name, p) in model.namedParameters { tensors[name] = p.value }
            try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: staging.appendingPathComponent("model.safetensors"))
            try export.config(for: model).write(to: staging.appendingPathComponent("config.json"))
            if let source = export.tokenizerDirectory {
                for file in ModelExport.tokenizerFiles {
                    let from = source.appendingPathComponent(file)
                    guard fm.fileExists(atPath: from.path) else { continue }
                    do { try fm.copyItem(at: from, to: staging.appendingPathComponent(file)) } catch {
                        throw TrainerError("\(from.path): cannot copy the tokenizer file into the checkpoint (\(error.localizedDescription))")
                    }
                }
            }
            if !optimizers.isEmpty {
                var all: [String: Tensor] = [:]
                for (name, optimizer) in optimizers {
                    for (key, t) in optimizer.state { all["\(name)/\(key)"] = t }
                }
                try SafetensorsWriter.write(all, metadata: ["format": "cofi-adamw"],
                                            to: staging.appendingPathComponent(optimizerFile))
            }
            if !objectiveTensors.isEmpty {
                try SafetensorsWriter.write(objectiveTensors, to: staging.appendingPathComponent(objectiveFile))
            }
            for (name, data) in extraFiles { try data.write(to: staging.appendingPathComponent(name)) }
            if let state {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                var data = try encoder.encode(state)
                data.append(0x0A)
                try data.write(to: staging.appendingPathComponent(stateFile))
            }
            try replace(directory, with: staging)
        } catch {
            try? fm.removeItem(at: staging)
            throw error
        }
    }

    /// Renames `staging` to `directory`. An existing `directory` is first renamed aside (`.<name>.previous`) and
    /// removed after; `recover(_:)` undoes a crash between the two renames.
    static func replace(_ directory: URL, with staging: URL) throws {
        let fm = FileManager.default
        let previous = previousURL(directory)
        try? fm.removeItem(at: previous)
        do {
            if fm.fileExists(atPath: directory.path) { try fm.moveItem(at: directory, to: previous) }
            try fm.moveItem(at: staging, to: directory)
        } catch {
            if !fm.fileExists(atPath: directory.path), fm.fileExists(atPath: previous.path) {
                try? fm.moveItem(at: previous, to: directory)
            }
            throw TrainerError("\(directory.path): cannot put the new checkpoint in place (\(error.localizedDescription))")
        }
        try? fm.removeItem(at: previous)
    }

    static func previousURL(_ directory: URL) -> URL {
        directory.deletingLastPathComponent().appendingPathComponent(".\(directory.lastPathComponent).previous")
    }

    /// Restores `directory` from its renamed-aside copy if a crash left only that, and removes leftovers.
    public static func recover(_ directory: URL) {
        let fm = FileManager.default
        let previous = previousURL(directory)
        if fm.fileExists(atPath: previous.path) {
            if fm.fileExists(atPath: directory.path) { try? fm.removeItem(at: previous) } else {
                try? fm.moveItem(at: previous, to: directory)
            }
        }
    }

    /// Reads `directory/trainer_state.json`.
    public static func readState(_ directory: URL) throws -> TrainerState {
        let url = directory.appendingPathComponent(stateFile)
        guard let data = try? Data(contentsOf: url) else {
            throw TrainerError("\(url.path): no such file (not a checkpoint written by cofi's trainer)")
        }
        do { return try JSONDecoder().decode(TrainerState.self, from: data) } catch {
            throw TrainerError("\(url.path): not a valid trainer state (\(error))")
        }
    }
}

/// A run's output directory: `checkpoint/` (the latest state, to resume from), `best/` (the best model by the dev
/// metric) and `metrics.jsonl`.
public struct TrainingOutput: Sendable {
    public let directory: URL
    public var checkpoint: URL { directory.appendingPathComponent("checkpoint") }
    public var best: URL { directory.appendingPathComponent("best") }
    public var metrics: URL { directory.appendingPathComponent("metrics.jsonl") }

    /// How to treat what is already in the directory.
    public enum Mode: Sendable {
        /// The directory must be absent or empty.
        case fresh
        /// Start over: the files of a previous run (checkpoint/, best/, metrics.jsonl) are removed; anything else
        /// in the directory is left alone.
        case force
        /// Continue the run whose checkpoint/ is there.
        case resume
    }

    /// The names a run writes (and `.force` removes).
    public static let runFiles = ["checkpoint", "best", "metrics.jsonl"]

    public init(directory: URL) { self.directory = directory }

    /// Checks `directory` against `mode` and creates it if needed. Refuses to start a fresh run in a directory
    /// that holds anything, and to resume where there is no checkpoint; never removes a file it did not write.
    /// First puts back a checkpoint renamed aside by a crash (`TrainingCheckpoint.recover`) and removes the leftovers
    /// of killed runs (`removeLeftovers`), in every mode.
    public static func prepare(_ directory: URL, mode: Mode) throws -> TrainingOutput {
        let fm = FileManager.default
        let out = TrainingOutput(directory: directory)
        var isDirectory: ObjCBool = false
        let exists = fm.fileExists(atPath: directory.path, isDirectory: &isDirectory)
        if exists && !isDirectory.boolValue {
            throw TrainerError("\(directory.path): exists and is not a directory; choose another output directory")
        }
        TrainingCheckpoint.recover(out.checkpoint)
        TrainingCheckpoint.recover(out.best)
        if exists { removeLeftovers(in: directory) }
        let contents = exists ? ((try? fm.contentsOfDirectory(atPath: directory.path)) ?? []).sorted() : []
        switch mode {
        case .fresh:
            guard contents.isEmpty else {
                if out.holdsRun {
                    let step = (try? TrainingCheckpoint.readState(out.checkpoint)).map { " (its checkpoint is at step \($0.globalStep) of \($0.totalSteps))" } ?? ""
                    throw TrainerError("\(directory.path) holds another training run\(step); continue it with --resume, " +
                                       "or start over with --force (replaces its checkpoint/, best/ and metrics.jsonl)")
                }
                let shown = contents.prefix(5).joined(separator: ", ") + (contents.count > 5 ? ", …" : "")
                throw TrainerError("\(directory.path) exists and is not empty (it holds \(shown)); choose a new output " +
                                   "directory, or pass --force to write the run's files into it (other files are kept)")
            }
        case .force:
            let aside = contents.filter { ($0.hasPrefix(".checkpoint.") || $0.hasPrefix(".best.")) && !isLiveStaging($0) }
            for name in runFiles + aside {
                let url = directory.appendingPathComponent(name)
                if fm.fileExists(atPath: url.path) {
                    do { try fm.removeItem(at: url) } catch {
                        throw TrainerError("\(url.path): cannot remove the previous run's file (\(error.localizedDescription))")
                    }
                }
            }
        case .resume:
            guard fm.fileExists(atPath: out.checkpoint.appendingPathComponent(TrainingCheckpoint.stateFile).path) else {
                throw TrainerError("nothing to resume in \(directory.path): no checkpoint/\(TrainingCheckpoint.stateFile) " +
                                   "(a run writes its first checkpoint at its first evaluation or epoch end); start a new run instead")
            }
        }
        do { try fm.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw TrainerError("\(directory.path): cannot create the output directory (\(error.localizedDescription))")
        }
        return out
    }

    /// The last stop on a non-finite loss or gradient norm after step `step` that `metrics.jsonl` records (a
    /// `stopped` event marked `diverged`), with its reason; nil when there is none (or no readable log). Lines
    /// that do not parse (cut short by a kill) are skipped.
    public func divergence(after step: Int) -> (step: Int, reason: String)? {
        guard let data = try? Data(contentsOf: metrics) else { return nil }
        var found: (step: Int, reason: String)?
        for line in data.split(separator: 0x0A) where !line.isEmpty {
            guard let r = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  r["event"] as? String == "stopped", r["diverged"] as? Bool == true,
                  let s = r["step"] as? Int, s > step else { continue }
            found = (s, r["reason"] as? String ?? "the training diverged")
        }
        return found
    }

    /// Whether the directory holds files of a training run.
    public var holdsRun: Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: metrics.path)
            || fm.fileExists(atPath: checkpoint.appendingPathComponent(TrainingCheckpoint.stateFile).path)
            || fm.fileExists(atPath: best.appendingPathComponent(TrainingCheckpoint.stateFile).path)
    }
}

// MARK: - Leftovers of killed runs

extension TrainingOutput {
    /// The directories a run stages its writes of (`.<name>.partial-<pid>`, see `TrainingCheckpoint.write`).
    public static let stagedDirectories = ["checkpoint", "best"]

    /// Removes from `directory` (not below it) what a run killed in the middle of a write left there, recognised by
    /// name and, where the name holds one, by its process being gone (`kill(pid, 0)` fails with ESRCH):
    ///
    /// - `.<name>.partial-<pid>`, a checkpoint being written (`TrainingCheckpoint.write`), for each name of `staged`;
    /// - `.dat.nosync<pid in hex>.<6 characters>`, Foundation's temporary file of an atomic write (metrics.jsonl,
    ///   summary.json, DONE, config.json, the report);
    /// - `.<file>.safetensors.<UUID>.tmp`, `SafetensorsWriter`'s temporary file: its name holds no process id, so
    ///   it is removed whatever wrote it.
    ///
    /// Limits: a process id reused by a live process keeps its leftover until that process ends; and another run
    /// writing a safetensors file into the same directory at this moment loses its temporary file (its write then
    /// fails with an error; two runs in one directory are not supported). Returns the names removed, sorted.
    @discardableResult
    public static func removeLeftovers(in directory: URL, staged: [String] = stagedDirectories) -> [String] {
        let fm = FileManager.default
        let names = ((try? fm.contentsOfDirectory(atPath: directory.path)) ?? []).sorted()
        return names.filter { name in
            guard isLeftover(name, staged: staged) else { return false }
            return (try? fm.removeItem(at: directory.appendingPathComponent(name))) != nil
        }
    }

    /// Whether `name` is a leftover that `removeLeftovers` removes (its process, when it names one, is gone).
    static func isLeftover(_ name: String, staged: [String] = stagedDirectories) -> Bool {
        if let pid = stagingProcess(name, staged: staged) { return processIsGone(pid) }
        if name.hasPrefix(".dat.nosync") {
            let rest = name.dropFirst(".dat.nosync".count).split(separator: ".", omittingEmptySubsequences: false)
            guard rest.count == 2, rest[1].count == 6, let pid = pid_t(rest[0], radix: 16), pid > 0 else { return false }
            return processIsGone(pid)
        }
        if name.hasPrefix("."), name.hasSuffix(".tmp") {
            let middle = name.dropFirst().dropLast(".tmp".count)
            guard middle.count > 37, UUID(uuidString: String(middle.suffix(36))) != nil else { return false }
            let file = middle.dropLast(36)
            return file.hasSuffix(".safetensors.") && file.count > ".safetensors.".count
        }
        return false
    }

    /// Whether `name` is the staging directory of a checkpoint that a live process is writing.
    static func isLiveStaging(_ name: String, staged: [String] = stagedDirectories) -> Bool {
        stagingProcess(name, staged: staged).map { !processIsGone($0) } ?? false
    }

    /// The process id in `.<name>.partial-<pid>` for a name of `staged`.
    static func stagingProcess(_ name: String, staged: [String]) -> pid_t? {
        for s in staged where name.hasPrefix(".\(s).partial-") {
            let digits = name.dropFirst(".\(s).partial-".count)
            guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
                  let pid = pid_t(digits), pid > 0 else { return nil }
            return pid
        }
        return nil
    }

    /// Whether no process has the id `pid` (`kill(pid, 0)` fails with ESRCH; EPERM means one exists).
    static func processIsGone(_ pid: pid_t) -> Bool {
        kill(pid, 0) != 0 && errno == ESRCH
    }
}
