import BERT
import Foundation
import Tensor
import Training
import TestSupport
import XCTest
@testable import CoFi

/// The tracking controller (`SparsityController.steerGates`): λ solved at every step so that the gates' AdamW step
/// lands ŝ on the ramp.
final class TrackingControllerTests: XCTestCase {
    typealias S = LagrangianTests.S

    /// Issue 16's tracking goal in simulation: for targets 0.50 … 0.97, warm-ups of 60, 120 and 300 steps (the
    /// budget-aware rates pace the gates to the warm-up, so its length matters little), with and without a task
    /// loss that resists pruning (ρ = 8, with per-gate noise σ = 1e-3 so that it is not proportional to
    /// ∂ŝ/∂log α — see `ControllerSimulation`), |ŝ − t(k)| ≤ 0.01 at every point once the ramp is 10 % along, and never
    /// past the target by more than 0.01.
    func testTracksTheRampForEveryTargetAndBudget() {
        let cases: [(String, BertShape, [Float], [(Int, Float)])] = [
            ("MiniLM-L6", S.miniLM, [0.5, 0.7, 0.8, 0.9, 0.95, 0.97], [(60, 0)]),
            ("MiniLM-L6", S.miniLM, [0.5, 0.9, 0.97], [(120, 8)]),
            ("MiniLM-L6", S.miniLM, [0.95], [(300, 8)]),
            ("BERT-base", S.bertBase, [0.95], [(120, 8)]),
        ]
        for ramp in RampShape.allCases {
        for (name, shape, targets, runs) in cases where ramp == .linear || name == "MiniLM-L6" {
            for t in targets {
                for (warmup, pressure) in runs {
                    let target = SparsityTarget(target: t, warmupSteps: warmup, shape: ramp)
                    let steps = warmup + warmup / 2
                    let points = ControllerSimulation.run(shape: shape, target: target, steps: steps,
                                                          options: .tracking(), taskPressure: pressure,
                                                          taskNoise: pressure > 0 ? 1e-3 : 0,
                                                          every: max(1, warmup / 20))
                    let late = points.filter { $0.step * 10 >= warmup }
                    let worst = maxError(late.map { absDifference($0.expectedSparsity, $0.target) })
                    let over = maxError(points.map { max($0.expectedSparsity - t, 0) })
                    XCTAssertLessThanOrEqual(worst, 0.01, "\(name) \(ramp) t \(t) W \(warmup) ρ \(pressure):\n"
                                             + ControllerSimulation.format(points))
                    XCTAssertLessThanOrEqual(over, 0.01, "\(name) \(ramp) t \(t) W \(warmup) ρ \(pressure)")
                    XCTAssertTrue(points.allSatisfy { $0.lambda1.isFinite && $0.expectedSparsity.isFinite })
                }
            }
        }
        }
    }

