import Foundation

/// A measured cost model of the native inference engine on one machine (`cofi profile`): the latency of a forward
/// pass of any (heterogeneous) shape, predicted from per-sublayer costs that were timed on that machine.
///
/// The engine's work per sublayer is, in FLOPs, exactly bilinear in the number n of structures it keeps (heads or
/// FFN units) and the hidden width D: attention costs 3·n·Dh·D·T (Q, K, V) + 2·n·T²·Dh (scores, context) + n·Dh·D·T
/// (output) + O(D·T) (bias, residual, LayerNorm); an FFN 2·n·D·T + O(n·T) (GELU) + O(D·T). So each sublayer's cost is
/// modelled as c0 + cD·D + cN·n + cND·n·D (`Bilinear`): the fixed overhead (threads meeting around attention,
/// LayerNorm, the call) is kept, which FLOP counts lose. A sublayer with n = 0 is absent and costs nothing.
///
/// For a pooled head (classification, regression) the engine cuts to the [CLS] rows right after the keys and
/// values of the LAST attention layer (after the embeddings when no layer has attention): that layer computes its
/// queries, context and output for the [CLS] rows only, and every later sublayer (its FFN, and the FFNs of the
/// layers after it, which have no attention) runs on one row per sequence. The model therefore has two variants
/// of each sublayer: `attention` / `ffn` before the cut, `lastAttention` / `clsFFN` at and after it. A span head
/// has no cut: every sublayer is the full variant.
public struct LatencyProfile: Codable, Equatable, Sendable {
    /// c0 + cD·D + cN·n + cND·n·D milliseconds.
    public struct Bilinear: Codable, Equatable, Sendable {
        public var c0: Double
        public var cD: Double
        public var cN: Double
        public var cND: Double
        public init(c0: Double, cD: Double, cN: Double, cND: Double) {
            self.c0 = c0; self.cD = cD; self.cN = cN; self.cND = cND
        }
        /// The cost of a sublayer that keeps n ≥ 1 structures at hidden width D.
        public func callAsFunction(n: Double, hidden D: Double) -> Double { c0 + cD * D + (cN + cND * D) * n }
        /// The fixed part c0 + cD·D (what the sublayer costs with no structure but present).
        public func fixed(hidden D: Double) -> Double { c0 + cD * D }
        /// The part per structure, cN + cND·D.
        public func perUnit(hidden D: Double) -> Double { cN + cND * D }
    }

    /// c0 + cD·D milliseconds: the embeddings (lookup and LayerNorm on every row), the head and the call.
    public struct Linear: Codable, Equatable, Sendable {
        public var c0: Double
        public var cD: Double
        public init(c0: Double, cD: Double) { self.c0 = c0; self.cD = cD }
        public func callAsFunction(hidden D: Double) -> Double { c0 + cD * D }
    }

    /// Where and how the costs were measured; `cofi prune --target-latency` warns when it differs from its own.
    public struct Conditions: Codable, Equatable, Sendable {
        /// Sequences per call, tokens per sequence, engine threads.
        public var batch: Int
        public var sequenceLength: Int
        public var threads: Int
        /// The processor's model name (/proc/cpuinfo) and the kernel family the products ran on.
        public var processor: String
        public var kernels: String
        public init(batch: Int, sequenceLength: Int, threads: Int, processor: String, kernels: String) {
            self.batch = batch; self.sequenceLength = sequenceLength; self.threads = threads
            self.processor = processor; self.kernels = kernels
        }

        /// The differences from `other`, in words (empty when none).
        public func differences(from other: Conditions) -> [String] {
            var out: [String] = []
            if batch != other.batch { out.append("batch \(batch) here, \(other.batch) there") }
            if sequenceLength != other.sequenceLength {
                out.append("sequence length \(sequenceLength) here, \(other.sequenceLength) there")
            }
            if threads != other.threads { out.append("\(threads) threads here, \(other.threads) there") }
            if processor != other.processor { out.append("processor '\(processor)' here, '\(other.processor)' there") }
            if kernels != other.kernels { out.append("kernels \(kernels) here, \(other.kernels) there") }
            return out
        }
    }

