import BERT
import Foundation
import Platform
import Tasks
import Tensor

/// `cofi profile`: measures the inference engine's sublayer costs on this machine and fits a `LatencyProfile`.
///
/// Every timing is a whole forward pass (`InferenceEngine.run` on B sequences of exactly T tokens) of a synthetic
/// model: the profiled model's config, task head and vocabulary, random small weights, and a chosen heterogeneous
/// shape (`Layout`: a hidden width and per-layer heads and FFN units). A sublayer's cost is the difference of two
/// such timings, amortized over K identical layers (`layersPerTiming`), at hidden width D:
///   base(D)             one empty layer (0 heads, 0 FFN): embeddings, the cut, pooler and head
///   attention(n, D)     (K layers (n, 0) − 1 layer (n, 0)) / (K − 1): the last of them is the last attention
///                       layer in both, so the difference is K − 1 attention layers on all rows
///   lastAttention(n, D) 1 layer (n, 0) − base: keys and values on all rows, queries and output on [CLS] rows
///   ffn(n, D)           (K layers (0, n) then one (1, 0), − the layer (1, 0) alone) / K: FFNs before the last
///                       attention layer run on all rows
///   clsFFN(n, D)        (one layer (1, n) then K − 1 layers (0, n), − the layer (1, 0) alone) / K: the FFN of the
///                       last attention layer and every later one run on the [CLS] rows
/// The layouts of one difference are timed interleaved (`EngineTimer`), so that both see the same state of a
/// shared machine. When a difference is under `minimumShare` of its reference (a cheap sublayer: an FFN on one
/// [CLS] row costs microseconds), K grows fourfold (up to `maxLayersPerTiming`) and the pair is timed again. A span
/// head has no cut: only `attention` and `ffn` are timed, and the [CLS] variants are set to them.
///
/// Grid (`Grid`): D ∈ {D, ¾D, ½D, ¼D} of the dense width, heads n ∈ {1, 2, H/4, H/2, ¾H, H}, FFN units
/// n ∈ {1, I/16, I/8, I/4, I/2, ¾I, I} (deduplicated; pruned widths that are whole 32-wide panels moved half a panel
/// down). Each variant is fitted with `LatencyProfile.fitBilinear`, the base with `fitLinear`, both weighted
/// `.proportional` (`weighting`).
/// Then `checks` random heterogeneous shapes (hidden width in [D/4, D], per layer 0…H heads and 0…I units, some
/// sublayers and layers removed as CoFi removes them) are timed whole and compared with the prediction
/// (`LatencyProfile.checks`).
///
/// The procedure (`measure`) takes its timer as a function, so the tests feed it exact synthetic timings.
public struct LatencyProfiler {
    /// Sequences per call and tokens per sequence (T is capped at the model's max positions by `profile`).
    public var batch: Int
    public var sequenceLength: Int
    /// Engine threads (nil: all cores, as `cofi bench`).
    public var threads: Int?
    /// Untimed calls per layout before a timing, and timed calls per layout (the median is kept).
    public var warmup = 2
    public var repeats = 21
    /// K, the identical layers a sublayer's cost is amortized over (at least 2), and the most it may grow to.
    public var layersPerTiming = 4
    public var maxLayersPerTiming = 64
    /// The share of its reference time a difference must reach before K stops growing.
    public var minimumShare = 0.25
    /// How the fits weigh the timed costs (`LatencyProfile.FitWeighting`; `.proportional`: a model's latency is
    /// mostly its large sublayers, and on two threads one head's attention and the smallest FFNs run in another
    /// threading regime than the rest, a kink that a relative fit lets bias every large sublayer).
    public var weighting = LatencyProfile.FitWeighting.proportional
    /// Random shapes timed after the fit, and their seed.
    public var checks = 20
    /// Random whole shapes (another seed than the checks') the sum of parts is calibrated on
    /// (`LatencyProfile.calibrated`); 0: no calibration.
    public var calibrationShapes = 20
    public var seed: UInt64 = 17
    /// Progress lines (stderr in `cofi profile`).
    public var note: (String) -> Void

