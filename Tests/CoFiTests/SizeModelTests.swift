import BERT
import Tensor
import XCTest
import Tensor
@testable import CoFi

/// Size accounting (cofi-spec §3, decision 1): M and per-unit counts, the expected size against a naive
/// quadruple-sum oracle, ŝ at the reference init, gradients against finite differences, and exact sizes.
final class SizeModelTests: XCTestCase {
    typealias S = GateTestSupport

    func testBertBaseCounts() {
        let m = SizeModel(shape: S.bertBase)
        XCTAssertEqual(m.prunableSize, 85_017_600)
        XCTAssertEqual(S.bertBase.attentionPrunableParameters(layer: 0), 2_362_368)
        XCTAssertEqual(S.bertBase.ffnPrunableParameters(layer: 0), 4_722_432)
        XCTAssertEqual(m.parametersPerHead(layer: 0), 196_864)
        XCTAssertEqual(m.parametersPerHead(layer: 0) / 768, 256.333, accuracy: 1e-3)
        XCTAssertEqual(m.parametersPerUnit(layer: 0), 1_537)
        XCTAssertEqual(S.bertBase.encoderParameters, 85_054_464)
        // Reference rule: only the head and FFN-unit families (or hidden, which gates both) add to M.
        XCTAssertEqual(SizeModel(shape: S.bertBase, families: [.head]).prunableSize, 12 * 2_362_368)
        XCTAssertEqual(SizeModel(shape: S.bertBase, families: [.intermediate, .mlp]).prunableSize, 12 * 4_722_432)
        XCTAssertEqual(SizeModel(shape: S.miniLM).prunableSize, 6 * (591_360 + 1_181_568))
    }

    /// P(z ≠ 0) in Double, for oracles whose finite differences must resolve P near 1.
    private static func keepProbabilityDouble(_ a: Float) -> Double {
        let c = 1 / (1 + exp(-(Double(HardConcrete.zeroLogit) - Double(a))))
        return 1 - min(max(c, 1e-6), 1 - 1e-6)
    }

    /// The naive form of the expected size: the sums over (l, h, d) and (l, i, d) written out, in Double.
    private func naiveExpectedSize(_ l0: L0Module) -> Double {
        let shape = l0.shape, d = shape.hiddenSize, m = l0.sizeModel
        func p(_ v: Variable?, _ i: Int) -> Double { v.map { Double(HardConcrete.keepProbability($0.value.scalars[i])) } ?? 1 }
        let hid = (0..<d).map { p(l0.hidden, $0) }
        let prunesHidden = l0.hidden != nil
        var e = 0.0
        for (l, ls) in shape.layers.enumerated() {
            let perHead = m.parametersPerHead(layer: l), perUnit = Double(m.parametersPerUnit(layer: l))
            for h in 0..<ls.heads {
                let g = p(l0.attentionLayers[l], 0) * p(l0.heads[l], h)
                if prunesHidden { for k in 0..<d { e += perHead / Double(d) * hid[k] * g } } else { e += perHead * g }
            }
            for i in 0..<ls.ffnWidth {
                let g = p(l0.ffnLayers[l], 0) * p(l0.intermediate[l], i)
                if prunesHidden { for k in 0..<d { e += 2 * hid[k] * g } } else { e += perUnit * g }
            }
        }
        return e
    }

    func testExpectedSizeMatchesNaiveSums() {
        for families: Set<GateFamily> in [Set(GateFamily.allCases), [.head, .intermediate, .mlp, .headLayer],
                                          [.head, .intermediate], [.hidden, .intermediate]] {
            let l0 = S.spreadModule(S.tiny, seed: 4, families: families)
            let fast = l0.sizeModel.expectedSize(l0), naive = naiveExpectedSize(l0)
            XCTAssertEqual(fast, naive, accuracy: 1e-9 * naive, "\(families)")
            let s = l0.expectedSparsity().value.scalar
            XCTAssertEqual(Double(s), 1 - naive / Double(l0.sizeModel.prunableSize), accuracy: 1e-6)
        }
    }