    /// One whole shape's predicted and measured latency (the profile's own check).
    public struct Check: Codable, Equatable, Sendable {
        public var hidden: Int
        public var heads: [Int]
        public var ffnUnits: [Int]
        public var predictedMs: Double
        public var measuredMs: Double
        public var relativeError: Double { (predictedMs - measuredMs) / measuredMs }
        public init(hidden: Int, heads: [Int], ffnUnits: [Int], predictedMs: Double, measuredMs: Double) {
            self.hidden = hidden; self.heads = heads; self.ffnUnits = ffnUnits
            self.predictedMs = predictedMs; self.measuredMs = measuredMs
        }
    }

    /// The file format's version (`format`).
    public static let formatVersion = 1

    public var format: Int = LatencyProfile.formatVersion
    public var conditions: Conditions
    /// The dense shape of the profiled model (hidden width, head width, heads and FFN width per layer).
    public var model: BertShape
    /// Whether the profiled model has a pooled head (the [CLS] cut, see the type's comment).
    public var pooled: Bool
    public var base: Linear
    public var attention: Bilinear
    public var lastAttention: Bilinear
    public var ffn: Bilinear
    public var clsFFN: Bilinear
    /// Predicted against measured latency of random heterogeneous shapes, measured after the fit.
    public var checks: [Check]
    /// The calibration against whole shapes applied to the fitted costs (nil: none; see `calibrated`).
    public var calibration: Calibration?

    /// measured ≈ offset + scale × (sum of the fitted sublayer costs), fitted on whole random shapes (`cofi profile`):
    /// a whole heterogeneous model runs somewhat slower than the sum of its parts timed alone (row strides of the
    /// widest layer, threads meeting), which this corrects without leaving the bilinear form.
    public struct Calibration: Codable, Equatable, Sendable {
        public var offset: Double
        public var scale: Double
        /// How many shapes it was fitted on.
        public var shapes: Int
        public init(offset: Double, scale: Double, shapes: Int) { self.offset = offset; self.scale = scale; self.shapes = shapes }
    }

    /// This profile with every cost multiplied by `scale` and `offset` added to the base, so that
    /// `predict` = offset + scale × the uncalibrated prediction for every shape; the calibration is recorded.
    public func calibrated(offset: Double, scale: Double, shapes: Int) -> LatencyProfile {
        func s(_ b: Bilinear) -> Bilinear { Bilinear(c0: b.c0 * scale, cD: b.cD * scale, cN: b.cN * scale, cND: b.cND * scale) }
        var p = self
        p.base = Linear(c0: base.c0 * scale + offset, cD: base.cD * scale)
        p.attention = s(attention)
        p.lastAttention = s(lastAttention)
        p.ffn = s(ffn)
        p.clsFFN = s(clsFFN)
        p.calibration = Calibration(offset: offset, scale: scale, shapes: shapes)
        return p
    }

    /// The fit measured ≈ offset + scale × predicted over whole shapes, in relative error.
    public static func fitCalibration(predicted: [Double], measured: [Double]) throws -> (offset: Double, scale: Double) {
        let c = try leastSquares(rows: predicted.map { [1, $0] }, values: measured)
        guard c.allSatisfy(\.isFinite), c[1] > 0 else {
            throw LatencyProfileError("the calibration against whole shapes gives offset \(c[0]), scale \(c[1]); expected a positive scale")
        }
        return (c[0], c[1])
    }

    public init(conditions: Conditions, model: BertShape, pooled: Bool, base: Linear, attention: Bilinear,
                lastAttention: Bilinear, ffn: Bilinear, clsFFN: Bilinear, checks: [Check] = []) {
        self.conditions = conditions; self.model = model; self.pooled = pooled; self.base = base
        self.attention = attention; self.lastAttention = lastAttention; self.ffn = ffn; self.clsFFN = clsFFN
        self.checks = checks
    }

    /// The predicted latency (ms) of one call on `shape` (its hidden width and per-layer heads and FFN widths).
    public func predict(_ shape: BertShape) -> Double {
        predict(hidden: shape.hiddenSize, heads: shape.layers.map(\.heads), ffnUnits: shape.layers.map(\.ffnWidth))
    }

