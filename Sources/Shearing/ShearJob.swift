import CoFi
import Foundation
import Formats
import Generation
import Llama
import Tasks
import Tensor
import Training

/// How the compact model of `cofi shear` is made before continued training.
public enum ShearInitialization: String, Codable, CaseIterable, Sendable {
    /// Learned masks (Sheared-LLaMA): the pruning stage, then the cut.
    case sheared
    /// Baseline: the first `layers` layers, hidden dims, KV groups and FFN units of the source (no learned masks).
    case truncated
    /// Baseline: the target shape from random initialisation (std 0.02, as LLaMA's `initializer_range`).
    case random
}

/// Every input of `cofi shear`.
public struct ShearSettings: Codable, Sendable {
    public var model: String
    public var target: TargetShape
    public var texts: [String]
    public var evalText: String?
    public var out: String
    public var initialization: ShearInitialization = .sheared
    public var seqLen = 256
    public var batch = 4
    public var pruneSteps = 200
    public var trainSteps = 200
    /// The Lagrangian targets rise from 0 over this fraction of the pruning steps (LLM-Shearing: 0.2).
    public var targetWarmup = 0.2
    public var pruneLearningRate: Float = 1e-4
    public var maskLearningRate: Float = 1.0
    public var trainLearningRate: Float = 2e-4
    public var evalEvery = 25
    public var evalSequences = 8
    public var seed: UInt64 = 1
    /// A run directory whose continued-training data order (`train-order.jsonl`) this run replays, so a baseline
    /// trains on exactly the sheared model's tokens.
    public var sameTokensAs: String?
    public var force = false
    /// Steps between checkpoints (`ShearCheckpoint`); one is also written at the end of each stage.
    public var checkpointEvery = 50
    /// Continue the run in `out` from its checkpoint.
    public var resume = false
    /// Tests: stop (as a kill would, after that step's checkpoint) once this many steps are done in all.
    public var stopAfterSteps: Int?

    /// Pruning steps this run takes (0 for the baselines): the offset of continued training's global steps.
    public var pruneStepsRun: Int { initialization == .sheared ? pruneSteps : 0 }

    public init(model: String, target: TargetShape, texts: [String], out: String) {
        self.model = model
        self.target = target
        self.texts = texts
        self.out = out
    }
}

/// What one run measured (report.json).
public struct ShearReport: Codable, Sendable {
    public struct Stage: Codable, Sendable {
        public var name: String
        public var shape: String
        public var parameters: Int
        public var heldOutLoss: [String: Double]
        public var evalPerplexity: Double?
        public var seconds: Double
    }
    public var settings: ShearSettings
    public var sources: [String: Int]
    public var referenceLoss: [String: Double]
    public var stages: [Stage] = []
    public var sourceWeights: [[String: Double]] = []
    public var maskedVsCompact: Double?
    /// The largest |logit| of that check (for the relative size of the difference).
    public var logitScaleAtCut: Double?
    public var expectedCountsAtCut: [String: Double]?
    public var trainTokens = 0
}

/// `cofi shear` as one call: the source opened and the target checked, the text sources read, the reference
/// losses, then (sheared) the pruning stage with hard-concrete masks and the four Lagrangian terms, the cut to the
/// target shape (checked: masked ≡ compact), continued training of the compact model, both with dynamic batch
/// loading; a Hugging Face directory (`model/`), a float32 GGUF file (`model.gguf`), `report.json`, `report.md`
/// and `metrics.jsonl` in `out`.
public final class ShearJob {
    public let settings: ShearSettings
    let log: (String) -> Void
    public init(settings: ShearSettings, log: @escaping (String) -> Void) {
        self.settings = settings
        self.log = log
    }