    /// ŝ at the reference init: 0.117 once clamped (cofi-spec §3); also the raw init and MiniLM.
    func testExpectedSparsityAtReferenceInit() {
        var rng = Xoshiro256(seed: 57)
        let l0 = L0Module(shape: S.bertBase, using: &rng)
        let raw = l0.expectedSparsity().value.scalar
        l0.clampLogAlpha()
        let clamped = l0.expectedSparsity().value.scalar
        // By hand: hidden, heads and layer gates at P(4.605) = 0.99798, FFN units at P(0) = 0.83183.
        let ph = Double(HardConcrete.keepProbability(HardConcrete.logAlphaRange.upperBound))
        let pi = Double(HardConcrete.keepProbability(0))
        let byHand = 1 - 768 * ph * (196_864.0 / 768 * 144 * ph * ph + 2 * 36_864 * ph * pi) / 85_017_600
        print(String(format: "ŝ BERT-base at the reference init: raw (log α 10) %.5f, clamped %.5f (by hand %.5f); naive oracle %.5f",
                     raw, clamped, byHand, 1 - naiveExpectedSize(l0) / 85_017_600))
        XCTAssertEqual(Double(clamped), 0.117, accuracy: 0.001)
        XCTAssertEqual(Double(clamped), byHand, accuracy: 2e-4)  // the init's std 0.01 moves it slightly

        var rng2 = Xoshiro256(seed: 57)
        let mini = L0Module(shape: S.miniLM, using: &rng2)
        mini.clampLogAlpha()
        let sMini = mini.expectedSparsity().value.scalar
        print(String(format: "ŝ MiniLM-L6 at the clamped reference init: %.5f (M = %d)", sMini, mini.sizeModel.prunableSize))
        XCTAssertEqual(Double(sMini), 0.117, accuracy: 0.002)

        // Every gate wide open (P = 1 − 1e-6, three factors: relative 3e-6): with hidden pruning
        // E = 196,864·144 + 2·768·36,864; without it the floored per-unit count 1,537·36,864 — neither is exactly M.
        for g in l0.gates { g.variable.assign(Tensor(repeating: 40, shape: g.variable.shape)) }
        XCTAssertEqual(l0.sizeModel.expectedSize(l0), 28_348_416 + 56_623_104, accuracy: 400)
        let noHidden = S.spreadModule(S.bertBase, seed: 1, families: [.head, .headLayer, .intermediate, .mlp])
        for g in noHidden.gates { g.variable.assign(Tensor(repeating: 40, shape: g.variable.shape)) }
        XCTAssertEqual(noHidden.sizeModel.expectedSize(noHidden), 28_348_416 + 56_659_968, accuracy: 400)
    }

    /// The factored expected size with hidden pruning (all five families), entirely in Double.
    private func doubleExpectedSize(_ l0: L0Module) -> Double {
        func total(_ v: Variable) -> Double { v.value.scalars.reduce(0.0) { $0 + Self.keepProbabilityDouble($1) } }
        let d = Double(l0.shape.hiddenSize)
        var bracket = 0.0
        for l in l0.shape.layers.indices {
            bracket += l0.sizeModel.parametersPerHead(layer: l) / d * total(l0.attentionLayers[l]!) * total(l0.heads[l]!)
                + 2 * total(l0.ffnLayers[l]!) * total(l0.intermediate[l]!)
        }
        return total(l0.hidden!) * bracket
    }

    /// ∂ŝ/∂log α for every family of BERT-base against central differences of the expected size computed in
    /// Double (a Float P(z≠0) near 1 cannot resolve the ±0.01 steps to better than 1e-3).
    func testExpectedSparsityGradientBertBase() {
        for (label, l0) in [("spread", S.spreadModule(S.bertBase, seed: 21)), ("clamped init", { () -> L0Module in
            var rng = Xoshiro256(seed: 57)
            let l0 = L0Module(shape: S.bertBase, using: &rng)
            l0.clampLogAlpha()
            return l0
        }())] {
            let s = l0.expectedSparsity()
            s.backward()
            let M = Double(l0.sizeModel.prunableSize)
            var rng = Xoshiro256(seed: 3)
            var worstByFamily: [GateFamily: Double] = [:]
            for g in l0.gates {
                let v = g.variable, analytic = v.grad!
                let picks = v.value.count <= 4 ? Array(0..<v.value.count) : (0..<4).map { _ in Int(rng.next() % UInt64(v.value.count)) }
                for i in picks {
                    let x = v.value.scalars[i], h: Float = 1e-2
                    v.update { $0.scalars[i] = x + h }
                    let up = 1 - doubleExpectedSize(l0) / M
                    v.update { $0.scalars[i] = x - h }
                    let down = 1 - doubleExpectedSize(l0) / M
                    v.update { $0.scalars[i] = x }
                    let numeric = (up - down) / (Double(x + h) - Double(x - h))
                    let a = Double(analytic.scalars[i])
                    let err = absDifference(numeric, a) / max(abs(a), 1e-30)
                    worstByFamily[g.family] = maxError([worstByFamily[g.family] ?? 0, err])
                    XCTAssertLessThan(err, 1e-4, "\(label) \(v.name!)[\(i)]: analytic \(a) numeric \(numeric)")
                }
            }
            print("∂ŝ/∂log α BERT-base (\(label)) vs finite differences, max relative error per family: "
                  + GateFamily.allCases.map { "\($0.rawValue) \(String(format: "%.1e", worstByFamily[$0] ?? -1))" }
                  .joined(separator: ", "))
        }
    }

