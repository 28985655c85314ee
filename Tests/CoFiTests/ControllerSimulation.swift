import BERT
import Foundation
import Tensor
import Training
@testable import CoFi

/// Runs the sparsity controller alone — `L0Module` + `Lagrangian` + AdamW on log α and λ, driven only by the
/// gradient of L_c (no model, no task loss) — to see how fast the expected sparsity can follow the target.
///
/// Each step k (a pruning step, from 0): ŝ from log α, t(k) from the warm-up, L_c = λ1(ŝ − t) + λ2(ŝ − t)²,
/// backward, one AdamW step of the log α group (lr = reg lr, times f with the budget-aware option) and the λ group
/// (the negative of that), then the log α clamp —
/// the order of cofi-spec §11 with the model's share left out. In a real run the task loss also pushes on log α
/// (mostly against pruning), so this is the controller's best case: if it cannot reach the target here it cannot
/// in training either.
///
/// `taskPressure` ρ > 0 adds ρ·ŝ to the loss, a first-order stand-in for a task loss that resists pruning: it adds
/// the constant ρ to ∂L/∂ŝ = λ1 + 2λ2(ŝ − t), so λ1 must first grow to about −ρ before the gates can move — at
/// ≈ |λ lr| per step under Adam. It shows why the λ learning rate matters in training though it does not in the
/// pure controller (Adam on log α is invariant to the scale of λ). On MiniLM at t = 0.9 with issue 5's 299-step
/// warm-up, ρ ≈ 8 leaves the paper's rates at ŝ ≈ 0.86 after 1,196 pruning steps, never reaching the target — the
/// behaviour the issue reports (0.842) — whereas ρ = 0 overshoots to 0.99 instead.
///
/// `taskNoise` σ > 0 adds Σ n_i·log α_i with fresh n_i uniform in [−σ, σ] every step: a task gradient that is not
/// proportional to ∂ŝ/∂log α, as a real one is not. (With ρ alone the total gradient is (ρ + λ1)·∂ŝ/∂log α, so a
/// controller that solves for λ meets a degenerate problem: at λ1 = −ρ every gradient vanishes at once.)
enum ControllerSimulation {
    /// The state after one step.
    struct Point: Equatable, Sendable {
        /// Pruning steps taken.
        var step: Int
        /// ŝ after the step (from the clamped log α).
        var expectedSparsity: Float
        /// t(step), the target the next step will use.
        var target: Float
        var lambda1: Float
        var lambda2: Float
    }

    /// Simulates `steps` pruning steps with `options` on a fresh `L0Module` of `shape` (seeded initialisation; the
    /// first step sees the raw, unclamped init as in the reference) and returns the state every `every` steps and
    /// after the last.
    static func run(shape: BertShape, target: SparsityTarget, steps: Int,
                           options: ControllerOptions = .paper, regLearningRate: Float = 0.01,
                           families: Set<GateFamily> = Set(GateFamily.allCases), taskPressure: Float = 0,
                           taskNoise: Float = 0, seed: UInt64 = 57, every: Int = 50) -> [Point] {
        var rng = Xoshiro256(seed: seed)
        let l0 = L0Module(shape: shape, configuration: L0Configuration(families: families), using: &rng)
        let controller = SparsityController(l0: l0, target: target, options: options)
        let adam = AdamW(groups: controller.optimizerGroups(regLearningRate: regLearningRate))
        var out: [Point] = []
        var noise = Xoshiro256(seed: seed ^ 0x7A5C)
        for k in 0..<steps {
            adam.zeroGradients()
            let r = controller.regularization(pruningStep: k)
            var loss = taskPressure == 0 ? r.loss : r.loss + taskPressure * r.expectedSparsity
            if taskNoise > 0 {
                for g in l0.gates {
                    let n = (0..<g.variable.value.count).map { _ in taskNoise * (2 * noise.nextUniform() - 1) }
                    loss = loss + (g.variable * Variable(Tensor(shape: g.variable.shape, scalars: n))).sum()
                }
            }
            loss.backward()
            if options.tracking { controller.steerGates(pruningStep: k, optimizer: adam) }
            adam.step()
            controller.afterOptimizerStep()
            if (k + 1) % every == 0 || k + 1 == steps {
                let s = withoutGradients { l0.expectedSparsity().value.scalar }
                out.append(Point(step: k + 1, expectedSparsity: s, target: controller.target.value(atPruningStep: k + 1),
                                 lambda1: controller.lagrangian.lambda1.value.scalar,
                                 lambda2: controller.lagrangian.lambda2.value.scalar))
            }
        }
        return out
    }

    /// The trajectory as text lines: `step  ŝ  t  λ1  λ2`.
    static func format(_ points: [Point]) -> String {
        points.map { p in
            String(format: "%6d  ŝ %.4f  t %.4f  λ1 %+8.3f  λ2 %8.3f", p.step, p.expectedSparsity, p.target,
                   p.lambda1, p.lambda2)
        }.joined(separator: "\n")
    }
}
