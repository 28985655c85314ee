import Tensor

/// Finite-difference gradient checking: the oracle every op's and every loss's gradient is tested against.

/// Where a gradient check found the analytic and numeric gradients apart.
public struct GradientCheckFailure: Sendable {
    public let input: Int
    public let element: Int
    public let analytic: Float
    public let numeric: Float
}

/// The outcome of `checkGradientsNumerically`: the worst error seen, and the first failure if any.
public struct GradientCheckResult: Sendable {
    public let worstError: Float
    public let failure: GradientCheckFailure?
}

/// Compares the analytic gradient of loss = Σ f(inputs) ⊙ R (R fixed random weights, so every output element
/// matters) with central differences on up to `samples` coordinates of each input. The error of an element is
/// |numeric − analytic| / max(max |analytic| of that input, 1e-3). Stops at the first error above `tolerance`, or
/// at the first element where either gradient is NaN or infinite (reported with error NaN).
public func checkGradientsNumerically(inputs: [Variable], eps: Float = 1e-2, tolerance: Float = 5e-3,
                                      samples: Int = 24, seed: UInt64 = 1,
                                      _ f: () -> Variable) -> GradientCheckResult {
    var rng = Xoshiro256(seed: seed)
    let weights = Tensor.randomNormal(shape: f().value.shape, using: &rng)
    func loss() -> Variable { (f() * Variable(weights)).sum() }
    for x in inputs { x.grad = nil }
    loss().backward()
    var worst: Float = 0
    for (k, x) in inputs.enumerated() {
        let analytic = x.grad ?? Tensor(zeros: x.shape)
        let scaleRef = max(analytic.maxAbs, 1e-3)
        let count = x.value.count
        let idxs: [Int] = count <= samples ? Array(0..<count)
            : (0..<samples).map { _ in Int(rng.next() % UInt64(count)) }
        for i in idxs {
            let orig = x.value.scalars[i]
            x.update { $0.scalars[i] = orig + eps }
            let up = withoutGradients { loss().value.scalar }
            x.update { $0.scalars[i] = orig - eps }
            let down = withoutGradients { loss().value.scalar }
            x.update { $0.scalars[i] = orig }
            let numeric = (up - down) / (2 * eps)
            // NaN when either gradient is not finite (`absDifference`), which fails the check.
            let err = absDifference(numeric, analytic.scalars[i]) / scaleRef
            worst = max(worst, err)
            if !(err <= tolerance) {
                return GradientCheckResult(worstError: err, failure: GradientCheckFailure(
                    input: k, element: i, analytic: analytic.scalars[i], numeric: numeric))
            }
        }
    }
    return GradientCheckResult(worstError: worst, failure: nil)
}
