import Foundation
import Tensor

/// The target-sparsity warm-up (`get_target_sparsity`, cofi-spec §4): t(k) = t_start + (t_target − t_start)·min(1, k/W),
/// with k counted from the first pruning step. W = 0 means the target from the start.
public struct SparsityTarget: Equatable, Codable, Sendable {
    /// t_target, the fraction of M to remove.
    public var target: Float
    /// W, the warm-up length in pruning steps (`lagrangian_warmup_epochs` × steps per epoch).
    public var warmupSteps: Int
    /// t_start (the reference's `start_sparsity`, 0).
    public var start: Float
    /// How t rises from t_start to t_target over the warm-up.
    public var shape: RampShape
    /// A ladder's intermediate rungs (ascending, below `target`): the ramp holds at each for `holdSteps` pruning
    /// steps, inside the warm-up, so that each rung's band is visited long enough for evaluations to land in it. The
    /// ramp itself then moves over the other `movingSteps` steps of the warm-up.
    public var rungs: [Float]
    public var holdSteps: Int

    public init(target: Float, warmupSteps: Int, start: Float = 0, shape: RampShape = .linear, rungs: [Float] = [],
                holdSteps: Int = 0) {
        self.target = target
        self.warmupSteps = warmupSteps
        self.start = start
        self.shape = shape
        self.rungs = rungs
        self.holdSteps = holdSteps
    }

    private enum CodingKeys: String, CodingKey { case target, warmupSteps, start, shape, rungs, holdSteps }

    /// Values saved before the ramp had a shape (rungs) decode as linear (without rungs).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(target: try c.decode(Float.self, forKey: .target), warmupSteps: try c.decode(Int.self, forKey: .warmupSteps),
                  start: try c.decode(Float.self, forKey: .start),
                  shape: try c.decodeIfPresent(RampShape.self, forKey: .shape) ?? .linear,
                  rungs: try c.decodeIfPresent([Float].self, forKey: .rungs) ?? [],
                  holdSteps: try c.decodeIfPresent(Int.self, forKey: .holdSteps) ?? 0)
    }

    /// The steps of the warm-up in which t moves (the warm-up less the holds at the intermediate rungs).
    public var movingSteps: Int { max(1, warmupSteps - (holdSteps > 0 ? rungs.count * holdSteps : 0)) }

    /// t(k) for pruning step k ≥ 0.
    public func value(atPruningStep k: Int) -> Float {
        guard warmupSteps > 0 else { return target }
        guard !rungs.isEmpty, holdSteps > 0 else { return value(atProgress: min(1, Float(k) / Float(warmupSteps))) }
        let W = Float(movingSteps)
        var moving = Float(k)
        for r in rungs where r > start && r < target {
            let reach = progress(atValue: r) * W
            if moving <= reach { break }
            if moving <= reach + Float(holdSteps) { return r }
            moving -= Float(holdSteps)
        }
        return value(atProgress: min(1, moving / W))
    }

    /// The fraction x of the (moving) warm-up at which t = `value` (clamped to [0, 1]).
    public func progress(atValue value: Float) -> Float {
        let delta = target - start
        guard delta > 0 else { return 1 }
        let rest = max(0, min(1, (target - value) / delta))
        switch shape {
        case .linear: return 1 - rest
        case .cubic: return 1 - Float(pow(Double(rest), 1.0 / 3.0))
        }
    }

    /// t at the fraction x ∈ [0, 1] of the warm-up.
    public func value(atProgress x: Float) -> Float {
        switch shape {
        case .linear: return (target - start) * x + start
        case .cubic: let r = 1 - x; return target - (target - start) * r * r * r
        }
    }

    /// dt/dx, the rise of t per whole warm-up, at the point of the ramp where t = `sparsity` (clamped to the ramp).
    public func slope(atSparsity sparsity: Float) -> Float {
        switch shape {
        case .linear: return target - start
        case .cubic:
            // t = target − Δ(1 − x)³ ⇒ dt/dx = 3Δ(1 − x)² with 1 − x = ((target − t)/Δ)^(1/3).
            let delta = target - start
            guard delta > 0 else { return 0 }
            let rest = max(0, min(1, (target - sparsity) / delta))
            return 3 * delta * Float(pow(Double(rest), 2.0 / 3.0))
        }
    }
}

/// How the target sparsity rises over the warm-up.
public enum RampShape: String, Codable, CaseIterable, Sendable {
    /// Linearly in the step (the paper).
    case linear
    /// t(k) = t − (t − t_start)(1 − k/W)³: the gradual-pruning schedule of Zhu & Gupta (2017, "To prune, or not to
    /// prune"), used by movement pruning (Sanh et al., 2020). It removes fast while the network has slack and slows
    /// to zero slope at the target, where each further structure costs the most accuracy.
    case cubic
}

/// The Lagrangian sparsity constraint of cofi-spec §4: L_c = λ1·(ŝ − t) + λ2·(ŝ − t)², with λ1 and λ2 scalar
/// parameters initialised to 0 that the optimiser *maximises* (a negative learning rate), while log α minimises.
public final class Lagrangian {
    /// λ1, a scalar (shape []).
    public let lambda1: Variable
    /// λ2, a scalar (shape []).
    public let lambda2: Variable

    public init() {
        lambda1 = Variable(Tensor(scalar: 0), requiresGrad: true, name: "l0.lambda_1")
        lambda2 = Variable(Tensor(scalar: 0), requiresGrad: true, name: "l0.lambda_2")
    }

    /// λ1 and λ2 with their names (`l0.lambda_1`, `l0.lambda_2`).
    public var parameters: [(String, Variable)] { [("l0.lambda_1", lambda1), ("l0.lambda_2", lambda2)] }

    /// L_c = λ1·(ŝ − t) + λ2·(ŝ − t)² for the expected sparsity ŝ (a scalar) and the current target t.
    /// ∂L_c/∂λ1 = ŝ − t, ∂L_c/∂λ2 = (ŝ − t)² ≥ 0, ∂L_c/∂ŝ = λ1 + 2λ2·(ŝ − t).
    /// With `holdingLambda1` λ1 enters as a constant: same value and same ∂L_c/∂ŝ, no gradient for λ1 (the
    /// anti-windup rule of `ControllerOptions`).
    public func loss(expectedSparsity s: Variable, target t: Float, holdingLambda1: Bool = false) -> Variable {
        let gap = s.reshaped([]) + (-t)
        let l1 = holdingLambda1 ? Variable(lambda1.value) : lambda1
        return l1 * gap + lambda2 * gap.squared()
    }

    /// λ1 and λ2 by name, for checkpoints.
    public var state: [String: Tensor] { Dictionary(uniqueKeysWithValues: parameters.map { ($0.0, $0.1.value) }) }

    /// Restores λ1 and λ2 (each a one-element tensor).
    public func load(state: [String: Tensor]) throws {
        for (name, v) in parameters {
            guard let t = state[name] else { throw L0Error("state lacks '\(name)'") }
            guard t.count == 1 else { throw L0Error("'\(name)' has shape \(t.shape), expected a scalar") }
            v.assign(t.reshaped([]))
        }
    }
}
