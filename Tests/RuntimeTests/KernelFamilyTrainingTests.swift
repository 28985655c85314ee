import BERT
import PackedGEMM
import Platform
import Tensor
import XCTest

/// The training path (forward and backward of a classifier, with dropout) on every kernel family this processor
/// runs, forced as `COFI_KERNELS` forces it: the packed families give bit-identical losses and gradients (each output
/// is the same fused multiply-add chain in every tile shape), and BLAS agrees with them to rounding.
final class KernelFamilyTrainingTests: XCTestCase {
    func gradients(family: KernelFamily) -> (loss: Float, grads: [String: [Float]]) {
        let saved = (BLAS.usePackedKernels, BLAS.packedMinimumWork, PackedGEMM.family)
        defer { (BLAS.usePackedKernels, BLAS.packedMinimumWork, PackedGEMM.family) = saved }
        BLAS.usePackedKernels = family.usesPackedGEMM
        BLAS.packedMinimumWork = 0
        if family.usesPackedGEMM { PackedGEMM.family = family }
        // Uneven sizes: hidden 40 (a partial panel), 5 heads of 8, FFN 70, 7 rows × 2 sequences.
        let config = BertConfig(vocabSize: 50, hiddenSize: 40, numHiddenLayers: 2, numAttentionHeads: 5,
                                intermediateSize: 70, maxPositionEmbeddings: 16, numLabels: 3)
        let model = BertModel.randomlyInitialized(config: config, task: .classification(labels: 3), seed: 5)
        var rng = Xoshiro256(seed: 9)
        let ids = (0..<14).map { _ in 1 + Int(rng.next() % 49) }
        let mask = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
        let batch = BertBatch(batch: 2, seqLen: 7, inputIds: ids, attentionMask: mask)
        var mode = ForwardMode(training: true, rng: Xoshiro256(seed: 3))
        let loss = crossEntropy(model(batch, mode: &mode).logits!, labels: [2, 0])
        loss.backward()
        var grads: [String: [Float]] = [:]
        for (name, p) in model.namedParameters { if let g = p.grad { grads[name] = g.scalars } }
        return (loss.value.scalars[0], grads)
    }

    func testEveryFamilyTrainsTheSame() throws {
        let families = KernelFamily.available
        XCTAssertTrue(families.contains(.generic) && families.contains(.blas))
        let blas = gradients(family: .blas)
        XCTAssertGreaterThan(blas.grads.count, 20)
        var packed: (KernelFamily, Float, [String: [Float]])?
        for family in families where family.usesPackedGEMM {
            let run = gradients(family: family)
            XCTAssertEqual(Set(run.grads.keys), Set(blas.grads.keys))
            XCTAssertLessThan(abs(run.loss - blas.loss), 1e-5, "\(family) loss against BLAS")
            // The products did run on the family: BLAS sums in another order, so some bits differ.
            XCTAssertTrue(run.grads.contains { name, g in g.map(\.bitPattern) != blas.grads[name]!.map(\.bitPattern) },
                          "\(family) gave BLAS's bits exactly: the packed path did not run")
            for (name, g) in run.grads {
                let reference = blas.grads[name]!
                let scale = max(1e-3, reference.map { abs($0) }.max() ?? 0)
                let worst = zip(g, reference).map { abs($0 - $1) }.max() ?? 0
                XCTAssertTrue(worst.isFinite && worst <= 1e-4 * scale, "\(family) \(name): \(worst) against BLAS (scale \(scale))")
            }
            if let (first, loss, grads) = packed {
                XCTAssertEqual(run.loss.bitPattern, loss.bitPattern, "\(family) loss against \(first)")
                for (name, g) in run.grads {
                    XCTAssertEqual(g.map(\.bitPattern), grads[name]!.map(\.bitPattern), "\(family) \(name) against \(first)")
                }
            } else {
                packed = (family, run.loss, run.grads)
            }
        }
    }
}