    public init(batch: Int = 1, sequenceLength: Int = 128, threads: Int? = nil, checks: Int = 20,
                note: @escaping (String) -> Void = { _ in }) {
        self.batch = batch
        self.sequenceLength = sequenceLength
        self.threads = threads
        self.checks = checks
        self.note = note
    }

    /// A synthetic model's shape: its hidden width and per-layer heads and FFN units.
    public struct Layout: Hashable, Sendable, CustomStringConvertible {
        public var hidden: Int
        public var heads: [Int]
        public var ffnUnits: [Int]

        public init(hidden: Int, heads: [Int], ffnUnits: [Int]) {
            precondition(heads.count == ffnUnits.count && !heads.isEmpty, "one heads and one FFN count per layer, at least one layer")
            self.hidden = hidden
            self.heads = heads
            self.ffnUnits = ffnUnits
        }

        /// Layers as (heads, FFN units).
        public init(hidden: Int, _ layers: [(Int, Int)]) {
            self.init(hidden: hidden, heads: layers.map(\.0), ffnUnits: layers.map(\.1))
        }

        /// "D=384 (6,0)×3 (1,0)": runs of equal layers as (heads, units)×count.
        public var description: String {
            var parts: [String] = []
            var l = 0
            while l < heads.count {
                var r = l
                while r + 1 < heads.count && heads[r + 1] == heads[l] && ffnUnits[r + 1] == ffnUnits[l] { r += 1 }
                parts.append("(\(heads[l]),\(ffnUnits[l]))" + (r > l ? "×\(r - l + 1)" : ""))
                l = r + 1
            }
            return "D=\(hidden) " + parts.joined(separator: " ")
        }
    }

    /// Times layouts: the median milliseconds of one call on a model of each layout, in order. The layouts of one
    /// call are timed together (interleaved), so their differences see the same machine.
    public typealias Timer = ([Layout]) throws -> [Double]

    /// The widths, head counts and FFN unit counts the costs are measured at.
    public struct Grid: Equatable, Sendable {
        public var hidden: [Int]
        public var heads: [Int]
        public var units: [Int]

        /// D ∈ {D, ¾D, ½D, ¼D}, n ∈ {1, 2, H/4, H/2, ¾H, H} heads, {1, I/16, I/8, I/4, I/2, ¾I, I} units;
        /// deduplicated, at least 1. A pruned width below the dense one that is a multiple of `panel` is moved
        /// half a panel down (¾·384 = 288 → 272): the packed products compute whole 32-wide panels of outputs,
        /// so a width costs as much as the next multiple of 32, and a pruned width (any number) pays half a panel
        /// on average — a fit through multiples of 32 only would see none of it. (Heads are always whole panels:
        /// a head is 32 wide in the models of the paper; nothing is moved for them.)
        public init(dense: BertShape, heads H: Int, units I: Int, panel: Int = 32) {
            func distinct(_ xs: [Int], max top: Int, shift: Bool) -> [Int] {
                var seen = Set<Int>()
                return xs.map { v -> Int in
                    let x = Swift.min(top, Swift.max(1, v))
                    return shift && x < top && x > panel && x % panel == 0 ? x - panel / 2 : x
                }.filter { seen.insert($0).inserted }
            }
            let D = dense.hiddenSize
            hidden = distinct([D, 3 * D / 4, D / 2, D / 4], max: D, shift: true)
            heads = distinct([1, 2, H / 4, H / 2, 3 * H / 4, H], max: H, shift: false)
            units = distinct([1, I / 16, I / 8, I / 4, I / 2, 3 * I / 4, I], max: I, shift: true)
        }
    }

    // MARK: - The procedure