    /// The predicted latency (ms) of a shape given by its hidden width and per-layer heads and FFN units.
    public func predict(hidden: Int, heads: [Int], ffnUnits: [Int]) -> Double {
        precondition(heads.count == ffnUnits.count, "heads and FFN units of different layer counts")
        let D = Double(hidden)
        // The cut comes after the last attention layer (pooled heads only).
        let last = pooled ? heads.lastIndex { $0 > 0 } ?? -1 : heads.count
        var ms = base(hidden: D)
        for l in heads.indices {
            if heads[l] > 0 { ms += (l == last ? lastAttention : attention)(n: Double(heads[l]), hidden: D) }
            if ffnUnits[l] > 0 { ms += (l < last ? ffn : clsFFN)(n: Double(ffnUnits[l]), hidden: D) }
        }
        return ms
    }

    /// The latency of the profiled dense model, and of the smallest structure a pruning run can reach (every
    /// sublayer gone, one hidden dimension): the range `--target-latency` must lie in.
    public func reachableRange(of shape: BertShape) -> ClosedRange<Double> {
        let none = predict(hidden: 1, heads: shape.layers.map { _ in 0 }, ffnUnits: shape.layers.map { _ in 0 })
        return min(none, predict(shape))...max(none, predict(shape))
    }

    /// Why this profile cannot predict `shape`'s latency, or nil: the head width must be the profiled model's
    /// (every cost per head was measured with it).
    public func incompatibility(with shape: BertShape, pooled: Bool) -> String? {
        if shape.headDim != model.headDim {
            return "the profile was measured on a model with heads of width \(model.headDim), this model's are \(shape.headDim)"
        }
        if pooled != self.pooled {
            return "the profile was measured with a \(self.pooled ? "pooled" : "span") head, this model has a \(pooled ? "pooled" : "span") head"
        }
        return nil
    }

    // MARK: Fitting

    /// One timed sublayer cost: `n` structures at hidden width `hidden`, `ms` milliseconds.
    public struct Sample: Codable, Equatable, Sendable {
        public var n: Int
        public var hidden: Int
        public var ms: Double
        public init(n: Int, hidden: Int, ms: Double) { self.n = n; self.hidden = hidden; self.ms = ms }
    }

    /// How a fit weighs its samples' squared residuals.
    public enum FitWeighting: String, Codable, Sendable {
        /// By 1/cost²: the squared relative errors, so small sublayers weigh as much as large ones.
        case relative
        /// By 1/cost: the squared relative errors weighted by each sample's cost, so the large sublayers that
        /// make up most of a model's latency are fitted best while the small ones still count relatively
        /// (`cofi profile`: a kink the bilinear form cannot follow, such as one head's attention staying on one
        /// thread, then bends the fit at the cheap end instead of biasing every large sublayer).
        case proportional
    }

    /// The least-squares fit of c0 + cD·D + cN·n + cND·n·D to `samples`, in relative error (by default each
    /// residual divided by its measured cost, so small sublayers weigh as much as large ones; see `FitWeighting`).
    /// Needs at least two widths and two counts; throws otherwise.
    public static func fitBilinear(_ samples: [Sample], weighting: FitWeighting = .relative) throws -> Bilinear {
        let rows = samples.map { [1, Double($0.hidden), Double($0.n), Double($0.n * $0.hidden)] }
        let c = try leastSquares(rows: rows, values: samples.map(\.ms), weighting: weighting)
        return Bilinear(c0: c[0], cD: c[1], cN: c[2], cND: c[3])
    }

    /// `fitBilinear` that drops outliers: while the worst sample's relative residual exceeds `maxRelativeResidual`,
    /// it is set aside and the rest refitted (at most a sixth of the samples, never below 6). A timing glitch — a
    /// difference of two noisy timings that comes out near zero — otherwise dominates a fit weighted by 1/cost: one
    /// 0.013 ms sample among 0.1–0.4 ms ones turned the last attention layer's per-head cost to a sixth of its
    /// measured value (BENCHMARKS.md, issue 17).
    public static func fitBilinearRejectingOutliers(_ samples: [Sample], weighting: FitWeighting = .relative,
                                                    maxRelativeResidual: Double = 0.35) throws -> (fit: Bilinear, dropped: [Sample]) {
        var kept = samples, dropped: [Sample] = []
        while true {
            let fit = try fitBilinear(kept, weighting: weighting)
            let residuals = kept.map { abs(fit(n: Double($0.n), hidden: Double($0.hidden)) - $0.ms) / $0.ms }
            guard let worst = residuals.indices.max(by: { residuals[$0] < residuals[$1] }),
                  residuals[worst] > maxRelativeResidual, kept.count > 6, dropped.count < samples.count / 6 else {
                return (fit, dropped)
            }
            dropped.append(kept.remove(at: worst))
        }
    }

