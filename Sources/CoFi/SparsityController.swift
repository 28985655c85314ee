import Foundation
import Tensor
import Training

/// How the sparsity controller sets its learning rates and its target ramp.
///
/// `.paper` is the reference's formulation (cofi-spec §4): log α at +reg lr, λ at −reg lr, target ramp from 0.
///
/// `.budgetAware` paces the controller to the warm-up it is given. Under AdamW every log α moves by about its
/// learning rate per step whatever the size of its gradient, so the gates can travel at most ≈ reg lr · W in log α
/// during a warm-up of W steps; reaching t from the initialisation needs a shift of δ(t) ≈ 5.6 (0.90) or 6.2 (0.95)
/// for BERT-base and MiniLM alike (`SparsityController.requiredShift`). When reg lr · W is short of that, ŝ lags the ramp, λ1 winds
/// up during the lag and ŝ then overshoots far past the target and takes hundreds of steps to come back. The
/// option multiplies both learning rates by f = max(1, safety · δ(t) / (reg lr · W)) — the paper's dynamics, run f
/// times faster — and starts the ramp at the initial ŝ (≈ 0.117) instead of 0, so λ1 does not first push the
/// gates the wrong way. With a long enough warm-up (f = 1) only the ramp start differs from the paper.
///
/// In the controller alone the λ rate does not matter (Adam on log α is invariant to the scale of λ); in training
/// it does: the task loss pushes the gates open, and λ must grow until λ·∂ŝ/∂log α outweighs that push, at about
/// |λ lr| per step. Scaling the λ rate by the same f lets λ reach in W steps what the paper's λ reaches in f·W.
///
/// `antiWindup` (on with `.budgetAware`) is conditional integration, the textbook anti-windup of a PI controller:
/// λ1 integrates the gap ŝ − t only while ŝ, moving at its current speed, would not meet the target within
/// `windupHorizon` steps. Under AdamW the gates move at most ≈ their lr per step however large λ1 grows, so a
/// larger λ1 does not close the gap faster once the gates are already on their way; the paper's λ1 still grows
/// all through such a lag and then carries ŝ far past the target (the short real runs: 0.90 → ŝ 0.919, exact
/// 0.9265; 0.95 → 0.98 and a dead network). With the rule λ1 stops at the value that set the gates moving and
/// unwinds quickly once ŝ crosses t. λ1 then receives no gradient (its AdamW step is skipped, its moments kept);
/// the L_c value, λ2 and the gates are unchanged.
public struct ControllerOptions: Equatable, Codable, Sendable {
    /// Whether the rates are paced to the warm-up (false: the paper's rates).
    public var budgetAware: Bool
    /// How many times the minimal travel the gates must be able to cover during the warm-up.
    public var safety: Float
    /// The steps in which the gates must be able to cross δ(t); nil: the warm-up W (W = 0 keeps f = 1).
    public var crossingSteps: Int?
    /// Conditional integration of λ1 (see above).
    public var antiWindup: Bool
    /// τ of the anti-windup rule: λ1 is held while ŝ + τ·Δŝ is on the far side of t(k + τ) (Δŝ: the change of ŝ
    /// over the last step).
    public var windupHorizon: Int

    public init(budgetAware: Bool = false, safety: Float = 2.5, crossingSteps: Int? = nil, antiWindup: Bool = false,
                windupHorizon: Int = 25) {
        self.budgetAware = budgetAware
        self.safety = safety
        self.crossingSteps = crossingSteps
        self.antiWindup = antiWindup
        self.windupHorizon = windupHorizon
    }

    /// The paper's formulation.
    public static let paper = ControllerOptions()

    /// Rates paced to the warm-up (or to `crossingSteps`), ramp from the initial expected sparsity, and (unless
    /// `antiWindup` is false) conditional integration of λ1.
    public static func budgetAware(safety: Float = 2.5, crossingSteps: Int? = nil, antiWindup: Bool = true,
                                   windupHorizon: Int = 25) -> ControllerOptions {
        ControllerOptions(budgetAware: true, safety: safety, crossingSteps: crossingSteps, antiWindup: antiWindup,
                          windupHorizon: windupHorizon)
    }
}

/// The sparsity controller of one pruning run: the gates (`L0Module`), the multipliers (`Lagrangian`), the target
/// warm-up, and the learning-rate policy (`ControllerOptions`).
///
/// Use: build it when pruning starts (after the pre-pruning steps); put `optimizerGroups(regLearningRate:)` into
/// an AdamW of its own created then (the reference creates the L0 and λ optimisers at that point, so their bias
/// corrections count from the first pruning step); each pruning step k add `regularization(pruningStep: k).loss`
/// to the task loss before the backward pass, step, then call `afterOptimizerStep()`. Checkpoints save `state`
/// and restore it with `load(state:)` (log α, λ, and the budget-aware option's values fixed at the start).
public final class SparsityController {
    public let l0: L0Module
    public let lagrangian: Lagrangian
    public private(set) var target: SparsityTarget
    public let options: ControllerOptions
    /// δ(t) measured when the controller was built (0 with `.paper`); `rateScale` uses this value, so a resumed
    /// run keeps the rates it started with.
    public private(set) var shiftAtStart: Float = 0
    /// ŝ at the previous `regularization` call (nil before the first), for the anti-windup rule.
    public private(set) var previousExpectedSparsity: Float?
    /// Whether the last `regularization` call held λ1 (anti-windup).
    public private(set) var lambda1Held = false