    /// Measures every sublayer variant on the grid with `timer`, fits the profile, then times `checks` random
    /// shapes and records them. `dense` is the profiled model's dense shape (its heads and FFN width per layer
    /// are the first layer's); `pooled` whether its head is pooled (the [CLS] cut).
    public func measure(dense: BertShape, pooled: Bool, conditions: LatencyProfile.Conditions,
                        timer: Timer) throws -> LatencyProfile {
        guard let first = dense.layers.first else { throw LatencyProfileError("the model has no encoder layer to profile") }
        let H = dense.layers.map(\.heads).max() ?? first.heads, I = dense.layers.map(\.ffnWidth).max() ?? first.ffnWidth
        guard H >= 1, I >= 1, dense.hiddenSize >= 1 else {
            throw LatencyProfileError("the model's dense shape has no heads or no FFN units (\(H) heads, \(I) units)")
        }
        guard layersPerTiming >= 2, maxLayersPerTiming >= layersPerTiming else {
            throw LatencyProfileError("layers per timing must be at least 2 and at most the maximum (\(layersPerTiming), \(maxLayersPerTiming))")
        }
        let grid = Grid(dense: dense, heads: H, units: I)
        var base: [LatencyProfile.Sample] = [], attention: [LatencyProfile.Sample] = []
        var lastAttention: [LatencyProfile.Sample] = [], ffn: [LatencyProfile.Sample] = []
        var clsFFN: [LatencyProfile.Sample] = []
        func ms(_ x: Double) -> String { String(format: "%.3f", x) }

        for D in grid.hidden {
            let empty = Layout(hidden: D, [(0, 0)]), one = Layout(hidden: D, [(1, 0)])
            let t = try timer([empty, one])
            base.append(.init(n: 0, hidden: D, ms: t[0]))
            note("D=\(D): base \(ms(t[0])) ms (one empty layer), one 1-head layer \(ms(t[1])) ms")
            for n in grid.heads {
                let single = Layout(hidden: D, [(n, 0)])
                let r = try amortized(timer, make: { K in Layout(hidden: D, Array(repeating: (n, 0), count: K)) },
                                      added: { $0 - 1 }, reference: single, others: pooled ? [empty] : [])
                if let a = r.perLayer { attention.append(.init(n: n, hidden: D, ms: a)) }
                var line = "D=\(D) heads=\(n): \(r.layers) layers \(ms(r.times[0])) ms, 1 layer \(ms(r.times[1])) ms → "
                    + "attention \(r.perLayer.map(ms) ?? "dropped (not positive)")"
                if pooled {
                    let l = r.times[1] - r.times[2]
                    if l > 0 { lastAttention.append(.init(n: n, hidden: D, ms: l)) }
                    line += ", last attention \(l > 0 ? ms(l) : "dropped (not positive)")"
                }
                note(line + " ms")
            }
            for n in grid.units {
                let r = try amortized(timer, make: { K in Layout(hidden: D, Array(repeating: (0, n), count: K) + [(1, 0)]) },
                                      added: { $0 }, reference: one)
                if let f = r.perLayer { ffn.append(.init(n: n, hidden: D, ms: f)) }
                var line = "D=\(D) units=\(n): FFN \(r.perLayer.map(ms) ?? "dropped (not positive)") (over \(r.layers))"
                if pooled {
                    let c = try amortized(timer, make: { K in Layout(hidden: D, [(1, n)] + Array(repeating: (0, n), count: K - 1)) },
                                          added: { $0 }, reference: one)
                    if let f = c.perLayer { clsFFN.append(.init(n: n, hidden: D, ms: f)) }
                    line += ", [CLS] FFN \(c.perLayer.map(ms) ?? "dropped (not positive)") (over \(c.layers))"
                }
                note(line + " ms")
            }
        }

        var setAside: [String: [LatencyProfile.Sample]] = [:]
        func fit(_ name: String, _ samples: [LatencyProfile.Sample]) throws -> LatencyProfile.Bilinear {
            do {
                let r = try LatencyProfile.fitBilinearRejectingOutliers(samples, weighting: weighting)
                setAside[name] = r.dropped
                for d in r.dropped {
                    note("\(name) fit: set aside the timing of \(d.n) at D=\(d.hidden), \(String(format: "%.3f", d.ms)) ms (an outlier)")
                }
                return r.fit
            } catch let e as LatencyProfileError {
                throw LatencyProfileError("cannot fit the \(name) costs from \(samples.count) positive timings: \(e.description); "
                                          + "the machine may be too noisy — try more --repeats or a quieter machine")
            }
        }
        let fullAttention = try fit("attention", attention), fullFFN = try fit("FFN", ffn)
        var profile = LatencyProfile(
            conditions: conditions, model: dense, pooled: pooled,
            base: try LatencyProfile.fitLinear(base, weighting: weighting), attention: fullAttention,
            lastAttention: pooled ? try fit("last attention", lastAttention) : fullAttention,
            ffn: fullFFN, clsFFN: pooled ? try fit("[CLS] FFN", clsFFN) : fullFFN)

        for (name, all, b) in [("attention", attention, profile.attention), ("last attention", lastAttention, profile.lastAttention),
                               ("FFN", ffn, profile.ffn), ("[CLS] FFN", clsFFN, profile.clsFFN)] where !all.isEmpty {
            // The residuals of the samples the fit kept (the ones set aside were named above).
            let samples = all.filter { !(setAside[name] ?? []).contains($0) }
            guard !samples.isEmpty else { continue }
            let r = samples.map { abs(b(n: Double($0.n), hidden: Double($0.hidden)) - $0.ms) / $0.ms }
            note("\(name) fit: \(samples.count) timed costs, mean |residual| "
                 + "\(String(format: "%.1f", 100 * r.reduce(0, +) / Double(r.count))) %, max \(String(format: "%.1f", 100 * r.max()!)) %")
        }

        if calibrationShapes >= 2 {
            let shapes = Self.checkShapes(dense: dense, heads: H, units: I, count: calibrationShapes, seed: seed &+ 0x9E37)
            var predicted: [Double] = [], measured: [Double] = []
            for shape in shapes {
                predicted.append(profile.predict(hidden: shape.hidden, heads: shape.heads, ffnUnits: shape.ffnUnits))
                measured.append(try timer([shape])[0])
            }
            do {
                let c = try LatencyProfile.fitCalibration(predicted: predicted, measured: measured)
                profile = profile.calibrated(offset: c.offset, scale: c.scale, shapes: shapes.count)
                note("calibration on \(shapes.count) whole shapes: measured ≈ \(String(format: "%.4f", c.offset)) ms + "
                     + "\(String(format: "%.4f", c.scale)) × the sum of the parts")
            } catch let e as LatencyProfileError {
                note("no calibration: \(e.description)")
            }
        }

        let shapes = Self.checkShapes(dense: dense, heads: H, units: I, count: checks, seed: seed)
        for (k, shape) in shapes.enumerated() {
            let measured = try timer([shape])[0]
            let check = LatencyProfile.Check(hidden: shape.hidden, heads: shape.heads, ffnUnits: shape.ffnUnits,
                                             predictedMs: profile.predict(hidden: shape.hidden, heads: shape.heads,
                                                                          ffnUnits: shape.ffnUnits),
                                             measuredMs: measured)
            profile.checks.append(check)
            note("check \(k + 1)/\(shapes.count): \(shape): predicted \(ms(check.predictedMs)) ms, measured "
                 + "\(ms(measured)) ms (\(String(format: "%+.1f", 100 * check.relativeError)) %)")
        }
        return profile
    }

