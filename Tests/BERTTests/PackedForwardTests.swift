import XCTest
@testable import BERT
import Tensor

/// A forward pass on packed tokens (`ForwardMode.packsTokens`) against the same pass on the padded batch: logits
/// and every gradient (parameters and all five mask families) agree to rounding, dropout on.
final class PackedForwardTests: XCTestCase {
    static let config = BertConfig(vocabSize: 40, hiddenSize: 24, numHiddenLayers: 3, numAttentionHeads: 4,
                                   intermediateSize: 20, maxPositionEmbeddings: 16, initializerRange: 0.2)

    /// Four sequences of lengths 9, 4, 1 and 6 padded to 9, the first a pair (token types 0 then 1).
    static func batch() -> BertBatch {
        var rng = Xoshiro256(seed: 5)
        let T = 9, lengths = [9, 4, 1, 6]
        var ids: [Int] = [], mask: [Int] = [], types: [Int] = []
        for len in lengths {
            for t in 0..<T {
                ids.append(t < len ? 1 + Int(rng.next() % 39) : 0)
                mask.append(t < len ? 1 : 0)
                types.append(len == T && t >= 5 ? 1 : 0)
            }
        }
        return BertBatch(batch: lengths.count, seqLen: T, inputIds: ids, attentionMask: mask, tokenTypeIds: types)
    }

    static func masks(layers: Int, seed: UInt64) -> MaskSet {
        var rng = Xoshiro256(seed: seed)
        func z(_ n: Int) -> Variable {
            Variable(Tensor.randomUniform(shape: [n], low: 0.3, high: 1, using: &rng), requiresGrad: true)
        }
        var m = MaskSet(layerCount: layers)
        m.hidden = z(24)
        for l in 0..<layers {
            m.heads[l] = z(4)
            m.attentionLayers[l] = z(1)
            m.intermediate[l] = z(20)
            m.ffnLayers[l] = z(1)
        }
        return m
    }

    func testPackedPassGivesThePaddedLogitsAndGradients() throws {
        for task in [TaskHeadKind.classification(labels: 3), .regression] {
            var results: [(logits: Tensor, grads: [Tensor], packed: PackedSequences?)] = []
            for packs in [false, true] {
                let model = BertModel.randomlyInitialized(config: Self.config, task: task, seed: 11)
                let masks = Self.masks(layers: 3, seed: 3)
                var mode = ForwardMode(training: true, rng: Xoshiro256(seed: 8), packsTokens: packs)
                let out = model(Self.batch(), masks: masks, mode: &mode)
                let logits = try XCTUnwrap(out.logits)
                var rng = Xoshiro256(seed: 2)
                let weights = Tensor.randomNormal(shape: logits.shape, using: &rng)
                (logits * Variable(weights)).sum().backward()
                let variables = model.namedParameters.map(\.1) + masks.named.map(\.1)
                results.append((logits.value, try variables.map { try XCTUnwrap($0.grad) }, out.packed))
                XCTAssertEqual(out.hiddenStates.first?.shape.first, packs ? 20 : 36, "\(task) hidden-state rows")
            }
            XCTAssertNil(results[0].packed)
            XCTAssertEqual(results[1].packed?.count, 20)
            XCTAssertLessThanOrEqual(results[0].logits.maxAbsDifference(results[1].logits), 1e-5, "\(task) logits")
            for (i, (a, b)) in zip(results[0].grads, results[1].grads).enumerated() {
                let scale = max(1, a.scalars.map(abs).max() ?? 0)
                XCTAssertLessThanOrEqual(a.maxAbsDifference(b) / scale, 1e-5, "\(task) gradient \(i)")
            }
        }
    }

    /// Span heads read every position, and an encoder without a head returns every row: neither packs.
    func testSpanHeadsAndBareEncodersStayPadded() {
        for task: TaskHeadKind? in [.span, nil] {
            let model = BertModel.randomlyInitialized(config: Self.config, task: task, seed: 11)
            var mode = ForwardMode(training: false, rng: Xoshiro256(seed: 8), packsTokens: true)
            let out = model(Self.batch(), mode: &mode)
            XCTAssertNil(out.packed)
            XCTAssertEqual(out.hiddenStates.last?.shape, [36, 24])
        }
    }
}
