import Tensor
import Training
import XCTest
@testable import CoFi

/// The Lagrangian constraint, target warm-up, optimiser groups, one AdamW step's directions, and the controller
/// simulation: the paper's rates against the budget-aware option.
final class LagrangianTests: XCTestCase {
    typealias S = GateTestSupport

    func testLossAndGradients() {
        let lag = Lagrangian()
        lag.lambda1.assign(Tensor(scalar: 0.3))
        lag.lambda2.assign(Tensor(scalar: 0.2))
        let s = Variable(Tensor(scalar: 0.5), requiresGrad: true)
        let loss = lag.loss(expectedSparsity: s, target: 0.4)
        XCTAssertEqual(loss.value.scalar, 0.3 * 0.1 + 0.2 * 0.01, accuracy: 1e-7)
        loss.backward()
        XCTAssertEqual(lag.lambda1.grad!.scalar, 0.1, accuracy: 1e-6)        // ŝ − t
        XCTAssertEqual(lag.lambda2.grad!.scalar, 0.01, accuracy: 1e-6)       // (ŝ − t)²
        XCTAssertEqual(s.grad!.scalar, 0.3 + 2 * 0.2 * 0.1, accuracy: 1e-6)  // λ1 + 2λ2(ŝ − t)
        XCTAssertEqual(lag.parameters.map(\.0), ["l0.lambda_1", "l0.lambda_2"])
        XCTAssertEqual(lag.lambda1.shape, [])
    }

    func testTargetWarmup() {
        let t = SparsityTarget(target: 0.9, warmupSteps: 300)
        XCTAssertEqual(t.value(atPruningStep: 0), 0)
        XCTAssertEqual(t.value(atPruningStep: 150), 0.45, accuracy: 1e-6)
        XCTAssertEqual(t.value(atPruningStep: 300), 0.9)
        XCTAssertEqual(t.value(atPruningStep: 10_000), 0.9)
        XCTAssertEqual(SparsityTarget(target: 0.95, warmupSteps: 0).value(atPruningStep: 0), 0.95)
        XCTAssertEqual(SparsityTarget(target: 0.9, warmupSteps: 100, start: 0.1).value(atPruningStep: 50), 0.5, accuracy: 1e-6)
    }

    func testStateRoundTrip() throws {
        let a = Lagrangian(), b = Lagrangian()
        a.lambda1.assign(Tensor(scalar: -1.25))
        a.lambda2.assign(Tensor(scalar: 3.5))
        try b.load(state: a.state)
        XCTAssertEqual(b.lambda1.value.scalar, -1.25)
        XCTAssertEqual(b.lambda2.value.scalar, 3.5)
        XCTAssertThrowsError(try b.load(state: [:])) { XCTAssertTrue("\($0)".contains("l0.lambda_1")) }
    }

    func testOptimizerGroups() {
        var rng = Xoshiro256(seed: 57)
        let c = SparsityController(l0: L0Module(shape: S.bertBase, using: &rng),
                                   target: SparsityTarget(target: 0.9, warmupSteps: 300))
        let groups = c.optimizerGroups(regLearningRate: 0.01)
        XCTAssertEqual(groups.map(\.name), ["l0", "lagrangian"])
        XCTAssertEqual(groups[0].learningRate, 0.01)
        XCTAssertEqual(groups[1].learningRate, -0.01)
        XCTAssertEqual(groups.map(\.weightDecay), [0, 0])
        XCTAssertEqual(groups.map(\.followsSchedule), [false, false])
        XCTAssertEqual(groups[0].parameters.count, 49)
        XCTAssertEqual(groups[1].parameters.map(\.0), ["l0.lambda_1", "l0.lambda_2"])
    }