    /// A difference amortized over K identical sublayers: `make(K)` against `reference` (and `others`, timed in
    /// the same group), K = `layersPerTiming`, then ×4 while the difference is under `minimumShare` of the
    /// reference and K may grow. `perLayer` is the difference over `added(K)` layers, nil when not positive.
    private func amortized(_ timer: Timer, make: (Int) -> Layout, added: (Int) -> Int, reference: Layout,
                           others: [Layout] = [])
        throws -> (perLayer: Double?, layers: Int, times: [Double]) {
        var K = layersPerTiming
        while true {
            let t = try timer([make(K), reference] + others)
            let difference = t[0] - t[1]
            if difference >= minimumShare * t[1] || K * 4 > maxLayersPerTiming {
                return (difference > 0 ? difference / Double(added(K)) : nil, K, t)
            }
            K *= 4
        }
    }

    /// The random shapes of the checks: `count` shapes of the dense layer count, hidden width uniform in
    /// [D/4, D]; each layer empty with probability 1/6, else each sublayer removed with probability 1/4 and
    /// otherwise 1…H heads, 1…I units (uniform).
    public static func checkShapes(dense: BertShape, heads H: Int, units I: Int, count: Int, seed: UInt64) -> [Layout] {
        var rng = Xoshiro256(seed: seed)
        func uniform(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(rng.next() % UInt64(r.count)) }
        let D = dense.hiddenSize, L = dense.layers.count
        return (0..<count).map { _ in
            let hidden = uniform(max(1, D / 4)...D)
            var layers: [(Int, Int)] = []
            for _ in 0..<L {
                if uniform(1...6) == 1 { layers.append((0, 0)); continue }
                let h = uniform(1...4) == 1 ? 0 : uniform(1...H)
                let u = uniform(1...4) == 1 ? 0 : uniform(1...I)
                layers.append((h, u))
            }
            return Layout(hidden: hidden, layers)
        }
    }