    /// The cubic ramp: t(k) = t − (t − t₀)(1 − k/W)³, its slope dt/dx = 3(t − t₀)(1 − x)² read back from t, and the
    /// linear ramp's constant slope; decoding a target saved without a shape gives the linear ramp.
    func testRampShapes() throws {
        let cubic = SparsityTarget(target: 0.9, warmupSteps: 100, start: 0.1, shape: .cubic)
        XCTAssertEqual(cubic.value(atPruningStep: 0), 0.1, accuracy: 1e-6)
        XCTAssertEqual(cubic.value(atPruningStep: 50), 0.9 - 0.8 * 0.125, accuracy: 1e-6)
        XCTAssertEqual(cubic.value(atPruningStep: 100), 0.9, accuracy: 1e-6)
        XCTAssertEqual(cubic.value(atPruningStep: 500), 0.9, accuracy: 1e-6)
        XCTAssertEqual(cubic.slope(atSparsity: 0.1), 2.4, accuracy: 1e-5)
        XCTAssertEqual(cubic.slope(atSparsity: 0.8), 3 * 0.8 * 0.25, accuracy: 1e-5)
        XCTAssertEqual(cubic.slope(atSparsity: 0.9), 0, accuracy: 1e-6)
        let linear = SparsityTarget(target: 0.9, warmupSteps: 100, start: 0.1)
        XCTAssertEqual(linear.value(atPruningStep: 25), 0.3, accuracy: 1e-6)
        XCTAssertEqual(linear.slope(atSparsity: 0.85), 0.8, accuracy: 1e-6)
        let old = try JSONDecoder().decode(SparsityTarget.self, from: Data(#"{"target":0.9,"warmupSteps":10,"start":0}"#.utf8))
        XCTAssertEqual(old, SparsityTarget(target: 0.9, warmupSteps: 10))
        XCTAssertEqual(try JSONDecoder().decode(SparsityTarget.self, from: JSONEncoder().encode(cubic)), cubic)
    }

    /// The step is the paper's (AdamW on g_task + λ·∂ŝ/∂log α) with the λ that lands ŝ on the goal: after the
    /// step ŝ equals t(k + 1) + (1 − 1/H)·(ŝ − t(k)) (to the search's precision), λ1 holds the λ used, λ2 is 0, and neither
    /// has a gradient for its own optimiser.
    func testStepLandsOnTheGoal() {
        var rng = Xoshiro256(seed: 11)
        let l0 = L0Module(shape: S.miniLM, using: &rng)
        let c = SparsityController(l0: l0, target: SparsityTarget(target: 0.9, warmupSteps: 200), options: .tracking(horizon: 4))
        let adam = AdamW(groups: c.optimizerGroups())
        for k in 0..<30 {
            adam.zeroGradients()
            let r = c.regularization(pruningStep: k)
            r.loss.backward()
            XCTAssertTrue(l0.parameters.allSatisfy { $0.1.grad == nil }, "L_c is a constant under the tracking controller")
            (Float(3) * r.expectedSparsity).backward()        // a task gradient against pruning
            let before = Double(r.expectedSparsity.value.scalar)
            let lambda = c.steerGates(pruningStep: k, optimizer: adam)
            XCTAssertEqual(c.lagrangian.lambda1.value.scalar, lambda)
            XCTAssertEqual(c.lagrangian.lambda2.value.scalar, 0)
            XCTAssertNil(c.lagrangian.lambda1.grad)
            adam.step()
            c.afterOptimizerStep()
            let after = Double(withoutGradients { l0.expectedSparsity().value.scalar })
            let goal = Double(c.target.value(atPruningStep: k + 1))
                + 0.75 * (before - Double(c.target.value(atPruningStep: k)))
            XCTAssertEqual(after, goal, accuracy: 1e-4, "step \(k)")
        }
    }

    /// `AdamW.proposedValues` is the next step, bit for bit, and changes nothing.
    func testProposedValuesAreTheStep() {
        let p = Variable(Tensor(shape: [5], scalars: [0.5, -1, 2, 0, 3]), requiresGrad: true, name: "p")
        let adam = AdamW(groups: [ParameterGroup(name: "g", parameters: [("p", p)], learningRate: 0.1, weightDecay: 0.01)])
        for k in 0..<4 {
            let g: [Float] = (0..<5).map { Float($0 + k) * 0.3 - 0.5 }
            let proposed = adam.proposedValues(group: 0, gradients: ["p": g])["p"]!
            let stateBefore = adam.state
            XCTAssertEqual(adam.proposedValues(group: 0, gradients: ["p": g])["p"]!, proposed)
            XCTAssertEqual(adam.state.keys.sorted(), stateBefore.keys.sorted())
            p.grad = Tensor(shape: [5], scalars: g)
            adam.step()
            XCTAssertEqual(p.value.scalars, proposed, "step \(k)")
        }
    }

    /// Options saved before the tracking controller existed decode with it off; the new ones round-trip.
    func testOptionsDecodeOldAndNew() throws {
        let old = #"{"budgetAware":true,"safety":5,"antiWindup":true,"windupHorizon":25}"#
        let decoded = try JSONDecoder().decode(ControllerOptions.self, from: Data(old.utf8))
        XCTAssertEqual(decoded, .budgetAware(safety: 5))
        let tracking = ControllerOptions.tracking(horizon: 7)
        XCTAssertEqual(try JSONDecoder().decode(ControllerOptions.self, from: JSONEncoder().encode(tracking)), tracking)
        XCTAssertTrue(tracking.budgetAware)
        XCTAssertFalse(tracking.antiWindup)
    }
}
