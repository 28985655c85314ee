import Tensor
import XCTest
@testable import CoFi

/// `L0Module`: gates per family and layer for any shape, initialisation and draw order, sampling, clamp,
/// deterministic masks, names and state.
final class L0ModuleTests: XCTestCase {
    typealias S = GateTestSupport

    func testGatesOfBertBase() {
        var rng = Xoshiro256(seed: 57)
        let l0 = L0Module(shape: S.bertBase, using: &rng)
        XCTAssertEqual(l0.heads.compactMap { $0?.shape }, Array(repeating: [12], count: 12))
        XCTAssertEqual(l0.intermediate.compactMap { $0?.shape }, Array(repeating: [3072], count: 12))
        XCTAssertEqual(l0.attentionLayers.compactMap { $0?.shape }, Array(repeating: [1], count: 12))
        XCTAssertEqual(l0.ffnLayers.compactMap { $0?.shape }, Array(repeating: [1], count: 12))
        XCTAssertEqual(l0.hidden?.shape, [768])
        let names = l0.parameters.map(\.0)
        XCTAssertEqual(names.count, 12 * 4 + 1)
        XCTAssertEqual(names.first, "l0.layer.0.head_log_alpha")
        XCTAssertTrue(names.contains("l0.layer.3.head_layer_log_alpha"))
        XCTAssertTrue(names.contains("l0.layer.11.intermediate_log_alpha"))
        XCTAssertTrue(names.contains("l0.layer.5.mlp_log_alpha"))
        XCTAssertTrue(names.contains("l0.hidden_log_alpha"))
        XCTAssertEqual(l0.parameters.reduce(0) { $0 + $1.1.value.count }, 144 + 36_864 + 768 + 24)
        XCTAssertTrue(l0.parameters.allSatisfy { $0.1.requiresGrad && $0.1.name == $0.0 })
    }

    /// Heterogeneous shape: a layer without heads has no head / head_layer gate, one without FFN no
    /// intermediate / mlp gate.
    func testHeterogeneousShape() {
        var rng = Xoshiro256(seed: 1)
        let l0 = L0Module(shape: S.tiny, using: &rng)
        XCTAssertEqual(l0.heads.map { $0?.shape }, [[2], nil, [3]])
        XCTAssertEqual(l0.attentionLayers.map { $0?.shape }, [[1], nil, [1]])
        XCTAssertEqual(l0.intermediate.map { $0?.shape }, [[6], [5], nil])
        XCTAssertEqual(l0.ffnLayers.map { $0?.shape }, [[1], [1], nil])
        let z = l0.sample(using: &rng)
        XCTAssertEqual(z.heads.map { $0?.shape }, [[2], nil, [3]])
        XCTAssertEqual(z.intermediate.map { $0?.shape }, [[6], [5], nil])
        XCTAssertEqual(z.hidden?.shape, [8])
        let d = l0.deterministicMasks()
        XCTAssertEqual(d.ffnLayers.map { $0?.shape }, [[1], [1], nil])
    }

    /// log α ~ normal(mean, 0.01): mean 10 for heads, hidden and both layer gates, 0 (= ln(1−0.5) − ln 0.5) for
    /// FFN units — the reference's "typo"; drawn family by family in creation order.
    func testInitialisationMeansAndDrawOrder() {
        var rng = Xoshiro256(seed: 57)
        let l0 = L0Module(shape: S.bertBase, using: &rng)
        func stats(_ vs: [Variable?]) -> (mean: Double, std: Double) {
            let x = vs.compactMap { $0 }.flatMap { $0.value.scalars }.map(Double.init)
            let m = x.reduce(0, +) / Double(x.count)
            return (m, (x.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(x.count)).squareRoot())
        }
        for (name, vs, mean) in [("head", l0.heads, 10.0), ("intermediate", l0.intermediate, 0.0),
                                 ("hidden", [l0.hidden], 10.0), ("mlp", l0.ffnLayers, 10.0),
                                 ("head_layer", l0.attentionLayers, 10.0)] {
            let s = stats(vs)
            XCTAssertEqual(s.mean, mean, accuracy: 0.01, name)
            XCTAssertEqual(s.std, 0.01, accuracy: name == "mlp" || name == "head_layer" ? 0.006 : 0.002, name)
        }
        // Draw order: head (layer by layer), intermediate, hidden, mlp, head_layer.
        var replay = Xoshiro256(seed: 57)
        var expected: [Tensor] = []
        for _ in 0..<12 { expected.append(Tensor.randomNormal(shape: [12], mean: 10, std: 0.01, using: &replay)) }
        for _ in 0..<12 { expected.append(Tensor.randomNormal(shape: [3072], mean: 0, std: 0.01, using: &replay)) }
        expected.append(Tensor.randomNormal(shape: [768], mean: 10, std: 0.01, using: &replay))
        for _ in 0..<24 { expected.append(Tensor.randomNormal(shape: [1], mean: 10, std: 0.01, using: &replay)) }
        XCTAssertEqual(l0.gates.map(\.variable.value), expected)
        XCTAssertEqual(l0.gates.map(\.family), Array(repeating: .head, count: 12) + Array(repeating: .intermediate, count: 12)
                       + [.hidden] + Array(repeating: .mlp, count: 12) + Array(repeating: .headLayer, count: 12))
    }

