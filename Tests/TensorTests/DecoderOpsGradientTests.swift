import XCTest
@testable import Tensor

/// The decoder-LM ops (RMSNorm, SiLU, rotary embeddings, causal grouped-query attention, the shifted LM loss)
/// against central finite differences, and their forward values against direct formulas.
final class DecoderOpsGradientTests: XCTestCase {
    func testRMSNorm() {
        let x = param([5, 8], seed: 31), w = param([8], seed: 32)
        checkGradients("rmsNorm", inputs: [x, w], eps: 1e-3) { rmsNorm(x, weight: w, eps: 1e-5) }
        // y = w · x / rms(x), row by row.
        let y = rmsNorm(x, weight: w, eps: 1e-5).value
        for n in 0..<5 {
            let row = (0..<8).map { x.value.scalars[n * 8 + $0] }
            let rms = (row.map { Double($0 * $0) }.reduce(0, +) / 8 + 1e-5).squareRoot()
            for j in 0..<8 {
                XCTAssertEqual(Double(y.scalars[n * 8 + j]), Double(w.value.scalars[j]) * Double(row[j]) / rms, accuracy: 1e-5)
            }
        }
    }

    /// The masked RMSNorm (a hidden-dimension mask): with x zero outside 5 of 8 dims and the mean over 5, it
    /// equals the plain RMSNorm of the 5 kept columns; and its gradients (x and w) by finite differences.
    func testRMSNormOverKeptWidth() {
        let kept = [0, 2, 3, 5, 7]
        let full = param([4, 8], seed: 41), w = param([8], seed: 42)
        var masked = [Float](repeating: 0, count: 32)
        for n in 0..<4 { for j in kept { masked[n * 8 + j] = full.value.scalars[n * 8 + j] } }
        let x = Variable(Tensor(shape: [4, 8], scalars: masked), requiresGrad: true)
        checkGradients("rmsNorm kept", inputs: [x, w], eps: 1e-3) { rmsNorm(x, weight: w, eps: 1e-5, keptWidth: 5) }
        let y = rmsNorm(x, weight: w, eps: 1e-5, keptWidth: 5).value.scalars
        let cut = Variable(Tensor(shape: [4, 5], scalars: (0..<4).flatMap { n in kept.map { masked[n * 8 + $0] } }))
        let wCut = Variable(Tensor(shape: [5], scalars: kept.map { w.value.scalars[$0] }))
        let yCut = rmsNorm(cut, weight: wCut, eps: 1e-5).value.scalars
        for n in 0..<4 {
            for (i, j) in kept.enumerated() { XCTAssertEqual(y[n * 8 + j], yCut[n * 5 + i], accuracy: 1e-6) }
            for j in 0..<8 where !kept.contains(j) { XCTAssertEqual(y[n * 8 + j], 0) }
        }
        // Dividing by the full width instead gives another result: the comparison can fail.
        let plain = rmsNorm(x, weight: w, eps: 1e-5).value.scalars
        XCTAssertGreaterThan(abs(plain[0] - y[0]), 1e-3)
    }

    func testSiLU() {
        let x = param([4, 9], seed: 33, std: 2)
        checkGradients("silu", inputs: [x], eps: 1e-3) { silu(x) }
        XCTAssertEqual(silu(Variable(Tensor(shape: [1], scalars: [1]))).value.scalar, 1 / (1 + 1 / Float(M_E)), accuracy: 1e-6)
    }

    func testRotaryRotatesHalvesAndIsOrthogonal() {
        let table = RotaryTable(headDim: 8, theta: 10_000, positions: 16)
        let x = param([4, 16], seed: 34)   // 2 heads of 8
        let positions = [0, 3, 7, 15]
        checkGradients("rotary", inputs: [x], eps: 1e-3) { rotary(x, positions: positions, table: table) }
        let y = rotary(x, positions: positions, table: table).value
        // Row 0 (position 0) is unchanged; row 1, head 1, pair i = 1: angle 3 · 10000^(−2/8).
        XCTAssertEqual(Array(y.scalars[0..<16]), Array(x.value.scalars[0..<16]))
        let angle = 3 * Foundation.pow(10_000.0, -2.0 / 8)
        let a = Double(x.value.scalars[16 + 8 + 1]), b = Double(x.value.scalars[16 + 8 + 5])
        XCTAssertEqual(Double(y.scalars[16 + 8 + 1]), a * Foundation.cos(angle) - b * Foundation.sin(angle), accuracy: 1e-5)
        XCTAssertEqual(Double(y.scalars[16 + 8 + 5]), b * Foundation.cos(angle) + a * Foundation.sin(angle), accuracy: 1e-5)
        // Norms are kept (a rotation).
        for n in 0..<4 {
            let before = (0..<16).map { x.value.scalars[n * 16 + $0] }.map { $0 * $0 }.reduce(0, +)
            let after = (0..<16).map { y.scalars[n * 16 + $0] }.map { $0 * $0 }.reduce(0, +)
            XCTAssertEqual(before, after, accuracy: 1e-4)
        }
    }

