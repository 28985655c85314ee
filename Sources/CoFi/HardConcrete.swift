import Foundation
import Tensor

/// The hard-concrete distribution of Louizos et al. (2018) with CoFi's constants (cofi-spec §2): the stretched,
/// clamped binary-concrete gate whose samples are exactly 0 or 1 with positive probability, its closed-form
/// P(z ≠ 0), and the deterministic mask used for evaluation and compaction.
///
/// Every function works on one mask vector (`logAlpha` of any shape, read as a flat vector of gates).
public enum HardConcrete {
    /// Stretch limits l and r: s̄ = s·(r − l) + l before the clamp to [0, 1].
    public static let stretchLeft: Float = -0.1
    public static let stretchRight: Float = 1.1
    /// u ~ Uniform(ε, 1 − ε); P(z ≠ 0) is clamped to [ε, 1 − ε] (the reference clamps CDF(0)).
    public static let epsilon: Float = 1e-6
    /// Temperature β (`args.temperature`, 2/3).
    public static let temperature: Float = 2.0 / 3.0
    /// The "magical number" of the deterministic mask: soft = sigmoid(log α / β · 0.8).
    public static let deterministicScale: Float = 0.8
    /// log α is clamped to [ln 0.01, ln 100] = [−4.605, 4.605] after every optimiser step.
    public static let logAlphaRange: ClosedRange<Float> = Float(log(0.01))...Float(log(100.0))

    /// β·ln(x_n/(1 − x_n)) with x_n = (0 − l)/(r − l) = 1/12: CDF(0) = sigmoid(this − log α). It is
    /// −β·ln 11 = −1.5986, so P(z ≠ 0) = sigmoid(log α + 1.5986).
    public static let zeroLogit: Float = {
        let xn = (0 - Double(stretchLeft)) / (Double(stretchRight) - Double(stretchLeft))
        return Float(log(xn) - log(1 - xn)) * temperature
    }()

    // MARK: Scalars (shared by the ops below, the deterministic mask and the size model)

    @inline(__always) static func sigmoid(_ x: Float) -> Float { 1 / (1 + exp(-x)) }

    /// CDF(0) = P(z = 0) clamped to [ε, 1 − ε], computed as the reference does (`cdf_qz(0, loga)`).
    @inline(__always) public static func zeroProbability(_ logAlpha: Float) -> Float {
        min(max(sigmoid(zeroLogit - logAlpha), epsilon), 1 - epsilon)
    }

    /// P(z ≠ 0) = 1 − CDF(0) for one gate.
    @inline(__always) public static func keepProbability(_ logAlpha: Float) -> Float {
        1 - zeroProbability(logAlpha)
    }

    /// dP(z ≠ 0)/d log α = CDF(0)·(1 − CDF(0)), and 0 where the clamp of CDF(0) is active (as torch's clamp:
    /// the gradient passes on the closed interval).
    @inline(__always) static func keepProbabilityDerivative(_ logAlpha: Float) -> Float {
        let c = sigmoid(zeroLogit - logAlpha)
        return (c < epsilon || c > 1 - epsilon) ? 0 : c * (1 - c)
    }

    /// The deterministic soft value sigmoid(log α / β · 0.8) (= sigmoid(1.2·log α)), in the reference's order of
    /// operations.
    @inline(__always) public static func softValue(_ logAlpha: Float) -> Float {
        sigmoid(logAlpha / temperature * deterministicScale)
    }

    // MARK: Differentiable ops

    /// `count` uniforms u ~ Uniform(ε, 1 − ε) from `rng` (24-bit `nextUniform` mapped into the open interval).
    public static func noise(count: Int, using rng: inout Xoshiro256) -> [Float] {
        (0..<count).map { _ in epsilon + (1 - 2 * epsilon) * rng.nextUniform() }
    }

