import XCTest
@testable import Tensor
import TestSupport

/// Finite-difference gradient check: compares the analytic gradient of `loss = Σ f(inputs) ⊙ R` (R fixed
/// random weights, so every output element matters) with central differences on up to `samples`
/// coordinates of each input. Prints and returns the worst relative error.
@discardableResult
func checkGradients(_ name: String, inputs: [Variable], eps: Float = 1e-2, tolerance: Float = 5e-3,
                    samples: Int = 24, seed: UInt64 = 1, file: StaticString = #filePath, line: UInt = #line,
                    _ f: () -> Variable) -> Float {
    let r = checkGradientsNumerically(inputs: inputs, eps: eps, tolerance: tolerance, samples: samples, seed: seed, f)
    if let e = r.failure {
        XCTFail("\(name): input \(e.input) element \(e.element): analytic \(e.analytic) vs numeric \(e.numeric)",
                file: file, line: line)
    } else {
        print("gradcheck \(name): max relative error \(r.worstError)")
    }
    return r.worstError
}

func param(_ shape: [Int], seed: UInt64, std: Float = 1) -> Variable {
    var rng = Xoshiro256(seed: seed)
    return Variable(Tensor.randomNormal(shape: shape, std: std, using: &rng), requiresGrad: true)
}