    /// Below the target (ŝ₀ = 0.112 < t = 0.5): the first AdamW step moves λ1 by −reg lr (against ŝ − t < 0) and
    /// λ2 by +reg lr (its gradient (ŝ − t)² ≥ 0); log α has no gradient yet (λ = 0). The second step lowers every
    /// log α (towards sparser) and raises ŝ. Above the target everything turns around except λ2.
    func testOneStepDirections() {
        for (t, below) in [(Float(0.5), true), (0.05, false)] {
            var rng = Xoshiro256(seed: 57)
            let c = SparsityController(l0: L0Module(shape: S.miniLM, using: &rng),
                                       target: SparsityTarget(target: t, warmupSteps: 0))
            let adam = AdamW(groups: c.optimizerGroups(regLearningRate: 0.01))
            func step() -> Float {
                adam.zeroGradients()
                let r = c.regularization(pruningStep: 0)
                r.loss.backward()
                adam.step()
                c.afterOptimizerStep()
                return r.expectedSparsity.value.scalar
            }
            let s0 = step()
            XCTAssertEqual(s0 < t, below)
            XCTAssertEqual(c.lagrangian.lambda1.value.scalar, below ? -0.01 : 0.01, accuracy: 1e-6)
            XCTAssertEqual(c.lagrangian.lambda2.value.scalar, 0.01, accuracy: 1e-6)
            let before = c.l0.gates.map(\.variable.value)
            let s1 = withoutGradients { c.l0.expectedSparsity().value.scalar }
            _ = step()
            let s2 = withoutGradients { c.l0.expectedSparsity().value.scalar }
            XCTAssertEqual(s2 > s1, below, "ŝ \(s1) → \(s2)")
            XCTAssertGreaterThan(c.lagrangian.lambda2.value.scalar, 0.01)
            let upper = HardConcrete.logAlphaRange.upperBound
            for (g, old) in zip(c.l0.gates, before) {
                for (new, o) in zip(g.variable.value.scalars, old.scalars) where !(o == upper && !below) {
                    if below { XCTAssertLessThan(new, o, g.variable.name!) } else { XCTAssertGreaterThan(new, o, g.variable.name!) }
                }
            }
        }
    }

    func testBudgetAwareRates() {
        var rng = Xoshiro256(seed: 57)
        let l0 = L0Module(shape: S.bertBase, using: &rng)
        let before = l0.gates.map(\.variable.value)
        let paper = SparsityController(l0: l0, target: SparsityTarget(target: 0.9, warmupSteps: 100))
        XCTAssertEqual(paper.rateScale(regLearningRate: 0.01), 1)
        XCTAssertEqual(paper.target.start, 0)
        let shift90 = paper.requiredShift()
        XCTAssertEqual(l0.gates.map(\.variable.value), before)  // the search leaves log α as it was
        let shift95 = SparsityController(l0: l0, target: SparsityTarget(target: 0.95, warmupSteps: 100)).requiredShift()
        XCTAssertGreaterThan(shift95, shift90)
        XCTAssertEqual(SparsityController(l0: l0, target: SparsityTarget(target: 0.05, warmupSteps: 100)).requiredShift(), 0)

        let fast = SparsityController(l0: l0, target: SparsityTarget(target: 0.9, warmupSteps: 100), options: .budgetAware())
        XCTAssertEqual(fast.rateScale(regLearningRate: 0.01), 2.5 * shift90 / (0.01 * 100), accuracy: 1e-3)
        XCTAssertEqual(Double(fast.target.start), 0.112, accuracy: 0.002)  // ramp from ŝ of the (raw) init
        let groups = fast.optimizerGroups(regLearningRate: 0.01)
        XCTAssertEqual(groups[0].learningRate, 0.01 * fast.rateScale(regLearningRate: 0.01), accuracy: 1e-6)
        XCTAssertEqual(groups[1].learningRate, -groups[0].learningRate)
        // A warm-up long enough for the paper's rates keeps them.
        let long = SparsityController(l0: l0, target: SparsityTarget(target: 0.9, warmupSteps: 5_000), options: .budgetAware())
        XCTAssertEqual(long.rateScale(regLearningRate: 0.01), 1)
        print(String(format: "required log α shift δ(t): %.3f for 0.90, %.3f for 0.95 (BERT-base); f at W = 100: %.2f",
                     shift90, shift95, fast.rateScale(regLearningRate: 0.01)))
    }

    /// A resumed controller keeps log α, λ, the ramp start and the rates it started with.
    func testControllerStateRoundTrip() throws {
        var rng = Xoshiro256(seed: 57)
        let target = SparsityTarget(target: 0.9, warmupSteps: 100)
        let a = SparsityController(l0: L0Module(shape: S.tiny, using: &rng), target: target, options: .budgetAware())
        let adam = AdamW(groups: a.optimizerGroups(regLearningRate: 0.01))
        for k in 0..<20 {
            adam.zeroGradients()
            a.regularization(pruningStep: k).loss.backward()
            adam.step()
            a.afterOptimizerStep()
        }
        var other = Xoshiro256(seed: 1)
        let b = SparsityController(l0: L0Module(shape: S.tiny, using: &other), target: target, options: .budgetAware())
        XCTAssertNotEqual(b.state["l0.lambda_1"], a.state["l0.lambda_1"])
        try b.load(state: a.state)
        XCTAssertEqual(b.state, a.state)
        XCTAssertEqual(b.target, a.target)
        XCTAssertEqual(b.rateScale(regLearningRate: 0.01), a.rateScale(regLearningRate: 0.01))
        XCTAssertNotEqual(b.requiredShift(), b.shiftAtStart)  // the gates moved; the rates did not
        var partial = a.state
        partial["controller.shift_at_start"] = nil
        XCTAssertThrowsError(try b.load(state: partial)) { XCTAssertTrue("\($0)".contains("shift_at_start")) }
    }

