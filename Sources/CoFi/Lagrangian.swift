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

    public init(target: Float, warmupSteps: Int, start: Float = 0) {
        self.target = target
        self.warmupSteps = warmupSteps
        self.start = start
    }

    /// t(k) for pruning step k ≥ 0.
    public func value(atPruningStep k: Int) -> Float {
        guard warmupSteps > 0 else { return target }
        return (target - start) * min(1, Float(k) / Float(warmupSteps)) + start
    }
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
