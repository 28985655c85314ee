import Foundation
import Tensor
import XCTest
@testable import BERT

/// The Swift model against PyTorch: forward values ≤ 1e-5 absolute, gradients ≤ 1e-4 relative to the largest
/// reference value of each tensor (plus 1e-6 absolute for gradients that are zero in exact arithmetic).
final class GoldenParityTests: XCTestCase {
    func checkFixture(_ name: String) throws {
        let g = try GoldenFixture(name)
        let model = try BertModel.load(config: g.config, weights: g.file, task: g.task)
        let heads = g.meta["heads_per_layer"] as! [Int], ffn = g.meta["ffn_per_layer"] as! [Int]
        XCTAssertEqual(model.shape.layers.map(\.heads), heads, "per-layer heads inferred from the tensors")
        XCTAssertEqual(model.shape.layers.map(\.ffnWidth), ffn, "per-layer FFN widths inferred from the tensors")

        let batch = try g.batch
        let masks = try g.masks(layers: heads.count)
        var mode = ForwardMode.inference
        let out = model(batch, masks: masks, mode: &mode)

        var worstForward: Float = 0
        func forward(_ label: String, _ ours: Tensor, _ ref: Tensor) {
            let d = differences(ours.reshaped(ref.shape), ref)
            worstForward = max(worstForward, d.abs)
            XCTAssertLessThanOrEqual(d.abs, 1e-5, "\(name): \(label) max abs diff \(d.abs)")
        }
        for (i, h) in out.hiddenStates.enumerated() {
            forward("hidden_states.\(i)", h.value, try g.tensor("outputs.hidden_states.\(i)"))
        }
        let loss: Variable
        switch g.task {
        case .classification:
            forward("pooled", out.pooled!.value, try g.tensor("outputs.pooled"))
            forward("logits", out.logits!.value, try g.tensor("outputs.logits"))
            loss = crossEntropy(out.logits!, labels: try g.ints("inputs.labels"))
        case .regression:
            forward("pooled", out.pooled!.value, try g.tensor("outputs.pooled"))
            forward("logits", out.logits!.value, try g.tensor("outputs.logits"))
            loss = meanSquaredError(out.logits!, target: try g.tensor("inputs.labels"))
        case .span:
            forward("start_logits", out.startLogits!.value, try g.tensor("outputs.start_logits"))
            forward("end_logits", out.endLogits!.value, try g.tensor("outputs.end_logits"))
            let T = batch.seqLen
            let starts = try g.ints("inputs.start_positions").map { min(max($0, 0), T) }
            let ends = try g.ints("inputs.end_positions").map { min(max($0, 0), T) }
            loss = 0.5 * (crossEntropy(out.startLogits!, labels: starts, ignoreIndex: T)
                + crossEntropy(out.endLogits!, labels: ends, ignoreIndex: T))
        }
        forward("loss", loss.value.reshaped([]), try g.tensor("outputs.loss").reshaped([]))

        loss.backward()
        var worstGrad: Float = 0, checked = 0
        func gradient(_ label: String, _ ours: Tensor?, _ ref: Tensor) {
            let mine = ours ?? Tensor(zeros: ref.shape)
            let d = differences(mine.reshaped(ref.shape), ref)
            let ok = d.rel <= 1e-4 || d.abs <= 1e-6
            worstGrad = max(worstGrad, ref.maxAbs > 1e-6 ? d.rel : 0)
            checked += 1
            XCTAssertTrue(ok, "\(name): grad of \(label): max abs diff \(d.abs), relative \(d.rel)")
        }
        for (pname, p) in model.namedParameters {
            gradient(pname, p.grad, try g.tensor("grads." + pname))
        }
        for (mname, z) in masks?.named ?? [] {
            gradient("mask " + mname, z.grad, try g.tensor("grads.masks." + mname))
        }
        let expected = g.file.names.filter { $0.hasPrefix("grads.") }.count
        XCTAssertEqual(checked, expected, "\(name): every reference gradient is compared")
        print("golden \(name): forward max abs diff \(worstForward), gradient max relative diff \(worstGrad) over \(checked) tensors")
    }

    func testClassificationWithoutMasks() throws { try checkFixture("tiny_cls_plain") }
    func testClassificationWithAllFiveMaskKinds() throws { try checkFixture("tiny_cls_masked") }
    func testRegressionWithSublayersGatedOff() throws { try checkFixture("tiny_reg_masked") }
    func testSpanHeadWithMasksAndIgnoredPositions() throws { try checkFixture("tiny_qa_masked") }

    func testLossFunctionsMatchPyTorch() throws {
        let g = try GoldenFixture("losses")
        let s = Variable(try g.tensor("kl.student"), requiresGrad: true)
        let kl = distillationKL(student: s, teacher: try g.tensor("kl.teacher"), temperature: 2)
        XCTAssertEqual(kl.value.scalar, try g.tensor("kl.loss").scalars[0], accuracy: 1e-5)
        kl.backward()
        XCTAssertLessThanOrEqual(differences(s.grad!, try g.tensor("kl.grad_student")).rel, 1e-4)

        let logits = Variable(try g.tensor("ce.logits"), requiresGrad: true)
        let ce = crossEntropy(logits, labels: try g.ints("ce.labels"))
        XCTAssertEqual(ce.value.scalar, try g.tensor("ce.loss").scalars[0], accuracy: 1e-5)
        ce.backward()
        XCTAssertLessThanOrEqual(differences(logits.grad!, try g.tensor("ce.grad_logits")).rel, 1e-4)

        let pred = Variable(try g.tensor("mse.pred"), requiresGrad: true)
        let mse = meanSquaredError(pred, target: try g.tensor("mse.target"))
        XCTAssertEqual(mse.value.scalar, try g.tensor("mse.loss").scalars[0], accuracy: 1e-5)
        mse.backward()
        XCTAssertLessThanOrEqual(differences(pred.grad!, try g.tensor("mse.grad_pred")).rel, 1e-4)
    }
}