    /// The least-squares fit of c0 + cD·D (the `n` of the samples is ignored), in relative error.
    public static func fitLinear(_ samples: [Sample], weighting: FitWeighting = .relative) throws -> Linear {
        let c = try leastSquares(rows: samples.map { [1, Double($0.hidden)] }, values: samples.map(\.ms), weighting: weighting)
        return Linear(c0: c[0], cD: c[1])
    }

    /// Weighted least squares (weights 1/value², i.e. relative residuals, or 1/value, see `FitWeighting`) by the
    /// normal equations, solved by Gaussian elimination with partial pivoting.
    static func leastSquares(rows: [[Double]], values: [Double], weighting: FitWeighting = .relative) throws -> [Double] {
        let k = rows.first?.count ?? 0
        guard rows.count >= k, k > 0 else { throw LatencyProfileError("a fit of \(k) coefficients needs at least \(k) samples, got \(rows.count)") }
        guard values.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw LatencyProfileError("a timed cost is not a positive number: \(values.filter { !($0.isFinite && $0 > 0) })")
        }
        var a = [[Double]](repeating: [Double](repeating: 0, count: k + 1), count: k)
        for (r, v) in zip(rows, values) {
            let w = weighting == .relative ? 1 / (v * v) : 1 / v
            for i in 0..<k {
                for j in 0..<k { a[i][j] += w * r[i] * r[j] }
                a[i][k] += w * r[i] * v
            }
        }
        for col in 0..<k {
            // The pivot and the scale it is judged by must be numbers: `max(1, .nan)` is 1, which would let a NaN through.
            guard let p = (col..<k).max(by: { abs(a[$0][col]) < abs(a[$1][col]) }), a[p][col].isFinite, a[col][col].isFinite,
                  abs(a[p][col]) > 1e-12 * max(1, abs(a[col][col])) else {
                throw LatencyProfileError("the samples do not determine the fit (too few distinct widths or counts)")
            }
            a.swapAt(col, p)
            for r in 0..<k where r != col {
                let f = a[r][col] / a[col][col]
                for j in col...k { a[r][j] -= f * a[col][j] }
            }
        }
        let solution = (0..<k).map { a[$0][k] / a[$0][$0] }
        guard solution.allSatisfy(\.isFinite) else {
            throw LatencyProfileError("the fit's coefficients are not finite numbers: \(solution)")
        }
        return solution
    }

    // MARK: File

    /// Reads a profile written by `cofi profile`, with errors naming the file and what is wrong.
    public static func read(_ url: URL) throws -> LatencyProfile {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw LatencyProfileError("\(url.path): cannot read the latency profile (\(error.localizedDescription)); make one with cofi profile")
        }
        let profile: LatencyProfile
        do { profile = try JSONDecoder().decode(LatencyProfile.self, from: data) } catch {
            throw LatencyProfileError("\(url.path): not a latency profile of cofi profile (\(error))")
        }
        guard profile.format == formatVersion else {
            throw LatencyProfileError("\(url.path): latency profile format \(profile.format), this cofi reads \(formatVersion)")
        }
        let terms = [profile.attention, profile.lastAttention, profile.ffn, profile.clsFFN].flatMap { [$0.c0, $0.cD, $0.cN, $0.cND] }
            + [profile.base.c0, profile.base.cD]
        guard terms.allSatisfy(\.isFinite), profile.predict(profile.model) > 0 else {
            throw LatencyProfileError("\(url.path): the latency profile has a coefficient that is not a finite number, or predicts no time for its own model")
        }
        guard profile.conditions.batch > 0, profile.conditions.sequenceLength > 0, profile.conditions.threads > 0 else {
            throw LatencyProfileError("\(url.path): the latency profile's batch, sequence length and threads must be positive")
        }
        return profile
    }

    /// Writes the profile as JSON (sorted keys, atomically).
    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: url, options: .atomic)
    }
}

/// A latency profile that cannot be made, read or used.
public struct LatencyProfileError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