    func testConfigurableMeansAndFamilies() throws {
        var rng = Xoshiro256(seed: 2)
        var means = L0Configuration.referenceInitialMeans
        means[.intermediate] = 10
        means[.head] = L0Configuration.logAlpha(dropRate: 0.1)
        let l0 = L0Module(shape: S.tiny, configuration: L0Configuration(initialMeans: means), using: &rng)
        XCTAssertEqual(l0.intermediate[0]!.value.scalars[0], 10, accuracy: 0.05)
        XCTAssertEqual(l0.heads[0]!.value.scalars[0], Float(log(9.0)), accuracy: 0.05)

        XCTAssertEqual(try GateFamily.families(pruningType: "structured_heads+structured_mlp+hidden+layer"),
                       Set(GateFamily.allCases))
        XCTAssertEqual(try GateFamily.families(pruningType: "structured_heads+layer"), [.head, .mlp, .headLayer])
        XCTAssertThrowsError(try GateFamily.families(pruningType: "structured_heads+blocks")) { e in
            XCTAssertTrue("\(e)".contains("blocks"), "\(e)")
        }
        let onlyHeads = L0Module(shape: S.bertBase, configuration: try L0Configuration(pruningType: "structured_heads"),
                                 using: &rng)
        XCTAssertNil(onlyHeads.hidden)
        XCTAssertTrue(onlyHeads.intermediate.allSatisfy { $0 == nil } && onlyHeads.ffnLayers.allSatisfy { $0 == nil })
        let z = onlyHeads.sample(using: &rng)
        XCTAssertNil(z.hidden)
        XCTAssertEqual(z.named.count, 12)
    }

    /// One uniform per gate per call, drawn in creation order; z carries the gradient into log α.
    func testSampleDrawsOneNoisePerGateInCreationOrder() {
        var rng = Xoshiro256(seed: 5)
        let l0 = S.spreadModule(S.tiny, seed: 5)
        let z = l0.sample(using: &rng)
        var replay = Xoshiro256(seed: 5)
        var expected: [String: Tensor] = [:]
        for g in l0.gates {
            let u = HardConcrete.noise(count: g.variable.value.count, using: &replay)
            expected[g.variable.name!] = HardConcrete.sample(logAlpha: g.variable, noise: u).value
        }
        XCTAssertEqual(rng.next(), replay.next())  // the same number of draws
        func key(_ maskName: String) -> String { "l0." + maskName.dropLast(2) + "_log_alpha" }  // layer.0.head_z
        for (name, v) in z.named {
            XCTAssertEqual(v.value, expected[key(name)], name)
        }
        XCTAssertEqual(z.named.count, l0.gates.count)
        // Gradients reach every log α.
        var total: Variable? = nil
        for (_, v) in z.named { total = total.map { $0 + v.sum() } ?? v.sum() }
        total!.backward()
        for g in l0.gates { XCTAssertNotNil(g.variable.grad, g.variable.name!) }
    }

