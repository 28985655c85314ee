import Foundation
import Tensor
import XCTest
import Tensor
@testable import BERT
@testable import CoFi

/// A distillation fixture written by scripts/reference/make_cofi_golden.py (PyTorch float64, stored as F32).
private struct DistillationGolden {
    let file: SafetensorsFile
    let config: [String: Any]

    init(_ name: String) throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/distillation_\(name)",
                                                  withExtension: "safetensors"), "fixture distillation_\(name)")
        file = try SafetensorsFile(contentsOf: url)
        config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data((file.metadata["config"] ?? "{}").utf8))
            as? [String: Any])
    }

    func tensor(_ name: String) throws -> Tensor { try file.tensor(name) }
    func ints(_ name: String) throws -> [Int] { try file.integers(name).values }
    func number(_ key: String) -> Float { Float((config[key] as? Double) ?? Double(config[key] as? Int ?? 0)) }

    /// `inputs.<prefix>.0`, `.1`, … as [B·T, D] variables.
    func hiddenStates(_ prefix: String, grad: Bool) throws -> [Variable] {
        var out: [Variable] = []
        while file.contains("inputs.\(prefix).\(out.count)") {
            let t = try tensor("inputs.\(prefix).\(out.count)")
            out.append(Variable(t.reshaped([t.count / t.shape.last!, t.shape.last!]), requiresGrad: grad))
        }
        return out
    }
}

/// Golden parity of the distillation loss with the PyTorch port of the reference (see the generator's docstring):
/// loss and parts, the full layer-loss matrix, the chosen mapping, and the gradients w.r.t. the student's hidden
/// states, its logits and the layer transformation.
///
/// Tolerances: the loss and its parts within 1e-5 relative; every gradient tensor within
/// 2e-6 + 1e-4·max|torch| (max abs difference); mapping and teacher layers exact.
final class DistillationParityTests: XCTestCase {
    func testClassificationV4WithLayerGates() throws { try check("cls_v4") }
    func testClassificationV4WithoutMasks() throws { try check("cls_v4_nomask") }
    func testClassificationV3WithLabelLoss() throws { try check("cls_v3") }
    func testSpanV4WithEveryLayerGatedOff() throws { try check("span_v4_allpruned") }
    func testRegressionV4WithANarrowerStudent() throws { try check("reg_v4_rect") }

    private func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let g = try DistillationGolden(name)
        let head: TaskHeadKind
        switch g.config["head"] as? String {
        case "classification": head = .classification(labels: try g.tensor("inputs.student_logits").shape[1])
        case "regression": head = .regression
        default: head = .span
        }
        let studentHidden = try g.hiddenStates("student_hidden", grad: true)
        let teacherHidden = try g.hiddenStates("teacher_hidden", grad: false)
        let transformation = try LayerTransformation(weight: try g.tensor("inputs.layer_transformation.weight"),
                                                     bias: try g.tensor("inputs.layer_transformation.bias"))
        func leaf(_ n: String, grad: Bool) throws -> Variable? {
            g.file.contains("inputs.\(n)") ? Variable(try g.tensor("inputs.\(n)"), requiresGrad: grad) : nil
        }
        let student = BertOutput(hiddenStates: studentHidden, logits: try leaf("student_logits", grad: true),
                                 startLogits: try leaf("student_start_logits", grad: true),
                                 endLogits: try leaf("student_end_logits", grad: true))
        let teacher = BertOutput(hiddenStates: teacherHidden, logits: try leaf("teacher_logits", grad: false),
                                 startLogits: try leaf("teacher_start_logits", grad: false),
                                 endLogits: try leaf("teacher_end_logits", grad: false))
        var masks: MaskSet?
        if g.config["masked"] as? Bool == true {
            let mha = try g.tensor("inputs.head_layer_z").scalars, ffn = try g.tensor("inputs.mlp_z").scalars
            var m = MaskSet(layerCount: mha.count)
            for l in mha.indices {
                m.attentionLayers[l] = Variable(Tensor(shape: [1], scalars: [mha[l]]))
                m.ffnLayers[l] = Variable(Tensor(shape: [1], scalars: [ffn[l]]))
            }
            masks = m
        }
        let labels: LabelTargets? = g.file.contains("inputs.labels") ? .classes(try g.ints("inputs.labels")) : nil
        let config = DistillationConfig(temperature: g.number("temperature"), predictionWeight: g.number("alpha_ce"),
                                        layerWeight: g.number("alpha_layer"), labelWeight: g.number("alpha_label"),
                                        mappingVersion: g.config["version"] as? Int == 3 ? .v3 : .v4)

        let loss = try DistillationLoss(config: config, head: head, transformation: transformation)
        let parts = try loss(student: student, teacher: teacher, masks: masks, labels: labels)
        let layer = try XCTUnwrap(parts.layer)

        XCTAssertEqual(layer.teacherLayers, try g.ints("outputs.teacher_layers"), "\(name) teacher layers",
                       file: file, line: line)
        XCTAssertEqual(layer.mapping, try g.ints("outputs.alignment"), "\(name) mapping", file: file, line: line)
        var report = "parity \(name): mapping \(layer.mapping)"
        func scalar(_ what: String, _ value: Float?) throws {
            let ref = try g.tensor("outputs.\(what)").scalar
            let v = try XCTUnwrap(value, "\(name): no \(what)", file: file, line: line)
            let d = absDifference(v, ref)
            report += ", \(what) " + String(format: "%.7f (|Δ| %.1e)", v, d)
            XCTAssertLessThanOrEqual(d, 1e-5 * max(1, abs(ref)), "\(name) \(what): \(v) vs \(ref)", file: file, line: line)
        }
        try scalar("loss", parts.total.value.scalar)
        try scalar("prediction_loss", parts.prediction.value.scalar)
        try scalar("layer_loss", layer.loss.value.scalar)
        if g.file.contains("outputs.label_loss") { try scalar("label_loss", parts.label?.value.scalar) }
        let refMatrix = try g.tensor("outputs.layerwise_loss")
        let matrix = Tensor(shape: refMatrix.shape, scalars: layer.pairLosses.flatMap { $0.map { Float($0) } })
        let matrixDiff = matrix.maxAbsDifference(refMatrix)
        report += String(format: ", layer-loss matrix max |Δ| %.1e", matrixDiff)
        XCTAssertLessThanOrEqual(matrixDiff, 1e-5 * max(1, refMatrix.maxAbs), "\(name) layer-loss matrix",
                                 file: file, line: line)

        parts.total.backward()
        var worst: (String, Float) = ("", 0)
        func grad(_ what: String, _ v: Variable) throws {
            let ref = try g.tensor("grads.\(what)")
            let got = (v.grad ?? Tensor(zeros: v.shape)).reshaped(ref.shape)
            let d = got.maxAbsDifference(ref)
            if d >= worst.1 { worst = (what, d) }
            XCTAssertLessThanOrEqual(d, 2e-6 + 1e-4 * ref.maxAbs, "\(name) grads.\(what): max |Δ| \(d) (max |ref| \(ref.maxAbs))",
                                     file: file, line: line)
        }
        for (j, h) in studentHidden.enumerated() { try grad("student_hidden.\(j)", h) }
        try grad("layer_transformation.weight", transformation.weight)
        try grad("layer_transformation.bias", transformation.bias)
        for (n, v) in [("logits", student.logits), ("start_logits", student.startLogits),
                       ("end_logits", student.endLogits)] {
            if let v { try grad("student_\(n)", v) }
        }
        print(report + String(format: "; gradients max |Δ| %.1e", worst.1) + " (\(worst.0))")
    }
}