    /// The same on a heterogeneous shape through the generic checker, for each family selection.
    func testExpectedSparsityGradientHeterogeneous() {
        for families: Set<GateFamily> in [Set(GateFamily.allCases), [.head, .intermediate, .mlp, .headLayer],
                                          [.hidden, .intermediate]] {
            let l0 = S.spreadModule(S.tiny, seed: 8, families: families)
            GateTestSupport.checkGradients("ŝ tiny \(families.map(\.rawValue).sorted())",
                                           inputs: l0.gates.map(\.variable), tolerance: 2e-3) { l0.expectedSparsity() }
        }
    }

    // MARK: Exact size

    func testExactSizeOfUnprunedBertBase() {
        var masks = MaskSet(layerCount: 12)
        masks.hidden = Variable(Tensor(repeating: 1, shape: [768]))
        for l in 0..<12 {
            masks.heads[l] = Variable(Tensor(repeating: 0.996, shape: [12]))
            masks.intermediate[l] = Variable(Tensor(repeating: 0.5, shape: [3072]))
            masks.attentionLayers[l] = Variable(Tensor(repeating: 0.996, shape: [1]))
            masks.ffnLayers[l] = Variable(Tensor(repeating: 0.996, shape: [1]))
        }
        let e = SizeModel(shape: S.bertBase).exactSize(of: masks)
        XCTAssertEqual(e.remaining, 256 * 144 * 768 + 2 * 36_864 * 768)
        XCTAssertEqual(e.referenceSparsity, 0.001, accuracy: 0.0001)  // the reference's count ignores biases
        XCTAssertEqual(e.sparsity, 0)
        XCTAssertEqual(e.prunableRemaining, 85_017_600)
        XCTAssertEqual(e.encoderParameters, 85_054_464)
        XCTAssertEqual(e.encoderSparsity, 0)
        XCTAssertEqual(e.compactShape, S.bertBase)
        XCTAssertEqual(SizeModel(shape: S.bertBase).exactSize(of: MaskSet(layerCount: 12)), e)  // no masks: all kept
    }

    func testExactSizeOfCutMasks() {
        let shape = S.bertBase
        var masks = MaskSet(layerCount: 12)
        masks.hidden = Variable(Tensor(shape: [768], scalars: (0..<768).map { $0 < 4 ? 0 : 1 }))
        for l in 0..<12 {
            masks.heads[l] = Variable(Tensor(repeating: 0.9, shape: [12]))
            masks.intermediate[l] = Variable(Tensor(repeating: 0.7, shape: [3072]))
            masks.attentionLayers[l] = Variable(Tensor(repeating: 0.99, shape: [1]))
            masks.ffnLayers[l] = Variable(Tensor(repeating: 0.99, shape: [1]))
        }
        masks.attentionLayers[0] = Variable(Tensor(zeros: [1]))                                // layer 0: no MHA
        masks.heads[1] = Variable(Tensor(shape: [12], scalars: (0..<12).map { $0 % 2 == 0 ? 0 : 0.8 }))  // 6 heads
        masks.ffnLayers[2] = Variable(Tensor(zeros: [1]))                                      // layer 2: no FFN
        masks.intermediate[3] = Variable(Tensor(shape: [3072], scalars: (0..<3072).map { $0 < 1000 ? 0 : 0.6 }))
        masks.heads[4] = Variable(Tensor(zeros: [12]))                                         // all heads of 4 off
        let e = SizeModel(shape: shape).exactSize(of: masks)
        let heads = [0, 6, 12, 12, 0] + Array(repeating: 12, count: 7)
        let units = [3072, 3072, 0, 2072] + Array(repeating: 3072, count: 8)
        XCTAssertEqual(e.compactShape.layers, zip(heads, units).map { LayerShape(heads: $0, ffnWidth: $1) })
        XCTAssertEqual(e.compactShape.hiddenSize, 764)
        XCTAssertEqual(e.remaining, 256 * heads.reduce(0, +) * 764 + 2 * units.reduce(0, +) * 764)
        // Real count, biases and LayerNorms included, only for the sublayers that remain.
        let d = 764
        var real = 0
        for (h, u) in zip(heads, units) {
            if h > 0 { real += 4 * d * h * 64 + 3 * h * 64 + d + 2 * d }
            if u > 0 { real += 2 * d * u + u + d + 2 * d }
        }
        XCTAssertEqual(e.encoderParameters, real)
        var prunable = 0
        for (h, u) in zip(heads, units) {
            if h > 0 { prunable += 4 * d * h * 64 + 3 * h * 64 + d }
            if u > 0 { prunable += 2 * d * u + u + d }
        }
        XCTAssertEqual(e.prunableRemaining, prunable)
        XCTAssertEqual(e.sparsity, 1 - Double(prunable) / 85_017_600, accuracy: 1e-12)
        XCTAssertEqual(e.compactShape.prunableParameters, prunable)
        print(String(format: "exact size of the cut masks: remaining %d (sparsity %.4f), encoder params %d of %d (%.4f)",
                     e.remaining, e.referenceSparsity, e.encoderParameters, e.denseEncoderParameters, e.encoderSparsity))
    }
}