    // MARK: - On the engine

    /// Loads the model in `directory` (with its head) and profiles it on the engine.
    public func profile(directory: URL) throws -> LatencyProfile {
        let (model, tokenizer) = try ModelDirectory.loadWithHead(directory)
        return try profile(model: model, tokenizer: tokenizer)
    }

    /// Profiles `model`'s dense shape (its config's) and head on the engine: B sequences of exactly T tokens
    /// (T capped at the max positions; random ids as `cofi bench`'s latency workloads), `threads` threads.
    public func profile(model: BertModel, tokenizer: WordPieceTokenizer) throws -> LatencyProfile {
        guard batch >= 1 else { throw LatencyProfileError("the batch must be at least 1, got \(batch)") }
        guard sequenceLength >= 1 else { throw LatencyProfileError("the sequence length must be at least 1, got \(sequenceLength)") }
        if let threads, threads < 1 { throw LatencyProfileError("threads must be at least 1, got \(threads)") }
        guard let task = model.task else { throw LatencyProfileError("the model has no task head to profile") }
        let T = min(sequenceLength, model.shape.maxPositions)
        if T < sequenceLength { note("sequence length \(sequenceLength) capped at the model's \(T) positions") }
        var config = model.config
        config.compact = nil
        let dense = BertShape(config: config)
        let inputs = ModelBenchmark.syntheticInputs(count: batch, length: T, tokenizer: tokenizer, vocabSize: dense.vocabSize)
        let timer = EngineTimer(config: config, task: task, threads: threads ?? Parallel.workers, inputs: inputs,
                                warmup: warmup, repeats: repeats, seed: seed)
        let conditions = LatencyProfile.Conditions(batch: batch, sequenceLength: T, threads: timer.threads,
                                                   processor: Processor.modelName,
                                                   kernels: KernelFamily.selected.family.rawValue)
        return try measure(dense: dense, pooled: task.usesPooler, conditions: conditions, timer: timer.time)
    }

    /// The checks' error distribution: mean and largest |relative error|, and how many are within 10 %.
    public static func summary(_ checks: [LatencyProfile.Check]) -> (meanAbs: Double, maxAbs: Double, within10: Int) {
        guard !checks.isEmpty else { return (0, 0, 0) }
        let errors = checks.map { abs($0.relativeError) }
        return (errors.reduce(0, +) / Double(errors.count), errors.max()!, errors.filter { $0 <= 0.1 }.count)
    }
}

