import BERT
import Tensor
import XCTest
@testable import CoFi

/// The expected latency under the hard-concrete gates (`LatencyModel`): exact against a brute-force enumeration of
/// every gate outcome, gradients against finite differences, the deterministic structure's prediction, and the
/// latency target's checks.
final class LatencyModelTests: XCTestCase {
    typealias S = GateTestSupport

    /// A small shape whose every gate outcome can be enumerated: 4 head, 4 unit, 2 hidden, 3 + 3 layer gates.
    static let small = BertShape(vocabSize: 50, hiddenSize: 2, headDim: 4, maxPositions: 16, typeVocabSize: 2,
                                 layers: [LayerShape(heads: 2, ffnWidth: 2), LayerShape(heads: 0, ffnWidth: 1),
                                          LayerShape(heads: 1, ffnWidth: 0), LayerShape(heads: 1, ffnWidth: 1)])

    /// A profile with distinct, positive coefficients for every term (so each term is seen by the checks).
    static func profile(pooled: Bool, model: BertShape = small) -> LatencyProfile {
        typealias B = LatencyProfile.Bilinear
        return LatencyProfile(
            conditions: .init(batch: 1, sequenceLength: 128, threads: 2, processor: "test", kernels: "generic"),
            model: model, pooled: pooled, base: .init(c0: 0.31, cD: 0.017),
            attention: B(c0: 0.23, cD: 0.011, cN: 0.13, cND: 0.0071), lastAttention: B(c0: 0.19, cD: 0.005, cN: 0.07, cND: 0.0033),
            ffn: B(c0: 0.05, cD: 0.013, cN: 0.0021, cND: 0.00093), clsFFN: B(c0: 0.029, cD: 0.0007, cN: 0.00011, cND: 0.00004))
    }

    /// E[latency] by summing `profile.predict` over every outcome of every gate, weighted by its probability.
    func bruteForce(_ l0: L0Module, _ p: LatencyProfile) -> Double {
        let gates = l0.gates
        var probs: [Double] = []
        var owner: [(family: GateFamily, layer: Int?, index: Int)] = []
        for g in gates {
            for (i, a) in g.variable.value.scalars.enumerated() {
                probs.append(Double(HardConcrete.keepProbability(a)))
                owner.append((g.family, g.layer, i))
            }
        }
        let n = probs.count
        precondition(n <= 20)
        let L = l0.shape.layers.count
        var total = 0.0
        for outcome in 0..<(1 << n) {
            var w = 1.0
            var hidden = 0
            var heads = [Int](repeating: 0, count: L), units = heads
            var mha = [Bool](repeating: true, count: L), ffn = mha
            for k in 0..<n {
                let on = outcome & (1 << k) != 0
                w *= on ? probs[k] : 1 - probs[k]
                guard on else {
                    switch owner[k].family {
                    case .headLayer: mha[owner[k].layer!] = false
                    case .mlp: ffn[owner[k].layer!] = false
                    default: break
                    }
                    continue
                }
                switch owner[k].family {
                case .hidden: hidden += 1
                case .head: heads[owner[k].layer!] += 1
                case .intermediate: units[owner[k].layer!] += 1
                default: break
                }
            }
            let h = (0..<L).map { mha[$0] ? heads[$0] : 0 }, u = (0..<L).map { ffn[$0] ? units[$0] : 0 }
            total += w * p.predict(hidden: hidden, heads: h, ffnUnits: u)
        }
        return total
    }

    func testExpectedLatencyIsExactAgainstEnumeration() {
        for pooled in [true, false] {
            for seed: UInt64 in [1, 2, 3] {
                let l0 = S.spreadModule(Self.small, seed: seed)
                let p = Self.profile(pooled: pooled)
                let model = LatencyModel(profile: p, shape: Self.small)
                let expected = bruteForce(l0, p)
                XCTAssertEqual(model.expectedLatency(l0), expected, accuracy: 1e-9 * expected, "pooled \(pooled) seed \(seed)")
                XCTAssertEqual(model.expectedValue(l0), 1 - expected / p.predict(Self.small), accuracy: 1e-9)
            }
        }
    }

