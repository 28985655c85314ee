import Foundation
import Tensor
import XCTest
@testable import Llama

/// Sheared-LLaMA's masks on the training path: the masked model against the cut one (`compacted(masks:)`), with
/// every family present and soft values folded in; gradients reach every mask; a layer value of 0 is the identity.
final class LlamaMasksTests: XCTestCase {
    static let config = LlamaConfig(vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 4,
                                    numAttentionHeads: 6, numKeyValueHeads: 3, headDim: 4, rmsNormEps: 1e-5,
                                    ropeTheta: 10_000, maxPositionEmbeddings: 32, tieWordEmbeddings: true)

    static let batch = LlamaBatch(batch: 2, seqLen: 7, tokenIds: (0..<14).map { ($0 * 11 + 3) % 40 },
                                  attentionMask: [1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1],
                                  positions: [0, 1, 2, 3, 4, 5, 0, 0, 0, 1, 2, 3, 4, 5])

    /// Soft values with exact zeros: hidden dims 1, 5, 6, 12 cut; layer 2 off; layer 0 keeps groups 0 and 2, layer 3
    /// group 1 only; layer l's FFN loses every (l + 2)-th unit, layer 1 all of them.
    static func masks(layerCount: Int, hidden: Int, groups: Int, units: Int) -> LlamaMasks {
        var m = LlamaMasks(layerCount: layerCount)
        func v(_ values: [Float]) -> Variable { Variable(Tensor(shape: [values.count], scalars: values), requiresGrad: true) }
        m.hidden = v((0..<hidden).map { d -> Float in [1, 5, 6, 12].contains(d) ? 0 : 0.6 + 0.03 * Float(d) })
        m.layers = [v([0.9]), v([0.7]), v([0]), v([1])]
        m.heads = [v([0.8, 0, 0.5]), v([1, 1, 0.9]), v([1, 1, 1]), v([0, 0.75, 0])]
        m.intermediate = (0..<layerCount).map { l -> Variable? in
            let values: [Float] = (0..<units).map { u -> Float in
                if l == 1 || u % (l + 2) == 0 { return 0 }
                return 0.5 + 0.02 * Float(u)
            }
            return v(values)
        }
        return m
    }

    func check(tied: Bool) {
        var config = Self.config
        config.tieWordEmbeddings = tied
        let model = LlamaModel.random(config: config, seed: tied ? 3 : 4, std: 0.3)
        let masks = Self.masks(layerCount: 4, hidden: 16, groups: 3, units: 24)
        let masked = withoutGradients { model.forward(Self.batch, masks: masks).value.scalars }
        let compact = model.compacted(masks: masks)
        let cut = withoutGradients { compact.forward(Self.batch).value.scalars }
        let d = maxAbsDifference(masked, cut)
        print("masked vs compact (tied \(tied)): max abs difference \(d)")
        XCTAssertTrue(d <= 1e-5, "masked and compact logits differ by \(d)")
        // The cut shape: 12 dims, 3 layers (layer 2 gone), groups 2 / 3 / 1, FFN units per mask, layer 1's FFN absent.
        XCTAssertEqual(compact.config.hiddenSize, 12)
        XCTAssertEqual(compact.layers.count, 3)
        XCTAssertEqual(compact.shape.layers.map(\.kvHeads), [2, 3, 1])
        XCTAssertEqual(compact.shape.layers.map(\.ffnWidth), [12, 0, 19])
        XCTAssertEqual(compact.lmHead == nil, tied)
        // Without the masks the model computes something else: the comparison can fail.
        let plain = withoutGradients { model.forward(Self.batch).value.scalars }
        XCTAssertGreaterThan(maxAbsDifference(plain, cut), 1e-2)
    }

    func testMaskedEqualsCompactTied() { check(tied: true) }
    func testMaskedEqualsCompactUntied() { check(tied: false) }

    /// Every mask value the loss depends on gets a gradient, and it matches a finite difference.
    func testGradientsReachTheMasks() {
        let model = LlamaModel.random(config: Self.config, seed: 5, std: 0.3)
        let masks = Self.masks(layerCount: 4, hidden: 16, groups: 3, units: 24)
        let loss = model.loss(Self.batch, masks: masks)
        loss.backward()
        let probes: [(String, Variable, Int)] = [("hidden", masks.hidden!, 3), ("layer 0", masks.layers[0]!, 0),
                                                 ("head 1.2", masks.heads[1]!, 2), ("unit 3.5", masks.intermediate[3]!, 5)]
        for (name, z, i) in probes {
            let g = Double(z.grad!.scalars[i])
            let base = z.value
            func lossAt(_ delta: Float) -> Double {
                var t = base
                t.withMutablePointer { $0[i] += delta }
                z.assign(t)
                defer { z.assign(base) }
                return Double(withoutGradients { model.loss(Self.batch, masks: masks).value.scalar })
            }
            let fd = (lossAt(1e-2) - lossAt(-1e-2)) / 2e-2
            print("d loss / d \(name): tape \(g), finite difference \(fd)")
            XCTAssertNotEqual(g, 0, name)
            XCTAssertEqual(g, fd, accuracy: 2e-3 + 2e-2 * abs(fd), name)
        }
    }
}
