import BERT
import Tensor
import XCTest
@testable import CoFi
import TestSupport

/// Shapes and checks shared by the gate, size-model and Lagrangian tests (namespaced so other test files can
/// define helpers of their own).
enum GateTestSupport {
    /// bert-base-uncased: 12 layers of 12 heads × 64, FFN 3072, hidden 768.
    static let bertBase = BertShape(vocabSize: 30522, hiddenSize: 768, headDim: 64, maxPositions: 512, typeVocabSize: 2,
                                    layers: Array(repeating: LayerShape(heads: 12, ffnWidth: 3072), count: 12))
    /// all-MiniLM-L6-v2: 6 layers of 12 heads × 32, FFN 1536, hidden 384.
    static let miniLM = BertShape(vocabSize: 30522, hiddenSize: 384, headDim: 32, maxPositions: 512, typeVocabSize: 2,
                                  layers: Array(repeating: LayerShape(heads: 12, ffnWidth: 1536), count: 6))
    /// A small heterogeneous shape: a layer without attention, a layer without FFN, uneven widths.
    static let tiny = BertShape(vocabSize: 50, hiddenSize: 8, headDim: 4, maxPositions: 16, typeVocabSize: 2,
                                layers: [LayerShape(heads: 2, ffnWidth: 6), LayerShape(heads: 0, ffnWidth: 5),
                                         LayerShape(heads: 3, ffnWidth: 0)])

    /// A module whose every log α is drawn from normal(0, `spread`) (gates spread over the whole range, none at
    /// the clamp), for gradient checks.
    static func spreadModule(_ shape: BertShape, seed: UInt64, spread: Float = 1.5,
                             families: Set<GateFamily> = Set(GateFamily.allCases)) -> L0Module {
        var rng = Xoshiro256(seed: seed)
        let l0 = L0Module(shape: shape, configuration: L0Configuration(families: families), using: &rng)
        for g in l0.gates {
            g.variable.assign(Tensor.randomNormal(shape: g.variable.shape, std: spread, using: &rng))
        }
        return l0
    }

    /// Finite-difference check of a scalar function of `inputs` (TensorTests' pattern): the analytic gradient of
    /// `f` against central differences on up to `samples` coordinates of each input; the error is relative to
    /// the largest analytic gradient of that input. Prints and returns the worst error.
    @discardableResult
    static func checkGradients(_ name: String, inputs: [Variable], eps: Float = 1e-2, tolerance: Float = 5e-3,
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
}