    func testGradientsMatchFiniteDifferences() {
        for pooled in [true, false] {
            for shape in [Self.small, S.tiny] {
                let l0 = S.spreadModule(shape, seed: 7)
                let model = LatencyModel(profile: Self.profile(pooled: pooled, model: shape), shape: shape)
                S.checkGradients("latency pooled \(pooled) \(shape.layers.count) layers", inputs: l0.gates.map(\.variable),
                                 eps: 1e-2, tolerance: 5e-3) { model.expectedVariable(l0) }
            }
        }
        // Families not pruned contribute constants.
        let l0 = S.spreadModule(S.tiny, seed: 9, families: [.head, .intermediate])
        let model = LatencyModel(profile: Self.profile(pooled: true, model: S.tiny), shape: S.tiny, families: [.head, .intermediate])
        S.checkGradients("latency heads + units only", inputs: l0.gates.map(\.variable)) { model.expectedVariable(l0) }
    }

    func testExactValueIsThePredictionOfTheCutShape() {
        let l0 = S.spreadModule(S.tiny, seed: 4)
        let p = Self.profile(pooled: true, model: S.tiny)
        let model = LatencyModel(profile: p, shape: S.tiny)
        let masks = l0.deterministicMasks()
        let cut = l0.sizeModel.exactSize(of: masks).compactShape
        XCTAssertEqual(model.exactLatency(of: masks, in: l0), p.predict(cut))
        XCTAssertEqual(model.exactValue(of: masks, in: l0), 1 - p.predict(cut) / p.predict(S.tiny), accuracy: 1e-12)
        // Everything kept: the dense prediction, reduction 0.
        var rng = Xoshiro256(seed: 5)
        let open = L0Module(shape: S.tiny, using: &rng)
        for g in open.gates { g.variable.assign(Tensor(repeating: 4.6, shape: g.variable.shape)) }
        XCTAssertEqual(model.exactValue(of: open.deterministicMasks(), in: open), 0, accuracy: 1e-12)
    }

    func testLatencyTargetChecksTheReachableRange() throws {
        let p = Self.profile(pooled: true, model: S.miniLM)
        let dense = p.predict(S.miniLM)
        let floor = p.reachableRange(of: S.miniLM).lowerBound
        let target = try LatencyTarget(milliseconds: [dense / 2, dense / 4], profile: p, student: S.miniLM)
        XCTAssertEqual(Double(target.reductions[0]), 0.5, accuracy: 1e-6)
        XCTAssertEqual(Double(target.reductions[1]), 0.75, accuracy: 1e-6)
        for bad in [dense * 1.01, floor * 0.9, 0, -1] {
            XCTAssertThrowsError(try LatencyTarget(milliseconds: [bad], profile: p, student: S.miniLM)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("cannot be reached") || text.contains("positive"), text)
                if bad > 0 { XCTAssertTrue(text.contains(String(format: "%.3f", floor)), text) }
            }
        }
    }

    func testLadderRampHoldsAtEveryRung() {
        let ramp = SparsityTarget(target: 0.95, warmupSteps: 600, start: 0.1, shape: .cubic, rungs: [0.6, 0.75, 0.9], holdSteps: 50)
        XCTAssertEqual(ramp.movingSteps, 450)
        let values = (0...700).map { ramp.value(atPruningStep: $0) }
        // Monotone, continuous to the ramp's own step, ends at the target, and holds 50+ steps at each rung.
        for (a, b) in zip(values, values.dropFirst()) { XCTAssertGreaterThanOrEqual(b, a) }
        XCTAssertEqual(values[600], 0.95)
        XCTAssertEqual(values.last, 0.95)
        for rung: Float in [0.6, 0.75, 0.9] {
            XCTAssertGreaterThanOrEqual(values.filter { $0 == rung }.count, 50, "rung \(rung)")
        }
        XCTAssertLessThan(values[500], 0.95)
        // Without rungs the ramp is unchanged.
        let plain = SparsityTarget(target: 0.95, warmupSteps: 600, start: 0.1, shape: .cubic)
        XCTAssertEqual(plain.value(atPruningStep: 300), plain.value(atProgress: 0.5))
        XCTAssertEqual(ramp.progress(atValue: ramp.value(atProgress: 0.3)), 0.3, accuracy: 1e-5)
    }
}