    /// One hard-concrete sample per gate: z = clamp(sigmoid((ln u − ln(1 − u) + log α)/β)·(r − l) + l, 0, 1),
    /// with `noise` u of the same count as `logAlpha`. Differentiable in log α:
    /// ∂z/∂log α = (r − l)·s(1 − s)/β where the clamp is inactive (0 ≤ s̄ ≤ 1), 0 where it is active.
    public static func sample(logAlpha: Variable, noise u: [Float]) -> Variable {
        let la = logAlpha.value
        precondition(u.count == la.count, "noise has \(u.count) values for \(la.count) gates")
        let width = stretchRight - stretchLeft
        var slope = [Float](repeating: 0, count: la.count)  // ∂z/∂log α, saved for the pullback
        let z = Tensor(shape: la.shape) { out in
            la.withPointer { a in
                for i in 0..<out.count {
                    let s = sigmoid((log(u[i]) - log(1 - u[i]) + a[i]) / temperature)
                    let stretched = s * width + stretchLeft
                    out[i] = min(max(stretched, 0), 1)
                    slope[i] = (stretched >= 0 && stretched <= 1) ? width * s * (1 - s) / temperature : 0
                }
            }
        }
        return Variable(z, inputs: [logAlpha]) { g in
            logAlpha.accumulate(Tensor(shape: la.shape) { out in
                g.withPointer { gp in for i in 0..<out.count { out[i] = gp[i] * slope[i] } }
            })
        }
    }

    /// P(z ≠ 0) per gate, differentiable in log α (gradient 0 where CDF(0) is clamped).
    public static func keepProbability(_ logAlpha: Variable) -> Variable {
        let la = logAlpha.value
        return Variable(la.map(keepProbability), inputs: [logAlpha]) { g in
            logAlpha.accumulate(g.zipMap(la) { $0 * keepProbabilityDerivative($1) })
        }
    }

    // MARK: Deterministic mask

    /// The deterministic mask of one mask vector (`_deterministic_z`, following FLOP):
    /// num_zeros = round-half-to-even(size − Σ P(z ≠ 0)); the num_zeros gates with the smallest soft value
    /// sigmoid(1.2·log α) become 0 and every other gate keeps its soft value — or 1 when `binary` (the hidden
    /// family, project decision 5).
    ///
    /// Ties between equal soft values are broken by index: the lower index is zeroed first (a stable sort;
    /// `torch.topk` leaves ties unspecified). For a single gate (the MHA and FFN layer gates) this is: 0 iff
    /// P(z = 0) > 0.5 (round(0.5) = 0 keeps the gate), else its soft value.
    public static func deterministicMask(logAlpha: Tensor, binary: Bool = false) -> Tensor {
        deterministicMask(logAlpha: logAlpha, zeros: deterministicZeroCount(logAlpha: logAlpha.scalars), binary: binary)
    }

    /// The deterministic mask with exactly `zeros` gates at 0 (the smallest soft values, ties by index) and the others
    /// at their soft value (or 1 when `binary`): Sheared-LLaMA's evaluation of the target model, which keeps the
    /// target's count of each structure rather than the expected one.
    public static func deterministicMask(logAlpha: Tensor, zeros: Int, binary: Bool = false) -> Tensor {
        let la = logAlpha.scalars
        precondition(zeros >= 0 && zeros <= la.count, "deterministicMask: \(zeros) zeros for \(la.count) gates")
        var out = la.map { binary ? 1 : softValue($0) }
        guard zeros > 0 else { return Tensor(shape: logAlpha.shape, scalars: out) }
        let soft = la.map(softValue)
        let order = soft.indices.sorted { soft[$0] != soft[$1] ? soft[$0] < soft[$1] : $0 < $1 }
        for i in order.prefix(zeros) { out[i] = 0 }
        return Tensor(shape: logAlpha.shape, scalars: out)
    }

    /// round-half-to-even(size − Σ P(z ≠ 0)), clamped to [0, size]: how many gates the deterministic mask zeroes.
    public static func deterministicZeroCount(logAlpha la: [Float]) -> Int {
        var expectedKept = 0.0
        for a in la { expectedKept += Double(keepProbability(a)) }
        let zeros = (Double(la.count) - expectedKept).rounded(.toNearestOrEven)
        return min(max(Int(zeros), 0), la.count)
    }
}