    /// The controller alone (gradient of L_c only), 100 warm-up steps then 300 more: with the paper's rates ŝ
    /// is still far off the target in the last 100 steps; the budget-aware option holds it within 0.01.
    func testSimulatedControllerReachesTargetInShortBudget() {
        for (name, shape) in [("BERT-base", S.bertBase), ("MiniLM-L6", S.miniLM)] {
            for t: Float in [0.9, 0.95] {
                let target = SparsityTarget(target: t, warmupSteps: 100)
                let paper = ControllerSimulation.run(shape: shape, target: target, steps: 400, every: 25)
                let budget = ControllerSimulation.run(shape: shape, target: target, steps: 400,
                                                      options: .budgetAware(), every: 25)
                func worst(_ p: [ControllerSimulation.Point]) -> Float {
                    maxError(p.filter { $0.step >= 300 }.map { absDifference($0.expectedSparsity, t) })
                }
                print("== \(name), t = \(t), W = 100: paper rates (max |ŝ − t| over steps 300–400: \(worst(paper)))")
                print(ControllerSimulation.format(paper.filter { $0.step % 50 == 0 }))
                print("== \(name), t = \(t), W = 100: budget-aware (max |ŝ − t| over steps 300–400: \(worst(budget)))")
                print(ControllerSimulation.format(budget.filter { $0.step % 50 == 0 }))
                XCTAssertGreaterThan(worst(paper), 0.01, "\(name) \(t)")
                XCTAssertLessThanOrEqual(worst(budget), 0.01, "\(name) \(t)")
            }
        }
    }

    /// Issue 5's setting (MiniLM, t = 0.9, a 299-step warm-up, 1,196 pruning steps) with a task loss that resists
    /// pruning (ρ = 8, see `ControllerSimulation`): the paper's rates never reach 0.89 — as the reported run, which
    /// stood at 0.842 and never saved a checkpoint — while the budget-aware option holds the target.
    func testTaskPressureScenario() {
        let target = SparsityTarget(target: 0.9, warmupSteps: 299)
        let paper = ControllerSimulation.run(shape: S.miniLM, target: target, steps: 1196, taskPressure: 8, every: 13)
        let budget = ControllerSimulation.run(shape: S.miniLM, target: target, steps: 1196, options: .budgetAware(),
                                              taskPressure: 8, every: 13)
        print("== MiniLM-L6, t = 0.9, W = 299, task pressure 8: paper rates")
        print(ControllerSimulation.format(paper.filter { $0.step % 299 == 0 || $0.step == 1196 }))
        print("== the same, budget-aware")
        print(ControllerSimulation.format(budget.filter { $0.step % 299 == 0 || $0.step == 1196 }))
        XCTAssertTrue(paper.allSatisfy(\.expectedSparsity.isFinite), "a NaN would hide in max()")
        XCTAssertLessThan(paper.map(\.expectedSparsity).max()!, 0.89)
        XCTAssertLessThanOrEqual(maxError(budget.filter { $0.step >= 598 }.map { absDifference($0.expectedSparsity, 0.9) }), 0.01)
    }
}

final class AntiWindupTests: XCTestCase {
    typealias S = LagrangianTests.S