/// Times synthetic models on the engine: for each `Layout`, a model of the profiled config and task with that
/// shape and small random weights (`model(_:)`), run on fixed inputs. A group of layouts is timed interleaved:
/// `warmup` untimed calls each, then rounds in which each layout runs one untimed call (its weights back in the
/// caches after the others') and two timed ones, until `repeats` timed calls each; the median is kept. The last
/// few engines are kept for reuse (the references of the differences recur in every group of a width).
public final class EngineTimer {
    public let config: BertConfig
    public let task: TaskHeadKind
    public let threads: Int
    public let inputs: [EncodedInput]
    public let warmup: Int
    public let repeats: Int
    let seed: UInt64
    /// Engines of recent layouts, most recent last.
    private var engines: [(Layout, InferenceEngine)] = []
    private let kept = 3
    /// The word-embedding table of the last hidden width (the largest tensor; the same for every model of that
    /// width, and the grid times one width after another).
    private var wordEmbeddings: (Int, Tensor)?

    public typealias Layout = LatencyProfiler.Layout

    /// `config`: the dense config of the profiled model (its vocabulary, positions, head width, LayerNorm ε).
    public init(config: BertConfig, task: TaskHeadKind, threads: Int, inputs: [EncodedInput], warmup: Int, repeats: Int,
                seed: UInt64 = 17) {
        self.config = config
        self.task = task
        self.threads = threads
        self.inputs = inputs
        self.warmup = warmup
        self.repeats = max(1, repeats)
        self.seed = seed
    }

    /// The median milliseconds of one call on each layout's model.
    public func time(_ layouts: [Layout]) throws -> [Double] {
        let group = try layouts.map(engine)
        for e in group { for _ in 0..<warmup { try observe(e.run(inputs)) } }
        var times = [[Double]](repeating: [], count: group.count)
        var round = 0
        while times[0].count < repeats {
            for j in group.indices {
                let i = (j + round) % group.count
                try observe(group[i].run(inputs))
                for _ in 0..<min(2, repeats - times[i].count) {
                    let t0 = Benchmark.now()
                    let out = try group[i].run(inputs)
                    times[i].append(Benchmark.now() - t0)
                    observe(out)
                }
            }
            round += 1
        }
        return times.map { Benchmark.median($0) * 1e3 }
    }

    private func observe(_ out: [SequenceOutput]) {
        Benchmark.sink += out.first?.logits.first ?? out.first?.startLogits.first ?? 0
    }

    private func engine(_ layout: Layout) throws -> InferenceEngine {
        if let k = engines.firstIndex(where: { $0.0 == layout }) {
            let e = engines.remove(at: k)
            engines.append(e)
            return e.1
        }
        let e = try InferenceEngine(model: model(layout), threads: threads)
        engines.append((layout, e))
        if engines.count > kept { engines.removeFirst() }
        return e
    }

    /// A model of `layout` with the config's vocabulary, positions, token types, head width and task head (the
    /// pooler keeps the dense width, as compaction leaves it): weights uniform in ±0.05, biases 0, LayerNorm
    /// gains 1.
    public func model(_ layout: Layout) throws -> BertModel {
        var c = config
        c.numHiddenLayers = layout.heads.count
        c.compact = nil
        let shape = BertShape(vocabSize: c.vocabSize, hiddenSize: layout.hidden, headDim: c.headDim,
                              maxPositions: c.maxPositionEmbeddings, typeVocabSize: c.typeVocabSize,
                              layers: zip(layout.heads, layout.ffnUnits).map { LayerShape(heads: $0, ffnWidth: $1) },
                              poolerWidth: c.hiddenSize)
        var rng = Xoshiro256(seed: seed &+ UInt64(layout.hidden))
        func random(_ s: [Int]) -> Tensor {
            Tensor(shape: s) { buf in for i in 0..<buf.count { buf[i] = 0.1 * rng.nextUniform() - 0.05 } }
        }
        return try BertModel.assemble(config: c, shape: shape, task: task) { name, s in
            if name == CheckpointKeys.wordEmbeddings.weight {
                if let (d, t) = wordEmbeddings, d == layout.hidden { return t }
                let t = random(s)
                wordEmbeddings = (layout.hidden, t)
                return t
            }
            if name.hasSuffix(".bias") { return Tensor(zeros: s) }
            if CheckpointKeys.isBiasOrNorm(name) { return Tensor(repeating: 1, shape: s) }
            return random(s)
        }
    }
}
