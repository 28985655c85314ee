import XCTest
@testable import Tensor

/// Finite-difference gradient check: compares the analytic gradient of `loss = Σ f(inputs) ⊙ R` (R fixed
/// random weights, so every output element matters) with central differences on up to `samples`
/// coordinates of each input. Prints and returns the worst relative error.
@discardableResult
func checkGradients(_ name: String, inputs: [Variable], eps: Float = 1e-2, tolerance: Float = 5e-3,
                    samples: Int = 24, seed: UInt64 = 1, file: StaticString = #filePath, line: UInt = #line,
                    _ f: () -> Variable) -> Float {
    var rng = Xoshiro256(seed: seed)
    let probe = f().value
    let weights = Tensor.randomNormal(shape: probe.shape, using: &rng)
    func loss() -> Variable { (f() * Variable(weights)).sum() }
    for x in inputs { x.grad = nil }
    loss().backward()
    var worst: Float = 0
    for (k, x) in inputs.enumerated() {
        let analytic = x.grad ?? Tensor(zeros: x.shape)
        let scaleRef = max(analytic.maxAbs, 1e-3)
        let count = x.value.count
        let idxs: [Int] = count <= samples ? Array(0..<count) : (0..<samples).map { _ in Int(rng.next() % UInt64(count)) }
        for i in idxs {
            let orig = x.value.scalars[i]
            x.update { $0.scalars[i] = orig + eps }
            let up = withoutGradients { loss().value.scalar }
            x.update { $0.scalars[i] = orig - eps }
            let down = withoutGradients { loss().value.scalar }
            x.update { $0.scalars[i] = orig }
            let numeric = (up - down) / (2 * eps)
            let err = abs(numeric - analytic.scalars[i]) / scaleRef
            worst = max(worst, err)
            if err > tolerance {
                XCTFail("\(name): input \(k) element \(i): analytic \(analytic.scalars[i]) vs numeric \(numeric)",
                        file: file, line: line)
                return err
            }
        }
    }
    print("gradcheck \(name): max relative error \(worst)")
    return worst
}

func param(_ shape: [Int], seed: UInt64, std: Float = 1) -> Variable {
    var rng = Xoshiro256(seed: seed)
    return Variable(Tensor.randomNormal(shape: shape, std: std, using: &rng), requiresGrad: true)
}