    func testClampLogAlpha() {
        var rng = Xoshiro256(seed: 57)
        let l0 = L0Module(shape: S.tiny, using: &rng)
        l0.intermediate[1]!.update { $0.scalars[0] = -30 }
        l0.clampLogAlpha()
        let r = HardConcrete.logAlphaRange
        XCTAssertEqual(l0.heads[0]!.value.scalars[0], r.upperBound)
        XCTAssertEqual(l0.hidden!.value.scalars[3], r.upperBound)
        XCTAssertEqual(l0.intermediate[1]!.value.scalars[0], r.lowerBound)
        XCTAssertEqual(l0.intermediate[0]!.value.scalars[0], 0, accuracy: 0.05)  // inside the range: unchanged
    }

    /// Deterministic masks: hidden binary, heads / units / layer gates soft, per mask vector.
    func testDeterministicMasks() {
        var rng = Xoshiro256(seed: 57)
        let l0 = L0Module(shape: S.bertBase, using: &rng)
        l0.clampLogAlpha()
        let d = l0.deterministicMasks()
        // Even at the clamped init 768·(1 − 0.99798) = 1.55 hidden dims are expected to be zero → 2 are cut (the
        // reference does the same); the rest are 1, not 0.996.
        let hid = d.hidden!.value.scalars
        XCTAssertEqual(hid.filter { $0 == 0 }.count, 2)
        XCTAssertTrue(hid.allSatisfy { $0 == 0 || $0 == 1 })
        // 12·0.002 = 0.02 expected zero heads per layer → none; kept heads and layer gates hold 0.996.
        XCTAssertTrue(d.heads[0]!.value.scalars.allSatisfy { abs($0 - 0.99603) < 1e-4 })
        XCTAssertEqual(d.attentionLayers[0]!.value.scalars[0], 0.99603, accuracy: 1e-4)
        XCTAssertEqual(d.ffnLayers[0]!.value.scalars[0], 0.99603, accuracy: 1e-4)
        // FFN units at log α ≈ 0: P(z≠0) = 0.832 → 3072·0.168 ≈ 517 zeros per layer, the others ≈ 0.5.
        let units = d.intermediate[0]!.value.scalars
        let zeros = units.filter { $0 == 0 }.count
        XCTAssertEqual(zeros, HardConcrete.deterministicZeroCount(logAlpha: l0.intermediate[0]!.value.scalars))
        XCTAssertEqual(Double(zeros), 3072 * 0.1682, accuracy: 2)
        XCTAssertTrue(units.filter { $0 != 0 }.allSatisfy { abs($0 - 0.5) < 0.02 })
        XCTAssertFalse(d.named.contains { $0.1.requiresGrad })

        // Push 10 hidden dims to the lower clamp: 758·0.99798 + 10·0.04713 = 756.94 expected kept → 11 zeros,
        // the 10 lowest first.
        l0.hidden!.update { for i in 0..<10 { $0.scalars[i] = HardConcrete.logAlphaRange.lowerBound } }
        let h = l0.deterministicMasks().hidden!.value.scalars
        XCTAssertEqual(h.filter { $0 == 0 }.count, 11)
        XCTAssertEqual(Array(h.prefix(10)), Array(repeating: 0, count: 10))
        XCTAssertTrue(h.allSatisfy { $0 == 0 || $0 == 1 })
    }

    func testStateRoundTripAndErrors() throws {
        var rng = Xoshiro256(seed: 9)
        let a = S.spreadModule(S.tiny, seed: 9)
        let b = L0Module(shape: S.tiny, using: &rng)
        try b.load(state: a.state)
        XCTAssertEqual(b.gates.map(\.variable.value), a.gates.map(\.variable.value))
        XCTAssertEqual(Set(a.state.keys), Set(a.parameters.map(\.0)))

        var missing = a.state
        missing["l0.layer.0.head_log_alpha"] = nil
        XCTAssertThrowsError(try b.load(state: missing)) { XCTAssertTrue("\($0)".contains("l0.layer.0.head_log_alpha")) }
        var wrong = a.state
        wrong["l0.hidden_log_alpha"] = Tensor(zeros: [7])
        XCTAssertThrowsError(try b.load(state: wrong)) { XCTAssertTrue("\($0)".contains("[7]"), "\($0)") }
        var foreign = a.state
        foreign["l0.layer.1.head_log_alpha"] = Tensor(zeros: [2])  // layer 1 has no heads in this shape
        XCTAssertThrowsError(try b.load(state: foreign)) { XCTAssertTrue("\($0)".contains("layer.1.head"), "\($0)") }
    }
}