    /// The rule itself: λ1 gets ∂L_c/∂λ1 = ŝ − t on the first step and whenever ŝ, at its current speed, would
    /// not meet t(k + τ); it gets no gradient (and the AdamW step skips it) while ŝ closes the gap fast enough.
    /// L_c's value, λ2's gradient and ∂L_c/∂log α are the same either way.
    func testLambda1HeldOnlyWhileTheGapCloses() {
        var rng = Xoshiro256(seed: 3)
        let l0 = L0Module(shape: S.miniLM, using: &rng)
        let c = SparsityController(l0: l0, target: SparsityTarget(target: 0.9, warmupSteps: 0), options: .budgetAware())
        c.lagrangian.lambda1.assign(Tensor(scalar: -2))
        c.lagrangian.lambda2.assign(Tensor(scalar: 1))
        func step(shift: Float) -> (held: Bool, s: Float, lambda1Grad: Float?, lambda2Grad: Float) {
            for g in l0.gates { g.variable.assign(g.variable.value.map { $0 - shift }) }
            for (_, v) in l0.parameters + c.lagrangian.parameters { v.grad = nil }
            let r = c.regularization(pruningStep: 10)
            r.loss.backward()
            let gap = r.expectedSparsity.value.scalar - 0.9
            XCTAssertEqual(r.loss.value.scalar, -2 * gap + gap * gap, accuracy: 1e-5)
            return (c.lambda1Held, r.expectedSparsity.value.scalar, c.lagrangian.lambda1.grad?.scalar,
                    c.lagrangian.lambda2.grad!.scalar)
        }
        let first = step(shift: 0)                  // no previous ŝ: integrate
        XCTAssertFalse(first.held)
        XCTAssertEqual(first.lambda1Grad!, first.s - 0.9, accuracy: 1e-6)
        let slow = step(shift: 0.001)               // creeping up: ŝ + 25·Δŝ still short of t
        XCTAssertFalse(slow.held)
        XCTAssertNotNil(slow.lambda1Grad)
        let fast = step(shift: 1.0)                 // closing fast, still below t: hold λ1
        XCTAssertLessThan(fast.s, 0.9)
        XCTAssertTrue(fast.held)
        XCTAssertNil(fast.lambda1Grad)
        XCTAssertEqual(fast.lambda2Grad, (fast.s - 0.9) * (fast.s - 0.9), accuracy: 1e-6)
        let back = step(shift: -0.5)                // moving away from t: integrate again
        XCTAssertFalse(back.held)
        XCTAssertEqual(back.lambda1Grad!, back.s - 0.9, accuracy: 1e-6)
        var plainRng = Xoshiro256(seed: 3)
        let plain = SparsityController(l0: L0Module(shape: S.miniLM, using: &plainRng),
                                       target: SparsityTarget(target: 0.9, warmupSteps: 0),
                                       options: .budgetAware(antiWindup: false))
        for shift: Float in [0, 1] {
            for g in plain.l0.gates { g.variable.assign(g.variable.value.map { $0 - shift }) }
            _ = plain.regularization(pruningStep: 10)
            XCTAssertFalse(plain.lambda1Held)
        }
    }

    /// The last ŝ travels with the controller state, so a resumed run takes the same decisions.
    func testPreviousSparsityInState() throws {
        var rng = Xoshiro256(seed: 4)
        let a = SparsityController(l0: L0Module(shape: S.tiny, using: &rng), target: SparsityTarget(target: 0.5, warmupSteps: 10),
                                   options: .budgetAware())
        XCTAssertNil(a.state["controller.previous_expected_sparsity"])
        _ = a.regularization(pruningStep: 0)
        let saved = try XCTUnwrap(a.state["controller.previous_expected_sparsity"])
        var other = Xoshiro256(seed: 4)
        let b = SparsityController(l0: L0Module(shape: S.tiny, using: &other), target: SparsityTarget(target: 0.5, warmupSteps: 10),
                                   options: .budgetAware())
        try b.load(state: a.state)
        XCTAssertEqual(b.previousExpectedSparsity, saved.scalars[0])
    }

    /// In the controller simulation (uniform task pressure, W = 150, budget-aware rates) the rule does not keep
    /// ŝ from settling at the target: within 0.01 from step 450 on, as without it.
    func testSimulationStillSettles() {
        for (t, rho) in [(Float(0.9), Float(8)), (0.95, 8), (0.9, 16)] {
            let target = SparsityTarget(target: t, warmupSteps: 150)
            let held = ControllerSimulation.run(shape: S.miniLM, target: target, steps: 600,
                                                options: .budgetAware(), taskPressure: rho, every: 10)
            print("== t = \(t), ρ = \(rho), W = 150, budget-aware with anti-windup")
            print(ControllerSimulation.format(held.filter { $0.step % 50 == 0 }))
            XCTAssertLessThanOrEqual(maxError(held.filter { $0.step >= 450 }.map { absDifference($0.expectedSparsity, t) }), 0.01,
                                     "t \(t) ρ \(rho)")
        }
    }
}