    /// With `.budgetAware` the target ramp starts at the current ŝ and δ(t) is measured from the current log α.
    public init(l0: L0Module, lagrangian: Lagrangian = Lagrangian(), target: SparsityTarget,
                options: ControllerOptions = .paper) {
        self.l0 = l0
        self.lagrangian = lagrangian
        self.options = options
        self.target = target
        if options.budgetAware {
            self.target.start = min(target.target, withoutGradients { l0.expectedSparsity().value.scalar })
            self.shiftAtStart = requiredShift()
        }
    }

    /// δ(t): the uniform decrease of every log α, from the current values clamped to their range (and again after
    /// the shift), at which ŝ reaches the target — how far the gates must travel in log α. At most the width of the
    /// clamp range (9.21), where every gate sits at ln 0.01.
    public func requiredShift() -> Float {
        let saved = l0.gates.map { $0.variable.value }
        defer { for (g, v) in zip(l0.gates, saved) { g.variable.assign(v) } }
        let lo = HardConcrete.logAlphaRange.lowerBound, hi = HardConcrete.logAlphaRange.upperBound
        func sparsity(shift: Float) -> Double {
            for (g, v) in zip(l0.gates, saved) { g.variable.assign(v.map { min(max(min(max($0, lo), hi) - shift, lo), hi) }) }
            return 1 - l0.sizeModel.expectedSize(l0) / Double(l0.sizeModel.prunableSize)
        }
        let t = Double(target.target)
        var a: Float = 0, b = hi - lo
        if sparsity(shift: a) >= t { return 0 }
        if sparsity(shift: b) < t { return b }
        for _ in 0..<40 {
            let m = (a + b) / 2
            if sparsity(shift: m) < t { a = m } else { b = m }
        }
        return b
    }

    /// f = max(1, safety · δ(t) / (reg lr · W)), the factor both learning rates are multiplied by (1 for `.paper`).
    public func rateScale(regLearningRate: Float) -> Float {
        guard options.budgetAware else { return 1 }
        let steps = options.crossingSteps ?? target.warmupSteps
        guard steps > 0, regLearningRate > 0 else { return 1 }
        return max(1, options.safety * shiftAtStart / (regLearningRate * Float(steps)))
    }

    /// The two optimiser groups of cofi-spec §4 besides the model's: "l0" (every log α; lr = reg lr, weight decay 0,
    /// constant) and "lagrangian" (λ1, λ2; lr = −reg lr, i.e. gradient ascent, weight decay 0, constant).
    /// With `.budgetAware` both rates are multiplied by `rateScale(regLearningRate:)`; call this when pruning starts.
    public func optimizerGroups(regLearningRate: Float = 0.01) -> [ParameterGroup] {
        let lr = regLearningRate * rateScale(regLearningRate: regLearningRate)
        return [ParameterGroup(name: "l0", parameters: l0.parameters, learningRate: lr, weightDecay: 0,
                               followsSchedule: false),
                ParameterGroup(name: "lagrangian", parameters: lagrangian.parameters, learningRate: -lr, weightDecay: 0,
                               followsSchedule: false)]
    }

    /// L_c for pruning step k, with ŝ and t(k).
    /// Call it once per step: the anti-windup rule compares ŝ with the previous call's.
    public func regularization(pruningStep k: Int) -> (loss: Variable, expectedSparsity: Variable, target: Float) {
        let s = l0.expectedSparsity()
        let t = target.value(atPruningStep: k)
        let now = s.value.scalar
        lambda1Held = false
        if options.antiWindup, let before = previousExpectedSparsity {
            let tau = Float(max(options.windupHorizon, 0))
            let gap = now - t
            let projected = now + tau * (now - before) - target.value(atPruningStep: k + options.windupHorizon)
            lambda1Held = (gap < 0 && projected >= 0) || (gap > 0 && projected <= 0)
        }
        previousExpectedSparsity = now
        return (lagrangian.loss(expectedSparsity: s, target: t, holdingLambda1: lambda1Held), s, t)
    }

    /// Clamps log α; call after every optimiser step.
    public func afterOptimizerStep() { l0.clampLogAlpha() }

    /// Everything a checkpoint needs: every log α (`l0.…_log_alpha`), λ1 and λ2 (`l0.lambda_1`, `l0.lambda_2`),
    /// the ramp start and δ(t) fixed when the controller was built (`controller.target_start`,
    /// `controller.shift_at_start`) and, after the first step, the last ŝ of the anti-windup rule
    /// (`controller.previous_expected_sparsity`).
    public var state: [String: Tensor] {
        var s = l0.state.merging(lagrangian.state) { a, _ in a }
        s["controller.target_start"] = Tensor(shape: [1], scalars: [target.start])
        s["controller.shift_at_start"] = Tensor(shape: [1], scalars: [shiftAtStart])
        if let previousExpectedSparsity {
            s["controller.previous_expected_sparsity"] = Tensor(shape: [1], scalars: [previousExpectedSparsity])
        }
        return s
    }

    /// Restores `state` (see there); the controller must have been built with the same shape and families.
    public func load(state s: [String: Tensor]) throws {
        guard let start = s["controller.target_start"], start.count == 1,
              let shift = s["controller.shift_at_start"], shift.count == 1 else {
            throw L0Error("state lacks 'controller.target_start' or 'controller.shift_at_start'")
        }
        try l0.load(state: s)
        try lagrangian.load(state: s)
        target.start = start.scalars[0]
        shiftAtStart = shift.scalars[0]
        previousExpectedSparsity = s["controller.previous_expected_sparsity"].flatMap { $0.count == 1 ? $0.scalars[0] : nil }
    }
}
