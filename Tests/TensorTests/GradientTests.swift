import XCTest
@testable import Tensor

/// Every differentiable op against central finite differences, including gradients w.r.t. mask values.
final class GradientTests: XCTestCase {
    func testElementwiseArithmetic() {
        let a = param([3, 4], seed: 1), b = param([3, 4], seed: 2)
        checkGradients("add", inputs: [a, b]) { a + b }
        checkGradients("sub", inputs: [a, b]) { a - b }
        checkGradients("mul", inputs: [a, b]) { a * b }
        checkGradients("scale+shift", inputs: [a]) { 3 * a + 1.5 }
        checkGradients("sum", inputs: [a]) { a.sum() }
        checkGradients("mean", inputs: [a]) { a.mean() }
        checkGradients("squared", inputs: [a]) { a.squared() }
        checkGradients("reshape", inputs: [a]) { a.reshaped([2, 6]) }
    }

    func testMaskBroadcastsEveryKind() {
        let x = param([5, 12], seed: 3)
        let perHead = param([3], seed: 4)     // 3 heads of width 4
        let perUnit = param([12], seed: 5)    // one per FFN unit / hidden dim
        let perLayer = param([1], seed: 6)    // whole-layer gate
        checkGradients("mask per head", inputs: [x, perHead]) { x.scaledByGroups(perHead) }
        checkGradients("mask per unit", inputs: [x, perUnit]) { x.scaledByGroups(perUnit) }
        checkGradients("mask per layer", inputs: [x, perLayer]) { x.scaledByGroups(perLayer) }
    }

    func testSlicing() {
        let x = param([6, 4], seed: 7)
        checkGradients("gatherRows", inputs: [x]) { x.gatherRows([0, 3, 3, 5]) }
        checkGradients("column", inputs: [x]) { x.column(2) }
    }

    func testEmbeddingAndLinear() {
        let table = param([10, 6], seed: 8)
        checkGradients("embedding", inputs: [table]) { embedding(table, ids: [1, 4, 4, 9, 0]) }
        let x = param([7, 6], seed: 9), w = param([5, 6], seed: 10), b = param([5], seed: 11)
        checkGradients("linear", inputs: [x, w, b]) { linear(x, weight: w, bias: b) }
        checkGradients("linear no bias", inputs: [x, w]) { linear(x, weight: w, bias: nil) }
    }

    func testLargeLinearSplitsAcrossThreads() {
        // Big enough for BLAS.gemm to split rows and columns across workers.
        let x = param([300, 128], seed: 12, std: 0.1), w = param([96, 128], seed: 13, std: 0.1)
        let b = param([96], seed: 14)
        checkGradients("linear large", inputs: [x, w, b], eps: 1e-2, samples: 12) { linear(x, weight: w, bias: b) }
    }

    func testActivations() {
        let x = param([4, 9], seed: 15, std: 2)
        checkGradients("gelu", inputs: [x], eps: 1e-3) { gelu(x) }
        checkGradients("tanh", inputs: [x], eps: 1e-3) { tanh(x) }
        checkGradients("softmax", inputs: [x], eps: 1e-3) { softmax(x) }
    }

    func testLayerNormAndMaskedLayerNorm() {
        let x = param([4, 8], seed: 16), g = param([8], seed: 17), b = param([8], seed: 18)
        checkGradients("layerNorm", inputs: [x, g, b], eps: 1e-3) { layerNorm(x, gamma: g, beta: b, eps: 1e-12) }
        let keep = [true, false, true, true, false, true, true, true]
        checkGradients("maskedLayerNorm", inputs: [x, g, b], eps: 1e-3) {
            layerNorm(x, gamma: g, beta: b, eps: 1e-12, keep: keep)
        }
    }

    func testDropoutWithFixedPattern() {
        let x = param([6, 7], seed: 19)
        checkGradients("dropout", inputs: [x]) {
            var rng = Xoshiro256(seed: 5)
            return dropout(x, p: 0.3, rng: &rng)
        }
    }

    func testAttentionWithPaddingAndDropout() {
        let B = 2, T = 5, H = 3, Dh = 4
        let q = param([B * T, H * Dh], seed: 20), k = param([B * T, H * Dh], seed: 21)
        let v = param([B * T, H * Dh], seed: 22)
        var mask = [Float](repeating: 0, count: B * T)
        mask[8] = -10000; mask[9] = -10000
        checkGradients("attention", inputs: [q, k, v], eps: 1e-3) {
            var rng = Xoshiro256(seed: 1)
            return attention(q: q, k: k, v: v, batch: B, seqLen: T, heads: H, headDim: Dh, additiveMask: mask,
                             rng: &rng)
        }
        checkGradients("attention+dropout", inputs: [q, k, v], eps: 1e-3) {
            var rng = Xoshiro256(seed: 1)
            return attention(q: q, k: k, v: v, batch: B, seqLen: T, heads: H, headDim: Dh, additiveMask: mask,
                             dropout: 0.2, rng: &rng)
        }
    }

    func testLosses() {
        let logits = param([5, 4], seed: 23)
        checkGradients("crossEntropy", inputs: [logits], eps: 1e-3) { crossEntropy(logits, labels: [0, 3, 1, 2, 2]) }
        checkGradients("crossEntropy ignore", inputs: [logits], eps: 1e-3) {
            crossEntropy(logits, labels: [0, 4, 1, 4, 2], ignoreIndex: 4)
        }
        var rng = Xoshiro256(seed: 3)
        let target = Tensor.randomNormal(shape: [5, 4], using: &rng)
        checkGradients("mse", inputs: [logits], eps: 1e-3) { meanSquaredError(logits, target: target) }
        let other = param([5, 4], seed: 24)
        checkGradients("mse pair", inputs: [logits, other], eps: 1e-3) { meanSquaredError(logits, other) }
        checkGradients("kl T=2", inputs: [logits], eps: 1e-3) {
            distillationKL(student: logits, teacher: target, temperature: 2)
        }
    }

    func testGradientsAccumulateAcrossUses() {
        let a = param([3], seed: 25)
        let y = (a * a + a).sum()
        y.backward()
        for i in 0..<3 { XCTAssertEqual(a.grad!.scalars[i], 2 * a.value.scalars[i] + 1, accuracy: 1e-5) }
    }

    func testNoGraphWithoutGradients() {
        let a = param([3], seed: 26)
        let y = withoutGradients { (a * a).sum() }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertTrue((a * a).sum().requiresGrad)
    }
}
