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
    /// The tracking controller (`SparsityController.steerGates`): λ is not learned but solved for at every step,
    /// so that the gates' own AdamW step lands ŝ on the target. Implies the budget-aware rates and ramp start.
    public var tracking: Bool
    /// H of the tracking controller: each step aims at t(k + 1) + (1 − 1/H)·(ŝ − t(k)) — t(k + 1) when ŝ is on
    /// the ramp, and a gap shrinks by 1/H a step (about H steps to close it).
    public var trackingHorizon: Int

    public init(budgetAware: Bool = false, safety: Float = budgetAwareSafety, crossingSteps: Int? = nil, antiWindup: Bool = false,
                windupHorizon: Int = 25, tracking: Bool = false, trackingHorizon: Int = 10) {
        self.budgetAware = budgetAware || tracking
        self.safety = safety
        self.crossingSteps = crossingSteps
        self.antiWindup = antiWindup && !tracking
        self.windupHorizon = windupHorizon
        self.tracking = tracking
        self.trackingHorizon = trackingHorizon
    }

    private enum CodingKeys: String, CodingKey {
        case budgetAware, safety, crossingSteps, antiWindup, windupHorizon, tracking, trackingHorizon
    }

    /// Settings saved before the tracking controller existed decode with it off.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(budgetAware: try c.decode(Bool.self, forKey: .budgetAware), safety: try c.decode(Float.self, forKey: .safety),
                  crossingSteps: try c.decodeIfPresent(Int.self, forKey: .crossingSteps),
                  antiWindup: try c.decode(Bool.self, forKey: .antiWindup),
                  windupHorizon: try c.decode(Int.self, forKey: .windupHorizon),
                  tracking: try c.decodeIfPresent(Bool.self, forKey: .tracking) ?? false,
                  trackingHorizon: try c.decodeIfPresent(Int.self, forKey: .trackingHorizon) ?? 10)
    }

    /// The paper's formulation.
    public static let paper = ControllerOptions()

    /// The budget-aware controller's default safety.
    public static let budgetAwareSafety: Float = 2.5

    /// The tracking controller's default safety: in real training the gates move at well under their rate per step
    /// (the task gradient's sign changes), so at 2.5 the demo's 0.90 run fell 0.06 behind the steep end of the ramp;
    /// at 5 it held ŝ on t(k) at every evaluation (BENCHMARKS.md, issue 16).
    public static let trackingSafety: Float = 5

    /// The tracking controller with the budget-aware rates and ramp start (see `SparsityController.steerGates`).
    public static func tracking(safety: Float = trackingSafety, crossingSteps: Int? = nil, horizon: Int = 10) -> ControllerOptions {
        ControllerOptions(budgetAware: true, safety: safety, crossingSteps: crossingSteps, tracking: true,
                          trackingHorizon: horizon)
    }

    /// Rates paced to the warm-up (or to `crossingSteps`), ramp from the initial expected sparsity, and (unless
    /// `antiWindup` is false) conditional integration of λ1.
    public static func budgetAware(safety: Float = budgetAwareSafety, crossingSteps: Int? = nil, antiWindup: Bool = true,
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
    /// What is driven to the target: the expected sparsity (`l0.sizeModel`, the paper) or another measure such as
    /// the latency reduction of `LatencyModel`.
    public let measure: PruningMeasure
    /// A second target driven at the same time (with the tracking controller only): a size target beside a
    /// latency target. Its ramp has the same warm-up and shape and starts at the measure's initial value.
    public private(set) var secondary: (measure: PruningMeasure, target: SparsityTarget)?
    /// The multiplier of the secondary target at the last step (logged and checkpointed).
    public private(set) var secondaryLambda: Float = 0
    /// δ(t) measured when the controller was built (the tracking controller: `steepestShift()`; 0 with `.paper`);
    /// `rateScale` uses this value, so a resumed run keeps the rates it started with.
    public private(set) var shiftAtStart: Float = 0
    /// ŝ at the previous `regularization` call (nil before the first), for the anti-windup rule.
    public private(set) var previousExpectedSparsity: Float?
    /// Whether the last `regularization` call held λ1 (anti-windup).
    public private(set) var lambda1Held = false

    /// With `.budgetAware` the target ramp starts at the current ŝ and δ(t) is measured from the current log α.
    public init(l0: L0Module, lagrangian: Lagrangian = Lagrangian(), target: SparsityTarget,
                options: ControllerOptions = .paper, measure: PruningMeasure? = nil,
                secondary: (measure: PruningMeasure, target: Float)? = nil) {
        self.l0 = l0
        self.lagrangian = lagrangian
        self.options = options
        self.target = target
        self.measure = measure ?? l0.sizeModel
        if let secondary {
            precondition(options.tracking, "a secondary target needs the tracking controller")
            var ramp = target
            ramp.target = secondary.target
            ramp.rungs = []
            ramp.holdSteps = 0
            ramp.start = min(secondary.target, Float(secondary.measure.expectedValue(l0)))
            self.secondary = (secondary.measure, ramp)
        }
        if options.budgetAware {
            self.target.start = min(target.target, Float(self.measure.expectedValue(l0)))
            self.shiftAtStart = options.tracking ? steepestShift() : requiredShift()
        }
    }

    /// For the tracking controller: the shift the gates would travel over the warm-up at the speed the steepest
    /// stretch of the ramp asks (each step of ŝ costs more log α near the target than at the start: for MiniLM the
    /// last tenth of a linear 0.9 ramp needs about three times the average speed; a cubic ramp asks most at its
    /// start). `rateScale` then paces the rates to that speed, so that ŝ can follow t(k) all the way. δ(t) when
    /// there is no ramp.
    public func steepestShift(segments: Int = 40) -> Float {
        guard target.warmupSteps > 0, target.target > target.start else { return requiredShift() }
        // ŝ after uniform shifts 0 … δ(t) in equal parts; on each part the ramp's rise per warm-up (dt/dx at the
        // part's middle) over ŝ's rise per unit log α is the travel the whole warm-up would need at that speed.
        let total = requiredShift()
        let steepest = withShiftedGates { sparsity -> Float in
            var before = Float(sparsity(0))
            var steepest: Float = 0
            for j in 1...segments {
                let now = Float(sparsity(total * Float(j) / Float(segments)))
                if now > target.start {
                    let from = max(before, target.start)
                    let rise = (now - from) / (total / Float(segments))
                    let need = target.slope(atSparsity: (from + min(now, target.target)) / 2)
                    steepest = rise > 0 ? max(steepest, need / rise) : .infinity
                }
                before = now
            }
            return steepest
        }
        guard steepest.isFinite, steepest > 0 else { return total }
        return steepest
    }

    /// Runs `body` with `sparsity(δ)`: ŝ after every log α (clamped to its range) is lowered by δ and clamped
    /// again; the gates are restored afterwards.
    private func withShiftedGates<R>(_ body: ((Float) -> Double) -> R) -> R {
        let saved = l0.gates.map { $0.variable.value }
        defer { for (g, v) in zip(l0.gates, saved) { g.variable.assign(v) } }
        let lo = HardConcrete.logAlphaRange.lowerBound, hi = HardConcrete.logAlphaRange.upperBound
        return body { shift in
            for (g, v) in zip(self.l0.gates, saved) {
                g.variable.assign(v.map { min(max(min(max($0, lo), hi) - shift, lo), hi) })
            }
            return self.currentSparsity()
        }
    }

    /// The measure's expected value (ŝ = 1 − E[size]/M by default) from the gates' current values, in Double.
    private func currentSparsity() -> Double { measure.expectedValue(l0) }


    /// δ(t): the uniform decrease of every log α, from the current values clamped to their range (and again after
    /// the shift), at which ŝ reaches the target — how far the gates must travel in log α. At most the width of the
    /// clamp range (9.21), where every gate sits at ln 0.01.
    public func requiredShift() -> Float { requiredShift(toReach: target.target) }

    /// δ(s) for any sparsity s (see `requiredShift()`).
    public func requiredShift(toReach goal: Float) -> Float {
        let width = HardConcrete.logAlphaRange.upperBound - HardConcrete.logAlphaRange.lowerBound
        return withShiftedGates { sparsity in
            let t = Double(goal)
            var a: Float = 0, b = width
            if sparsity(a) >= t { return 0 }
            if sparsity(b) < t { return b }
            for _ in 0..<40 {
                let m = (a + b) / 2
                if sparsity(m) < t { a = m } else { b = m }
            }
            return b
        }
    }

    /// f = max(1, safety · δ(t) / (reg lr · W)), the factor both learning rates are multiplied by (1 for `.paper`).
    public func rateScale(regLearningRate: Float) -> Float {
        guard options.budgetAware else { return 1 }
        let steps = options.crossingSteps ?? (target.warmupSteps > 0 ? target.movingSteps : 0)
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
    /// Call it once per step: the anti-windup rule compares ŝ with the previous call's. With the tracking
    /// controller L_c is a constant (its value with the last λ, for the log): the gates' share of the constraint is
    /// added by `steerGates` after the backward pass.
    public func regularization(pruningStep k: Int) -> (loss: Variable, expectedSparsity: Variable, target: Float) {
        let s = measure.expectedVariable(l0)
        let t = target.value(atPruningStep: k)
        let now = s.value.scalar
        lambda1Held = false
        if options.tracking {
            previousExpectedSparsity = now
            let value = lagrangian.lambda1.value.scalar * (now - t)
            return (Variable(Tensor(scalar: value)), s, t)
        }
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

    /// Bounds of |λ| the tracking controller searches (λ = ±(e^|u| − 1) for u in ±`lambdaSearchRange`).
    static let lambdaSearchRange: Double = 14

    /// The tracking controller's step (with `options.tracking`; call after the backward pass and before the
    /// optimisers step, with the gates' gradients those of the task loss alone and the same on every rank).
    ///
    /// The gates take the paper's step — AdamW on g_task + λ·∂ŝ/∂log α, so each gate still weighs its task
    /// gradient against the size it would remove — but λ is not learned by gradient ascent: it is solved for
    /// (a bracket grown from the last λ, then regula falsi, to 1e-6 in ŝ; 4–8 previews a step) so that the step
    /// lands ŝ on t(k + 1) + (1 − 1/H)·(ŝ − t(k)) (`optimizer.proposedValues` previews the step bit for bit, the
    /// clamp included). λ therefore does not remember past gaps: there is no wind-up,
    /// and on the ramp ŝ follows t(k) step by step. When the gates cannot travel that far in one step (AdamW moves
    /// each by about its rate), the goal is cut to 90 % of the reachable move, so λ stays finite and the moments
    /// are not flooded. λ1 holds the λ used (logged and checkpointed), λ2 stays 0, and neither takes an
    /// optimiser step.
    /// - Returns: the λ used.
    @discardableResult
    public func steerGates(pruningStep k: Int, optimizer: AdamW, group: Int = 0) -> Float {
        let params = l0.parameters
        var task: [String: [Float]] = [:]
        for (name, p) in params {
            task[name] = p.grad?.scalars ?? [Float](repeating: 0, count: p.value.count)
            p.grad = nil
        }
        // ∂m/∂log α of the measure (and of the secondary one).
        func costs(_ m: PruningMeasure) -> (value: Double, cost: [String: [Float]]) {
            let s = m.expectedVariable(l0)
            s.backward()
            var cost: [String: [Float]] = [:]
            for (name, p) in params {
                cost[name] = p.grad?.scalars ?? [Float](repeating: 0, count: p.value.count)
                p.grad = nil
            }
            return (Double(s.value.scalar), cost)
        }
        let (now, cost) = costs(measure)
        let H = max(1, options.trackingHorizon)
        func goal(_ ramp: SparsityTarget, _ now: Double) -> Double {
            Double(ramp.value(atPruningStep: k + 1)) + (1 - 1 / Double(H)) * (now - Double(ramp.value(atPruningStep: k)))
        }
        let second = secondary.map { (costs($0.measure), $0.target) }

        let lo = HardConcrete.logAlphaRange.lowerBound, hi = HardConcrete.logAlphaRange.upperBound
        let saved = params.map { $0.1.value }
        func gradients(_ lambda: Float, _ lambda2: Float) -> [String: [Float]] {
            var g: [String: [Float]] = [:]
            for (name, _) in params {
                var out = task[name]!
                cost[name]!.withUnsafeBufferPointer { c in
                    out.withUnsafeMutableBufferPointer { o in
                        for i in o.indices { o[i] += lambda * c[i] }
                    }
                }
                if let c2 = second?.0.cost[name], lambda2 != 0 {
                    for i in out.indices { out[i] += lambda2 * c2[i] }
                }
                g[name] = out
            }
            return g
        }
        // The measures after the step the gates would take with (λ, λ2).
        func measures(_ lambda: Float, _ lambda2: Float) -> (Double, Double) {
            let proposed = optimizer.proposedValues(group: group, gradients: gradients(lambda, lambda2))
            for (name, p) in params {
                let v = proposed[name]!
                p.assign(Tensor(shape: p.shape, scalars: v.map { min(max($0, lo), hi) }))
            }
            defer { for ((_, p), v) in zip(params, saved) { p.assign(v) } }   // the next preview starts from here
            return (currentSparsity(), secondary.map { $0.measure.expectedValue(l0) } ?? 0)
        }
        let chosen: Float, chosen2: Float
        if let second {
            // Two targets: λ2 is solved so that, with λ re-solved for the first target at every trial, the second
            // lands on its goal too.
            let previous2 = Double(secondaryLambda)
            var inner = Double(lagrangian.lambda1.value.scalar)
            chosen2 = Self.solve(goal: goal(second.1, second.0.value), previous: previous2) { lambda2 in
                let lambda = Self.solve(goal: goal(self.target, now), previous: inner) { measures($0, lambda2).0 }
                inner = Double(lambda)
                return measures(lambda, lambda2).1
            }
            chosen = Self.solve(goal: goal(target, now), previous: inner) { measures($0, chosen2).0 }
        } else {
            chosen2 = 0
            chosen = Self.solve(goal: goal(target, now), previous: Double(lagrangian.lambda1.value.scalar)) { measures($0, 0).0 }
        }
        let g = gradients(chosen, chosen2)
        for (name, p) in params { p.grad = Tensor(shape: p.shape, scalars: g[name]!) }
        lagrangian.lambda1.assign(Tensor(scalar: chosen))
        lagrangian.lambda2.assign(Tensor(scalar: 0))
        secondaryLambda = chosen2
        for (_, p) in lagrangian.parameters { p.grad = nil }
        return chosen
    }

    /// The λ of the tracking controller's step: `value(λ)` is the measure after the step with multiplier λ (it falls
    /// as λ rises; λ < 0 prunes). The aim is `goal` or — when the goal is beyond the farthest the step can reach
    /// (λ = ∓e^U) — 90 % of the way there from λ = 0, so λ stays finite and the moments are not flooded. The search
    /// runs on u with λ = ±(e^|u| − 1): a bracket grown from the previous λ (steps of 0.05, doubling), then Illinois
    /// (regula falsi that halves the kept end's weight) until within 1e-6 of the aim.
    static func solve(goal: Double, previous: Double, _ value: (Float) -> Double) -> Float {
        func lambda(_ u: Double) -> Float { Float(u < 0 ? -(exp(-u) - 1) : exp(u) - 1) }
        let U = lambdaSearchRange
        // The far end is looked at only on the side the goal lies.
        var aim = goal
        var most = Double.infinity, least = -Double.infinity
        var u = min(max(previous < 0 ? -log1p(-previous) : log1p(previous), -U), U)
        let start = value(lambda(u))
        var fu = start - aim
        var evaluations = 1
        if fu < 0 {
            most = value(lambda(-U))
            evaluations += 1
            if aim > most {
                let free = value(0)
                aim = free + 0.9 * (most - free)
                fu = start - aim
                evaluations += 1
            }
        } else if fu > 0 {
            least = value(lambda(U))
            evaluations += 1
            if aim < least {
                let free = value(0)
                aim = free + 0.9 * (least - free)
                fu = start - aim
                evaluations += 1
            }
        }
        // A bracket value(a) ≥ aim ≥ value(b) grown from the last λ, then Illinois.
        var a = u, b = u, fa = fu, fb = fu
        var delta = 0.05
        if fu > 0 {
            while fb > 0 && b < U {
                a = b; fa = fb
                b = min(b + delta, U); delta *= 2
                fb = b == U ? least - aim : value(lambda(b)) - aim
                evaluations += 1
            }
        } else {
            while fa < 0 && a > -U {
                b = a; fb = fa
                a = max(a - delta, -U); delta *= 2
                fa = a == -U ? most - aim : value(lambda(a)) - aim
                evaluations += 1
            }
        }
        var side = 0
        while abs(fu) >= 1e-6 && abs(b - a) > 1e-9 && evaluations < 80 {
            u = fa == fb ? (a + b) / 2 : (a * fb - b * fa) / (fb - fa)
            if !(u > min(a, b) && u < max(a, b)) { u = (a + b) / 2 }
            fu = value(lambda(u)) - aim
            evaluations += 1
            if fu > 0 {
                a = u; fa = fu
                if side == 1 { fb /= 2 }
                side = 1
            } else {
                b = u; fb = fu
                if side == -1 { fa /= 2 }
                side = -1
            }
        }
        return lambda(u)
    }

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
        if let secondary {
            s["controller.secondary_start"] = Tensor(shape: [1], scalars: [secondary.target.start])
            s["controller.secondary_lambda"] = Tensor(shape: [1], scalars: [secondaryLambda])
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
        if secondary != nil {
            guard let start = s["controller.secondary_start"], start.count == 1,
                  let lambda = s["controller.secondary_lambda"], lambda.count == 1 else {
                throw L0Error("state lacks 'controller.secondary_start' or 'controller.secondary_lambda' (a run with a second target)")
            }
            secondary!.target.start = start.scalars[0]
            secondaryLambda = lambda.scalars[0]
        }
    }
}