    func testCausalGroupedQueryAttentionWithPadding() {
        let B = 2, T = 5, Hkv = 2, G = 2, Dh = 4
        let q = param([B * T, Hkv * G * Dh], seed: 35), k = param([B * T, Hkv * Dh], seed: 36)
        let v = param([B * T, Hkv * Dh], seed: 37)
        // Sequence 0 right-padded (4 real), sequence 1 left-padded (3 real): its first two queries see no key.
        var real = [Bool](repeating: true, count: B * T)
        real[4] = false; real[5] = false; real[6] = false
        checkGradients("causalAttention", inputs: [q, k, v], eps: 1e-3) {
            causalAttention(q: q, k: k, v: v, batch: B, seqLen: T, kvHeads: Hkv, headDim: Dh, keyMask: real)
        }
        let out = causalAttention(q: q, k: k, v: v, batch: B, seqLen: T, kvHeads: Hkv, headDim: Dh, keyMask: real).value
        // A query that sees no key gets zeros; query 0 of sequence 0 sees only key 0: its output is v_0 of its group.
        let W = Hkv * G * Dh
        XCTAssertEqual(Array(out.scalars[(5 * W)..<(7 * W)]), [Float](repeating: 0, count: 2 * W))
        for h in 0..<(Hkv * G) {
            for d in 0..<Dh {
                XCTAssertEqual(out.scalars[h * Dh + d], v.value.scalars[(h / G) * Dh + d], accuracy: 1e-6)
            }
        }
        // Without padding, query t never depends on a later key: changing key 4 leaves rows 0…3 unchanged.
        let before = causalAttention(q: q, k: k, v: v, batch: B, seqLen: T, kvHeads: Hkv, headDim: Dh, keyMask: nil).value
        var k2 = k.value
        for j in 0..<(Hkv * Dh) { k2.scalars[4 * Hkv * Dh + j] += 1 }
        let after = causalAttention(q: q, k: Variable(k2), v: v, batch: B, seqLen: T, kvHeads: Hkv, headDim: Dh,
                                    keyMask: nil).value
        XCTAssertEqual(Array(before.scalars[0..<(4 * W)]), Array(after.scalars[0..<(4 * W)]))
        XCTAssertNotEqual(Array(before.scalars[(4 * W)..<(5 * W)]), Array(after.scalars[(4 * W)..<(5 * W)]))
    }

    func testLanguageModelLossShiftsAndSkipsPadding() {
        let B = 2, T = 4, V = 6
        let logits = param([B * T, V], seed: 38)
        let tokens = [1, 2, 3, 4, 0, 5, 2, 0]
        let counted = [true, true, true, true, false, true, true, false]
        checkGradients("languageModelLoss", inputs: [logits], eps: 1e-3) {
            languageModelLoss(logits, tokens: tokens, counted: counted, batch: B, seqLen: T)
        }
        // Cross-entropy with the counted token at t + 1 of the same sequence as the target: rows 0, 1, 2 → 2, 3, 4;
        // row 4 (padding itself) → 5, as in transformers; row 5 → 2; row 6's next token is padding; rows 3, 7 are last.
        let loss = languageModelLoss(logits, tokens: tokens, counted: counted, batch: B, seqLen: T).value.scalar
        let expected = crossEntropy(logits, labels: [2, 3, 4, -1, 5, 2, -1, -1], ignoreIndex: -1).value.scalar
        XCTAssertEqual(loss, expected)
    }
}
