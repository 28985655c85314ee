import Foundation
import Tensor
import XCTest
import Tensor
@testable import BERT

/// The Swift model against PyTorch: forward values ≤ 1e-5 absolute, gradients ≤ 1e-4 relative to the largest
/// reference value of each tensor (plus 1e-6 absolute for gradients that are zero in exact arithmetic).
final class GoldenParityTests: XCTestCase {
    /// The outcome of comparing a model with a golden fixture.
    struct Comparison {
        /// One line for each value outside its tolerance (a NaN or an infinity on either side is always one).
        var failures: [String] = []
        var worstForward: Float = 0
        var worstGradient: Float = 0
        /// Gradients compared, and the reference gradients the fixture holds.
        var checked = 0, expected = 0
    }

    /// Runs the fixture's batch through `model` (built from the fixture's weights, perhaps edited) and compares
    /// forward values (≤ 1e-5 absolute) and gradients (≤ 1e-4 relative or ≤ 1e-6 absolute) with the reference.
    static func compare(_ model: BertModel, with g: GoldenFixture) throws -> Comparison {
        var c = Comparison()
        let heads = g.meta["heads_per_layer"] as! [Int]
        let batch = try g.batch
        let masks = try g.masks(layers: heads.count)
        var mode = ForwardMode.inference
        let out = model(batch, masks: masks, mode: &mode)

        func forward(_ label: String, _ ours: Tensor, _ ref: Tensor) {
            let d = differences(ours.reshaped(ref.shape), ref)
            c.worstForward = max(c.worstForward, d.abs)
            if !(d.abs <= 1e-5) { c.failures.append("\(label) max abs diff \(d.abs)") }
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
        func gradient(_ label: String, _ ours: Tensor?, _ ref: Tensor) {
            let mine = ours ?? Tensor(zeros: ref.shape)
            let d = differences(mine.reshaped(ref.shape), ref)
            c.worstGradient = max(c.worstGradient, ref.maxAbs > 1e-6 ? d.rel : 0)
            c.checked += 1
            // Both false for a NaN difference.
            if !(d.rel <= 1e-4 || d.abs <= 1e-6) {
                c.failures.append("grad of \(label): max abs diff \(d.abs), relative \(d.rel)")
            }
        }
        for (pname, p) in model.namedParameters {
            gradient(pname, p.grad, try g.tensor("grads." + pname))
        }
        for (mname, z) in masks?.named ?? [] {
            gradient("mask " + mname, z.grad, try g.tensor("grads.masks." + mname))
        }
        c.expected = g.file.names.filter { $0.hasPrefix("grads.") }.count
        return c
    }

    func checkFixture(_ name: String) throws {
        let g = try GoldenFixture(name)
        let model = try BertModel.load(config: g.config, weights: g.file, task: g.task)
        let heads = g.meta["heads_per_layer"] as! [Int], ffn = g.meta["ffn_per_layer"] as! [Int]
        XCTAssertEqual(model.shape.layers.map(\.heads), heads, "per-layer heads inferred from the tensors")
        XCTAssertEqual(model.shape.layers.map(\.ffnWidth), ffn, "per-layer FFN widths inferred from the tensors")

        let c = try Self.compare(model, with: g)
        for f in c.failures { XCTFail("\(name): \(f)") }
        XCTAssertEqual(c.checked, c.expected, "\(name): every reference gradient is compared")
        print("golden \(name): forward max abs diff \(c.worstForward), gradient max relative diff \(c.worstGradient) over \(c.checked) tensors")
    }

    /// The fixture's model with one NaN weight (all its outputs NaN) fails the comparison, forward and gradients.
    func testNaNWeightFailsTheParityComparison() throws {
        for name in ["tiny_cls_plain", "tiny_qa_masked"] {
            let g = try GoldenFixture(name)
            let model = try BertModel.load(config: g.config, weights: g.file, task: g.task)
            XCTAssertEqual(try Self.compare(model, with: g).failures, [], "\(name): the fixture's own model passes")
            for (_, p) in model.namedParameters { p.grad = nil }
            let p = try XCTUnwrap(model.namedParameters.first { $0.0 == "bert.embeddings.LayerNorm.bias" }?.1)
            p.update { $0.scalars[0] = .nan }
            let c = try Self.compare(model, with: g)
            XCTAssertTrue(c.failures.contains { $0.hasPrefix("hidden_states.0 max abs diff nan") }, "\(name): \(c.failures)")
            XCTAssertTrue(c.failures.contains { $0.hasPrefix("loss max abs diff nan") }, "\(name): \(c.failures)")
            XCTAssertTrue(c.failures.contains { $0.hasPrefix("grad of bert.embeddings.word_embeddings.weight") },
                          "\(name): \(c.failures)")
        }
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