    public func run() throws -> ShearReport {
        let s = settings
        guard s.seqLen >= 8, s.batch >= 1, s.pruneSteps >= 0, s.trainSteps >= 0, s.evalEvery >= 1, s.evalSequences >= 1,
              s.checkpointEvery >= 1 else {
            throw ShearError("--seq-len must be ≥ 8, --batch, --eval-every, --eval-sequences and --checkpoint-every ≥ 1, the step counts ≥ 0")
        }
        guard (0...1).contains(s.targetWarmup) else { throw ShearError("--target-warmup must be in [0, 1] (found \(s.targetWarmup))") }
        guard !s.texts.isEmpty else { throw ShearError("--text: give at least one text file (one data source each)") }
        let source: LanguageModel
        do { source = try LanguageModel.open(URL(fileURLWithPath: s.model)) } catch { throw ShearError("--model \(s.model): \(error)") }
        try s.target.validate(source: source.config)
        guard s.seqLen <= source.config.maxPositionEmbeddings else {
            throw ShearError("--seq-len \(s.seqLen) exceeds the model's context of \(source.config.maxPositionEmbeddings)")
        }
        let sources = try s.texts.map { try TextSource(url: URL(fileURLWithPath: $0), tokenizer: source.tokenizer, seqLen: s.seqLen) }
        let names = sources.map(\.name)
        guard Set(names).count == names.count else { throw ShearError("--text: two sources share the name '\(names.first { n in names.filter { $0 == n }.count > 1 }!)' (sources are named by file name)") }
        let evalText = try s.evalText.map { try TextFile.read(URL(fileURLWithPath: $0), flag: "--eval-text") }
        var replay: [[(Int, Int)]]? = nil
        if let dir = s.sameTokensAs { replay = try Self.readOrder(URL(fileURLWithPath: dir).appendingPathComponent("train-order.jsonl"), sources: sources) }
        let out = URL(fileURLWithPath: s.out)
        let saved = s.resume ? try ShearCheckpoint.load(out, settings: s) : nil
        if saved == nil { try prepare(out) }
        let resumeGlobal = saved.map { $0.state.stage == "prune" ? $0.state.step : s.pruneStepsRun + $0.state.step }
        let metrics = try MetricsLog(url: out.appendingPathComponent("metrics.jsonl"), keepingStepsUpTo: resumeGlobal)
        if let resumeGlobal {
            metrics.append([("event", "resume"), ("step", resumeGlobal)])
        } else {
            metrics.append([("event", "start"), ("target", s.target.text), ("init", s.initialization.rawValue)])
        }

        var report: ShearReport
        var sampler: DomainSampler
        let t0 = Date()
        if let saved {
            report = saved.state.report
            sampler = saved.state.sampler
            log("resuming \(out.path) at \(saved.state.stage) step \(saved.state.step)")
        } else {
            report = ShearReport(settings: s, sources: Dictionary(uniqueKeysWithValues: sources.map { ($0.name, $0.tokens) }),
                                 referenceLoss: [:])
            let references = heldOutLosses(source.model, masks: nil, sources: sources)
            report.referenceLoss = Dictionary(uniqueKeysWithValues: zip(names, references))
            report.stages.append(stage("source", source.model, sources, evalText, tokenizer: source.tokenizer, since: t0))
            log("source: \(describe(report.stages.last!)); reference losses \(format(references, names))")
            sampler = DomainSampler(sizes: sources.map(\.train.count), references: references)
        }

        do {
            // The compact model of the target shape.
            var compact: LlamaModel
            var trainFrom = 0
            if let saved, saved.state.stage == "train" {
                compact = try LlamaModel.load(directory: saved.directory)
                trainFrom = saved.state.step
            } else {
                let start = Date()
                switch s.initialization {
                case .sheared:
                    let model = try saved.map { try LlamaModel.load(directory: $0.directory) } ?? source.model
                    compact = try prune(model, sources: sources, sampler: &sampler, from: saved, out: out, metrics: metrics, report: &report)
                    report.stages.append(stage("pruned", compact, sources, evalText, tokenizer: source.tokenizer, since: start))
                case .truncated:
                    compact = source.model.compacted(masks: Self.truncation(source.config, s.target))
                    report.stages.append(stage("truncated", compact, sources, evalText, tokenizer: source.tokenizer, since: start))
                case .random:
                    compact = LlamaModel.random(config: s.target.config(source: source.config), seed: s.seed, std: 0.02)
                    report.stages.append(stage("random", compact, sources, evalText, tokenizer: source.tokenizer, since: start))
                }
                log("\(report.stages.last!.name): \(describe(report.stages.last!))")
                try ShearCheckpoint.save(out, state: .init(stage: "train", step: 0, sampler: sampler, report: report),
                                         model: compact, optimizer: nil, gates: nil)
            }
            guard compact.shape == s.target.llamaShape(source: source.config) else {
                throw ShearError("internal: the compact model's shape \(compact.shape) is not the target \(s.target.text)")
            }

            // Continued training.
            let trainStart = Date()
            try train(compact, sources: sources, sampler: &sampler, from: trainFrom,
                      optimizerState: trainFrom > 0 ? try saved?.optimizer() : nil, replay: replay, out: out,
                      metrics: metrics, report: &report)
            report.stages.append(stage("trained", compact, sources, evalText, tokenizer: source.tokenizer, since: trainStart))
            log("trained: \(describe(report.stages.last!))")

            let lm = LanguageModel(model: compact, tokenizer: source.tokenizer, source: URL(fileURLWithPath: s.model))
            try lm.saveHuggingFace(to: out.appendingPathComponent("model"))
            try lm.saveGGUF(to: out.appendingPathComponent("model.gguf"), name: "sheared-\(s.target.text)")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: out.appendingPathComponent("report.json"), options: .atomic)
            try ShearReportWriter.markdown(report).write(to: out.appendingPathComponent("report.md"), atomically: true, encoding: .utf8)
            metrics.append([("event", "end"), ("seconds", Date().timeIntervalSince(t0))])
            return report
        } catch is Stopped {
            return report
        }
    }

    /// Thrown at `stopAfterSteps` (tests), after that step's checkpoint.
    struct Stopped: Error {}

    /// The generator of step `step` of `stage` (mask noise, data picks): a function of the seed, the stage and the
    /// step only, so a resumed run draws what the uninterrupted run drew.
    static func generator(seed: UInt64, stage: UInt64, step: Int) -> Xoshiro256 {
        Xoshiro256(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ stage &* 0xBF58_476D_1CE4_E5B9 &+ UInt64(step))
    }

    /// Checkpoints every `checkpointEvery` steps and at `last`; stops at `stopAfterSteps` (global count).
    func checkpoint(global: Int, step: Int, last: Int, _ save: () throws -> Void) throws {
        let stop = settings.stopAfterSteps == global
        if step % settings.checkpointEvery == 0 || step == last || stop { try save() }
        if stop { throw Stopped() }
    }

    // MARK: Stages

    func prune(_ model: LlamaModel, sources: [TextSource], sampler: inout DomainSampler, from saved: ShearCheckpoint?,
               out: URL, metrics: MetricsLog, report: inout ShearReport) throws -> LlamaModel {
        let s = settings
        let gates = ShearGates(source: model.config, target: s.target)
        let warmup = Int((Double(s.pruneSteps) * s.targetWarmup).rounded())
        let ramps = gates.targetSparsity.mapValues { SparsityTarget(target: $0, warmupSteps: warmup) }
        let optimizer = AdamW(groups: [
            ParameterGroup(name: "model", parameters: model.namedParameters, learningRate: s.pruneLearningRate),
            ParameterGroup(name: "log_alpha", parameters: gates.logAlphas, learningRate: s.maskLearningRate, followsSchedule: false),
            ParameterGroup(name: "lambda", parameters: gates.lambdas, learningRate: -s.maskLearningRate, followsSchedule: false)])
        var first = 0
        if let saved {
            try saved.restore(gates)
            if let state = try saved.optimizer() { try optimizer.load(state: state) }
            first = saved.state.step
        }
        let schedule = LearningRateSchedule.linear(warmupSteps: max(1, s.pruneSteps / 10), totalSteps: s.pruneSteps * 10)
        let names = sources.map(\.name)
        let clock = Date()
        for step in first..<s.pruneSteps {
            var rng = Self.generator(seed: s.seed, stage: 1, step: step)
            let picks = sampler.next(s.batch, rng: &rng)
            let batch = Self.batch(picks, sources: sources, seqLen: s.seqLen)
            let masks = gates.sample(rng: &rng)
            let lm = model.loss(batch, masks: masks)
            let targets = ramps.mapValues { $0.value(atPruningStep: step) }
            let lag = gates.lagrangianLoss(targets: targets)
            (lm + lag).backward()
            optimizer.step(scheduleMultiplier: schedule.multiplier(atStep: step))
            optimizer.zeroGradients()
            gates.constrain()
            let done = step + 1
            let counts = gates.expectedCounts()
            metrics.append([("event", "train"), ("stage", "prune"), ("step", done), ("loss", Double(lm.value.scalar)),
                            ("lagrangian", Double(lag.value.scalar))] + Self.families(counts, "expected"))
            if done % s.evalEvery == 0 || done == s.pruneSteps {
                let losses = heldOutLosses(model, masks: gates.deterministic(), sources: sources)
                sampler.update(losses: losses)
                record(sampler, names, &report)
                metrics.append([("event", "eval"), ("stage", "prune"), ("step", done)]
                               + zip(names, losses).map { ("loss_\($0)", $1) as (String, Any?) }
                               + zip(names, sampler.weights).map { ("weight_\($0)", $1) as (String, Any?) })
            }
            progress("prune", done - first, done, s.pruneSteps, loss: Double(lm.value.scalar), clock: clock, sampler: sampler, names: names,
                     extra: String(format: "  layers %.1f heads %.2f ffn %.0f hidden %.0f", counts["layers"]!, counts["heads"]!,
                                   counts["ffn"]!, counts["hidden"]!))
            let snapshot = report, sampled = sampler
            try checkpoint(global: done, step: done, last: s.pruneSteps) {
                try ShearCheckpoint.save(out, state: .init(stage: "prune", step: done, sampler: sampled, report: snapshot),
                                         model: model, optimizer: optimizer.state, gates: gates)
            }
        }
        report.expectedCountsAtCut = gates.expectedCounts()
        let masks = gates.deterministic()
        let compact = model.compacted(masks: masks)
        // masked ≡ compact, on one held-out sequence of each source.
        let check = LlamaBatch(batch: sources.count, seqLen: s.seqLen, tokenIds: sources.flatMap { $0.heldOut[0] })
        let a = withoutGradients { model.forward(check, masks: masks).value.scalars }
        let b = withoutGradients { compact.forward(check).value.scalars }
        report.maskedVsCompact = Double(maxAbsDifference(a, b))
        report.logitScaleAtCut = Double(maxError(a.map { abs($0) }))
        log(String(format: "cut to %@: masked vs compact logits max abs difference %.2e (logits up to %.1f)", s.target.text,
                   report.maskedVsCompact!, report.logitScaleAtCut!))
        return compact
    }

    func train(_ model: LlamaModel, sources: [TextSource], sampler: inout DomainSampler, from first: Int,
               optimizerState: [String: Tensor]?, replay: [[(Int, Int)]]?, out: URL, metrics: MetricsLog,
               report: inout ShearReport) throws {
        let s = settings
        if let replay, replay.count < s.trainSteps {
            throw ShearError("--same-tokens-as \(s.sameTokensAs!): its data order has \(replay.count) steps, this run asks for \(s.trainSteps)")
        }
        let optimizer = AdamW(groups: [ParameterGroup(name: "model", parameters: model.namedParameters,
                                                      learningRate: s.trainLearningRate, weightDecay: 0.01)])
        if let optimizerState { try optimizer.load(state: optimizerState) }
        let schedule = LearningRateSchedule.linear(warmupSteps: max(1, s.trainSteps / 20), totalSteps: s.trainSteps)
        let names = sources.map(\.name)
        // The data order so far (a resumed run keeps the lines of the steps it does not redo).
        let orderURL = out.appendingPathComponent("train-order.jsonl")
        let kept = ((try? String(contentsOf: orderURL, encoding: .utf8)) ?? "").split(separator: "\n").prefix(first)
        try Data(kept.map { $0 + "\n" }.joined().utf8).write(to: orderURL, options: .atomic)
        let order = try FileHandle(forWritingTo: orderURL)
        order.seekToEndOfFile()
        defer { try? order.close() }
        let parameters = model.namedParameters.map(\.1)   // clipped every step: listed once
        let clock = Date()
        for step in first..<s.trainSteps {
            var rng = Self.generator(seed: s.seed, stage: 2, step: step)
            let picks = replay.map { $0[step].map { (source: $0.0, index: $0.1) } } ?? sampler.next(s.batch, rng: &rng)
            order.write(Data((JSON.object([("step", step), ("picks", picks.map { [names[$0.source], $0.index] as [Any] })]) + "\n").utf8))
            let loss = model.loss(Self.batch(picks, sources: sources, seqLen: s.seqLen))
            loss.backward()
            clipGradientNorm(parameters, maxNorm: 1)
            optimizer.step(scheduleMultiplier: schedule.multiplier(atStep: step))
            optimizer.zeroGradients()
            report.trainTokens += picks.count * s.seqLen
            let done = step + 1
            metrics.append([("event", "train"), ("stage", "train"), ("step", s.pruneStepsRun + done), ("stage_step", done),
                            ("loss", Double(loss.value.scalar)), ("lr", Double(s.trainLearningRate * schedule.multiplier(atStep: step)))])
            if replay == nil, done % s.evalEvery == 0 || done == s.trainSteps {
                let losses = heldOutLosses(model, masks: nil, sources: sources)
                sampler.update(losses: losses)
                record(sampler, names, &report)
                metrics.append([("event", "eval"), ("stage", "train"), ("step", s.pruneStepsRun + done)]
                               + zip(names, losses).map { ("loss_\($0)", $1) as (String, Any?) }
                               + zip(names, sampler.weights).map { ("weight_\($0)", $1) as (String, Any?) })
            }
            progress("train", done - first, done, s.trainSteps, loss: Double(loss.value.scalar), clock: clock, sampler: sampler, names: names, extra: "")
            let snapshot = report, sampled = sampler
            try checkpoint(global: s.pruneStepsRun + done, step: done, last: s.trainSteps) {
                try ShearCheckpoint.save(out, state: .init(stage: "train", step: done, sampler: sampled, report: snapshot),
                                         model: model, optimizer: optimizer.state, gates: nil)
            }
        }
    }

    // MARK: Pieces

    /// The truncation baseline's masks: the first layers, dims, groups and units, at 1.
    static func truncation(_ c: LlamaConfig, _ t: TargetShape) -> LlamaMasks {
        var m = LlamaMasks(layerCount: c.numHiddenLayers)
        func ones(_ n: Int, keep: Int) -> Variable { Variable(Tensor(shape: [n], scalars: (0..<n).map { $0 < keep ? 1 : 0 })) }
        m.hidden = ones(c.hiddenSize, keep: t.hidden)
        for l in 0..<c.numHiddenLayers {
            m.layers[l] = ones(1, keep: l < t.layers ? 1 : 0)
            m.heads[l] = ones(c.numKeyValueHeads, keep: t.kvHeads)
            m.intermediate[l] = ones(c.intermediateSize, keep: t.ffn)
        }
        return m
    }

    static func batch(_ picks: [(source: Int, index: Int)], sources: [TextSource], seqLen: Int) -> LlamaBatch {
        LlamaBatch(batch: picks.count, seqLen: seqLen, tokenIds: picks.flatMap { sources[$0.source].train[$0.index] })
    }

    /// The mean LM loss of each source's first `evalSequences` held-out sequences (no gradients).
    func heldOutLosses(_ model: LlamaModel, masks: LlamaMasks?, sources: [TextSource]) -> [Double] {
        sources.map { src in
            let seqs = Array(src.heldOut.prefix(settings.evalSequences))
            return withoutGradients {
                seqs.reduce(0.0) { acc, seq in
                    acc + Double(model.loss(LlamaBatch(batch: 1, seqLen: seq.count, tokenIds: seq), masks: masks).value.scalar)
                } / Double(seqs.count)
            }
        }
    }

    func stage(_ name: String, _ model: LlamaModel, _ sources: [TextSource], _ evalText: String?,
               tokenizer: ByteLevelBPETokenizer, since: Date) -> ShearReport.Stage {
        let losses = heldOutLosses(model, masks: nil, sources: sources)
        var ppl: Double?
        if let evalText {
            let lm = LanguageModel(model: model, tokenizer: tokenizer, source: URL(fileURLWithPath: settings.model))
            let window = min(1024, model.config.maxPositionEmbeddings)
            ppl = try? lm.perplexity(of: evalText, window: window, stride: window / 2).perplexity
        }
        let shape = model.shape
        let text = "layers=\(shape.layers.count),hidden=\(shape.hiddenSize),heads=\(Set(shape.layers.map { $0.kvHeads * shape.groupSize }).sorted().map(String.init).joined(separator: "/")),kv-heads=\(Set(shape.layers.map(\.kvHeads)).sorted().map(String.init).joined(separator: "/")),ffn=\(Set(shape.layers.map(\.ffnWidth)).sorted().map(String.init).joined(separator: "/"))"
        return ShearReport.Stage(name: name, shape: text, parameters: shape.parameterCount,
                                 heldOutLoss: Dictionary(uniqueKeysWithValues: zip(sources.map(\.name), losses)),
                                 evalPerplexity: ppl, seconds: Date().timeIntervalSince(since))
    }

    func record(_ sampler: DomainSampler, _ names: [String], _ report: inout ShearReport) {
        report.sourceWeights.append(Dictionary(uniqueKeysWithValues: zip(names, sampler.weights)))
    }

    func progress(_ stage: String, _ ran: Int, _ step: Int, _ total: Int, loss: Double, clock: Date, sampler: DomainSampler,
                  names: [String], extra: String) {
        guard step % 5 == 0 || step == total || ran == 1 else { return }
        let elapsed = Date().timeIntervalSince(clock)
        let tokensPerSecond = Double(ran * settings.batch * settings.seqLen) / max(elapsed, 1e-9)
        let eta = elapsed / Double(max(ran, 1)) * Double(total - step)
        let data = settings.sameTokensAs.map { _ in stage == "train" ? "  data order replayed" : nil } ?? nil
        log(String(format: "%@ step %d/%d  loss %.4f  %.0f tok/s  ETA %@", stage, step, total, loss, tokensPerSecond,
                   ProgressReporter.duration(eta)) + extra + (data ?? "  weights " + format(sampler.weights, names)))
    }

    func describe(_ st: ShearReport.Stage) -> String {
        "\(st.shape), \(st.parameters) parameters, held-out loss " + st.heldOutLoss.sorted { $0.key < $1.key }
            .map { String(format: "%@ %.4f", $0.key, $0.value) }.joined(separator: ", ")
            + (st.evalPerplexity.map { String(format: ", eval perplexity %.3f", $0) } ?? "")
    }

    func format(_ values: [Double], _ names: [String]) -> String {
        zip(names, values).map { String(format: "%@ %.3f", $0, $1) }.joined(separator: " ")
    }

    static func families(_ counts: [String: Double], _ prefix: String) -> [(String, Any?)] {
        ShearGates.families.map { ("\(prefix)_\($0)", counts[$0]) }
    }

    /// The output directory: created; refused when it holds anything unless `force`.
    func prepare(_ out: URL) throws {
        let fm = FileManager.default
        if let items = try? fm.contentsOfDirectory(atPath: out.path), !items.isEmpty {
            guard settings.force else { throw ShearError("--out \(out.path): the directory is not empty (pass --force to overwrite)") }
            for item in items { try? fm.removeItem(at: out.appendingPathComponent(item)) }
        }
        do { try fm.createDirectory(at: out, withIntermediateDirectories: true) } catch {
            throw ShearError("--out \(out.path): cannot create the directory (\(error.localizedDescription))")
        }
    }

    /// A run's `train-order.jsonl`: per step, the (source name, sequence index) picks, mapped onto `sources`.
    static func readOrder(_ url: URL, sources: [TextSource]) throws -> [[(Int, Int)]] {
        guard let data = try? Data(contentsOf: url) else { throw ShearError("--same-tokens-as: cannot read \(url.path)") }
        let names = sources.map(\.name)
        return try data.split(separator: 0x0A).filter { !$0.isEmpty }.enumerated().map { n, line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let picks = o["picks"] as? [[Any]] else {
                throw ShearError("\(url.path): line \(n + 1) is not a data-order record")
            }
            return try picks.map { p in
                guard p.count == 2, let name = p[0] as? String, let index = p[1] as? Int,
                      let s = names.firstIndex(of: name), index >= 0, index < sources[s].train.count else {
                    throw ShearError("\(url.path): line \(n + 1): a pick \(p) names no training sequence of this run's --text sources")
                }
                return (s, index)
            }
        }
    }
}
