import Tensor
import XCTest
@testable import BERT
@testable import CoFi

private func distillRandom(_ shape: [Int], seed: UInt64, std: Float = 1, grad: Bool = true) -> Variable {
    var rng = Xoshiro256(seed: seed)
    return Variable(Tensor.randomNormal(shape: shape, std: std, using: &rng), requiresGrad: grad)
}

/// Hidden states [embeddings, layer 1 … L], each [N, D].
private func distillHidden(layers: Int, rows: Int, width: Int, seed: UInt64, grad: Bool) -> [Variable] {
    (0...layers).map { distillRandom([rows, width], seed: seed &+ UInt64($0) &* 7919, grad: grad) }
}

/// A mask set with only the two layer gates set (z_MHA, z_FFN per layer; nil entries stay nil).
private func distillLayerGates(mha: [Float?], ffn: [Float?]) -> MaskSet {
    var m = MaskSet(layerCount: mha.count)
    for l in mha.indices {
        m.attentionLayers[l] = mha[l].map { Variable(Tensor(shape: [1], scalars: [$0])) }
        m.ffnLayers[l] = ffn[l].map { Variable(Tensor(shape: [1], scalars: [$0])) }
    }
    return m
}

final class DistillationTests: XCTestCase {
    // MARK: teacher layers

    func testDefaultTeacherLayers() {
        let expected: [Int: [Int]] = [12: [3, 6, 9, 12], 6: [2, 3, 5, 6], 4: [1, 2, 3, 4], 3: [1, 2, 3], 2: [1, 2],
                                      1: [1], 24: [6, 12, 18, 24], 8: [2, 4, 6, 8], 5: [2, 3, 4, 5], 0: []]
        for (L, layers) in expected.sorted(by: { $0.key > $1.key }) {
            XCTAssertEqual(LayerMapping.defaultTeacherLayers(teacherLayerCount: L), layers, "L = \(L)")
        }
    }

    // MARK: mapping on hand-built ℓ

    /// Rows: teacher layers (3, 6, 9, 12); columns: student layers 1…6.
    private let ell: [[Double]] = [
        [0.5, 0.2, 0.9, 0.8, 0.7, 0.6],
        [0.9, 0.8, 0.1, 0.7, 0.6, 0.5],
        [0.9, 0.8, 0.7, 0.6, 0.1, 0.05],
        [0.9, 0.8, 0.7, 0.6, 0.2, 0.1],
    ]

    func testV3TakesTheRowMinimumEverywhere() {
        XCTAssertEqual(LayerMapping.select(losses: ell, version: .v3), [2, 3, 6, 6])
        // v3 ignores existence.
        XCTAssertEqual(LayerMapping.select(losses: ell, version: .v3, exists: [false, false, false, false, false, false]),
                       [2, 3, 6, 6])
        // Ties go to the smaller layer.
        XCTAssertEqual(LayerMapping.select(losses: [[0.3, 0.1, 0.1]], version: .v3), [2])
        XCTAssertEqual(LayerMapping.select(losses: [], version: .v3), [])
    }

    func testV4IsTopDownAndStrictlyDecreasing() {
        // Top: 12 → 6; 9: j < 6 → 5 (v3 took 6 again); 6: j < 5 → 3; 3: j < 3 → 2.
        XCTAssertEqual(LayerMapping.select(losses: ell, version: .v4), [2, 3, 5, 6])
        XCTAssertEqual(LayerMapping.select(losses: ell, version: .v4, exists: Array(repeating: true, count: 6)),
                       [2, 3, 5, 6])
        XCTAssertEqual(LayerMapping.select(losses: [[0.3, 0.1, 0.1]], version: .v4), [2])
    }

    func testV4SkipsPrunedLayers() {
        // Layer 5 is gone: 9 → best of 1…4 = 4.
        XCTAssertEqual(LayerMapping.select(losses: ell, version: .v4, exists: [true, true, true, true, false, true]),
                       [2, 3, 4, 6])
        // Layers 3 and 6 gone: 12 → 5, 9 → 4, 6 → 2, 3 → 1.
        XCTAssertEqual(LayerMapping.select(losses: ell, version: .v4, exists: [true, true, false, true, true, false]),
                       [1, 2, 4, 5])
    }

    func testV4ReusesThePreviousLayerWhenCandidatesRunOut() {
        // Only layer 3 exists: everything maps to it.
        XCTAssertEqual(LayerMapping.select(losses: ell, version: .v4, exists: [false, false, true, false, false, false]),
                       [3, 3, 3, 3])
        // Layers 1 and 6: 12 → 6, 9 → 1, then nothing below 1.
        XCTAssertEqual(LayerMapping.select(losses: ell, version: .v4, exists: [true, false, false, false, false, true]),
                       [1, 1, 1, 6])
        // Fewer student layers than teacher layers.
        let two: [[Double]] = [[0.1, 0.2], [0.3, 0.1], [0.5, 0.4], [0.2, 0.1]]
        XCTAssertEqual(LayerMapping.select(losses: two, version: .v4), [1, 1, 1, 2])
        XCTAssertEqual(LayerMapping.select(losses: two, version: .v3), [1, 2, 2, 2])
    }

    func testV4WithNoExistingLayerMapsToTheLastStudentLayer() {
        // The reference would index layer L_s + 1 here; the project maps to L_s.
        XCTAssertEqual(LayerMapping.select(losses: ell, version: .v4, exists: Array(repeating: false, count: 6)),
                       [6, 6, 6, 6])
    }

    func testExistenceIsMHAOrFFN() {
        XCTAssertNil(LayerMapping.existingLayers(masks: nil, layerCount: 6))
        // Layer 5: z_MHA = 0 but z_FFN = 0.4 → exists (the reference's z_MHA-only test would drop it, P6).
        // Layer 1: both 0 → gone. Layer 2: z_FFN = 0 but z_MHA ≠ 0 → exists. Layer 6: no gates → exists.
        let masks = distillLayerGates(mha: [0, 0.7, 0.9, 1, 0, nil], ffn: [0, 0, 0.2, 0.5, 0.4, nil])
        let exists = LayerMapping.existingLayers(masks: masks, layerCount: 6)!
        XCTAssertEqual(exists, [false, true, true, true, true, true])
        XCTAssertEqual(LayerMapping.select(losses: ell, version: .v4, exists: exists), [2, 3, 5, 6])
        // The buggy test (z_MHA only) would skip layer 5 and map teacher layer 9 to student layer 4.
        let buggy = masks.attentionLayers.map { $0.map { $0.value.scalars[0] != 0 } ?? true }
        XCTAssertEqual(LayerMapping.select(losses: ell, version: .v4, exists: buggy), [2, 3, 4, 6])
        // A MHA gate absent but an FFN gate of 0: the attention still runs, so the layer exists.
        XCTAssertEqual(LayerMapping.existingLayers(masks: distillLayerGates(mha: [nil], ffn: [0]), layerCount: 1), [true])
        XCTAssertEqual(LayerMapping.existingLayers(masks: MaskSet(layerCount: 2), layerCount: 2), [true, true])
    }

    // MARK: layer transformation

    func testLayerTransformationInitialisation() throws {
        let t = try LayerTransformation(studentWidth: 3, teacherWidth: 3)
        XCTAssertEqual(t.weight.value.scalars, [1, 0, 0, 0, 1, 0, 0, 0, 1])
        XCTAssertEqual(t.bias.value.scalars, [0, 0, 0])
        XCTAssertEqual(t.parameters.map(\.0), ["layer_transformation.weight", "layer_transformation.bias"])
        XCTAssertTrue(t.weight.requiresGrad && t.bias.requiresGrad)
        XCTAssertEqual(t.weight.name, "layer_transformation.weight")
        // The identity map leaves hidden states unchanged.
        let h = distillRandom([4, 3], seed: 3)
        XCTAssertEqual(t(h).value, h.value)

        XCTAssertThrowsError(try LayerTransformation(studentWidth: 384, teacherWidth: 768)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("384") && text.contains("768") && text.contains("explicitly"), text)
        }
        let rect = try LayerTransformation(weight: Tensor(zeros: [5, 3]), bias: Tensor(zeros: [5]))
        XCTAssertEqual(rect.studentWidth, 3)
        XCTAssertEqual(rect.teacherWidth, 5)
        XCTAssertThrowsError(try LayerTransformation(weight: Tensor(zeros: [5, 3]), bias: Tensor(zeros: [3])))

        let w = Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        let cut = try LayerTransformation(weight: w, bias: Tensor(shape: [2], scalars: [7, 8])).keepingInputs([0, 2])
        XCTAssertEqual(cut.weight.value, Tensor(shape: [2, 2], scalars: [1, 3, 4, 6]))
        XCTAssertEqual(cut.bias.value.scalars, [7, 8])
    }

    // MARK: layer distillation

    func testLayerLossGradientsWithAFixedMapping() throws {
        let N = 6, D = 5
        let student = distillHidden(layers: 4, rows: N, width: D, seed: 11, grad: true)
        let teacher = distillHidden(layers: 6, rows: N, width: D, seed: 99, grad: false).map(\.value)
        let w = distillRandom([D, D], seed: 5, std: 0.5), b = distillRandom([D], seed: 6, std: 0.1)
        let distill = LayerDistillation(transformation: try LayerTransformation(weight: w.value, bias: b.value))
        let t = distill.transformation
        // Student layer 3 serves two teacher layers (the shared mapped value must get both gradients).
        let mapping = [1, 3, 3, 4], layers = [2, 3, 5, 6]
        let f = { try! distill.loss(student: student, teacher: teacher, teacherLayers: layers, mapping: mapping) }
        GateTestSupport.checkGradients("layer loss wrt student hidden states", inputs: Array(student[1...4])) { f() }
        GateTestSupport.checkGradients("layer loss wrt W_layer, b_layer", inputs: [t.weight, t.bias]) { f() }

        // Value = Σ of the chosen MSEs, recomputed by hand.
        var expected = 0.0
        for (i, j) in zip(layers, mapping) {
            let y = withoutGradients { t(student[j]).value }
            var s = 0.0
            for k in 0..<y.count { let d = Double(y.scalars[k] - teacher[i].scalars[k]); s += d * d }
            expected += s / Double(y.count)
        }
        XCTAssertEqual(Double(f().value.scalar), expected, accuracy: 1e-5 * expected)

        // Unchosen student layers (and the embeddings) receive no gradient.
        for x in student { x.grad = nil }
        f().backward()
        XCTAssertNil(student[0].grad)
        XCTAssertNil(student[2].grad)
        XCTAssertNotNil(student[3].grad)
    }

    func testDynamicStepBuildsTheGraphOnlyForChosenPairs() throws {
        // Student layer j is teacher layer σ(j) plus noise growing with j: the mapping is known in advance.
        let N = 8, D = 4
        let teacher = distillHidden(layers: 6, rows: N, width: D, seed: 41, grad: false).map(\.value)
        let source = [0, 2, 5, 3, 6, 1]  // student layer j ≈ teacher layer source[j]
        var student = [distillRandom([N, D], seed: 1)]
        for j in 1...5 {
            let noise = distillRandom([N, D], seed: 500 + UInt64(j), std: 0.05, grad: false).value
            student.append(Variable(teacher[source[j]].zipMap(noise, +), requiresGrad: true))
        }
        let distill = LayerDistillation(transformation: try LayerTransformation(studentWidth: D, teacherWidth: D),
                                        version: .v3)
        let r = try distill(student: student, teacher: teacher)
        XCTAssertEqual(r.teacherLayers, [2, 3, 5, 6])
        XCTAssertEqual(r.mapping, [1, 3, 2, 4])  // v3: no ordering
        var v4 = distill
        v4.version = .v4
        let r4 = try v4(student: student, teacher: teacher)
        XCTAssertEqual(r4.mapping, [1, 1, 2, 4])  // 6 → 4, 5 → 2 (best below 4), 3 → 1, 2 → reuse 1
        XCTAssertEqual(r.pairLosses.count, 4)
        XCTAssertEqual(r.pairLosses[0].count, 5)

        // The loss is the selection's ℓ at the chosen pairs; gradients reach only the chosen layers.
        let chosen = zip(r.pairLosses, r.mapping).map { $0[$1 - 1] }.reduce(0, +)
        XCTAssertEqual(Double(r.loss.value.scalar), chosen, accuracy: 1e-5 * max(chosen, 1e-3))
        r.loss.backward()
        for j in 0...5 {
            XCTAssertEqual(student[j].grad != nil, r.mapping.contains(j), "student layer \(j)")
        }
        // Same gradient as the fixed-mapping loss.
        let g4 = student[4].grad!
        for x in student { x.grad = nil }
        try distill.loss(student: student, teacher: teacher, teacherLayers: r.teacherLayers, mapping: r.mapping).backward()
        XCTAssertEqual(student[4].grad!, g4)

        // With masks: layer 2 gone → v4 must avoid it.
        let masks = distillLayerGates(mha: [1, 0, 1, 1, 1], ffn: [1, 0, 1, 1, 1])
        let rm = try v4(student: student, teacher: teacher,
                        exists: LayerMapping.existingLayers(masks: masks, layerCount: 5))
        XCTAssertFalse(rm.mapping.contains(2))
    }

    func testLayerDistillationErrors() throws {
        let student = distillHidden(layers: 2, rows: 3, width: 4, seed: 1, grad: true)
        let teacher = distillHidden(layers: 4, rows: 3, width: 4, seed: 2, grad: false).map(\.value)
        let t = try LayerTransformation(studentWidth: 4, teacherWidth: 4)
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(message { _ = try LayerDistillation(transformation: t, teacherLayers: [2, 5])(student: student, teacher: teacher) }
            .contains("1...4"))
        XCTAssertTrue(message { _ = try LayerDistillation(transformation: t, teacherLayers: [3, 2])(student: student, teacher: teacher) }
            .contains("strictly increasing"))
        let wide = distillHidden(layers: 2, rows: 3, width: 5, seed: 1, grad: true)
        XCTAssertTrue(message { _ = try LayerDistillation(transformation: t)(student: wide, teacher: teacher) }
            .contains("[N, 4]"))
        let otherRows = distillHidden(layers: 4, rows: 2, width: 4, seed: 2, grad: false).map(\.value)
        XCTAssertTrue(message { _ = try LayerDistillation(transformation: t)(student: student, teacher: otherRows) }
            .contains("teacher hidden state"))
        XCTAssertTrue(message { _ = try LayerDistillation(transformation: t)(student: student, teacher: teacher, exists: [true]) }
            .contains("existence"))
        XCTAssertTrue(message { _ = try LayerDistillation(transformation: t)(student: [student[0]], teacher: teacher) }
            .contains("no layers"))
    }

    // MARK: prediction distillation

    func testPredictionLosses() throws {
        let s = distillRandom([4, 3], seed: 1), t = distillRandom([4, 3], seed: 2, grad: false)
        let cls = try predictionDistillationLoss(student: BertOutput(hiddenStates: [], logits: s),
                                                 teacher: BertOutput(hiddenStates: [], logits: t),
                                                 head: .classification(labels: 3), temperature: 2)
        XCTAssertEqual(cls.value.scalar, distillationKL(student: s, teacher: t.value, temperature: 2).value.scalar)

        // Regression: the MSE between the predictions (a softmax KL over 1 output would be identically 0, P7).
        let rs = distillRandom([4, 1], seed: 3), rt = distillRandom([4, 1], seed: 4, grad: false)
        let reg = try predictionDistillationLoss(student: BertOutput(hiddenStates: [], logits: rs),
                                                 teacher: BertOutput(hiddenStates: [], logits: rt),
                                                 head: .regression, temperature: 2)
        let mse = zip(rs.value.scalars, rt.value.scalars).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / 4
        XCTAssertEqual(reg.value.scalar, mse, accuracy: 1e-6)
        XCTAssertGreaterThan(reg.value.scalar, 0)

        // Span: the mean of the start and end KLs over all [B, T] positions.
        let ss = distillRandom([2, 5], seed: 5), se = distillRandom([2, 5], seed: 6)
        let ts = distillRandom([2, 5], seed: 7, grad: false), te = distillRandom([2, 5], seed: 8, grad: false)
        let span = try predictionDistillationLoss(
            student: BertOutput(hiddenStates: [], startLogits: ss, endLogits: se),
            teacher: BertOutput(hiddenStates: [], startLogits: ts, endLogits: te), head: .span, temperature: 2)
        let kls = distillationKL(student: ss, teacher: ts.value, temperature: 2).value.scalar
        let kle = distillationKL(student: se, teacher: te.value, temperature: 2).value.scalar
        XCTAssertEqual(span.value.scalar, (kls + kle) / 2, accuracy: 1e-6)
        GateTestSupport.checkGradients("span distillation wrt start and end logits", inputs: [ss, se]) {
            spanDistillationKL(studentStart: ss, studentEnd: se, teacherStart: ts.value, teacherEnd: te.value,
                               temperature: 2)
        }

        XCTAssertThrowsError(try predictionDistillationLoss(student: BertOutput(hiddenStates: [], logits: s),
                                                            teacher: BertOutput(hiddenStates: [], logits: rt),
                                                            head: .classification(labels: 3), temperature: 2))
        XCTAssertThrowsError(try predictionDistillationLoss(student: BertOutput(hiddenStates: [], logits: s),
                                                            teacher: BertOutput(hiddenStates: [], logits: t),
                                                            head: .span, temperature: 2))
    }

    func testLabelLoss() throws {
        let logits = distillRandom([3, 4], seed: 9)
        let ce = try labelLoss(BertOutput(hiddenStates: [], logits: logits), head: .classification(labels: 4),
                               labels: .classes([0, 3, 1]))
        XCTAssertEqual(ce.value.scalar, crossEntropy(logits, labels: [0, 3, 1]).value.scalar)
        XCTAssertEqual(LabelTargets(.values([0.5, 2])), .values([0.5, 2]))
        // Span: position 9 > T = 5 is clamped to 5 and ignored; -1 clamps to 0.
        let s = distillRandom([2, 5], seed: 10), e = distillRandom([2, 5], seed: 11)
        let span = try labelLoss(BertOutput(hiddenStates: [], startLogits: s, endLogits: e), head: .span,
                                 labels: .spans(start: [2, 9], end: [3, -1]))
        let expected = (crossEntropy(s, labels: [2, 5], ignoreIndex: 5).value.scalar
            + crossEntropy(e, labels: [3, 0], ignoreIndex: 5).value.scalar) / 2
        XCTAssertEqual(span.value.scalar, expected, accuracy: 1e-6)
        XCTAssertThrowsError(try labelLoss(BertOutput(hiddenStates: [], logits: logits), head: .regression,
                                           labels: .classes([0, 1, 2])))
    }

    // MARK: total loss

    func testDefaultsReproduceThePaper() {
        let c = DistillationConfig()
        XCTAssertEqual(c.temperature, 2)
        XCTAssertEqual(c.predictionWeight, 0.1)
        XCTAssertEqual(c.layerWeight, 0.9)
        XCTAssertEqual(c.labelWeight, 0)
        XCTAssertEqual(c.mappingVersion, .v4)
        XCTAssertNil(c.teacherLayers)
    }

    func testDistillationLossCombinesTheParts() throws {
        let N = 6, D = 4
        let sh = distillHidden(layers: 3, rows: N, width: D, seed: 21, grad: true)
        let th = distillHidden(layers: 6, rows: N, width: D, seed: 22, grad: false)
        let sl = distillRandom([2, 3], seed: 23), tl = distillRandom([2, 3], seed: 24, grad: false)
        let student = BertOutput(hiddenStates: sh, logits: sl), teacher = BertOutput(hiddenStates: th, logits: tl)
        let transformation = try LayerTransformation(studentWidth: D, teacherWidth: D)
        let masks = distillLayerGates(mha: [0, 0.5, 0], ffn: [0.3, 0, 0])

        let loss = try DistillationLoss(head: .classification(labels: 3), transformation: transformation)
        XCTAssertEqual(loss.parameters.map(\.0), ["layer_transformation.weight", "layer_transformation.bias"])
        let parts = try loss(student: student, teacher: teacher, masks: masks)
        XCTAssertFalse(parts.layer!.mapping.contains(3))  // layer 3 is gated off
        XCTAssertEqual(parts.layer!.teacherLayers, [2, 3, 5, 6])
        XCTAssertNil(parts.label)
        let expected = 0.1 * parts.prediction.value.scalar + 0.9 * parts.layer!.loss.value.scalar
        XCTAssertEqual(parts.total.value.scalar, expected, accuracy: 1e-6)
        XCTAssertEqual(parts.logValues.map(\.0), ["loss", "distill_pred", "distill_layer"])
        parts.total.backward()
        XCTAssertNotNil(sl.grad)
        XCTAssertNotNil(transformation.weight.grad)

        var config = DistillationConfig(predictionWeight: 0.5, layerWeight: 0.5, labelWeight: 0.3,
                                        mappingVersion: .v3, teacherLayers: [1, 6])
        let withLabels = try DistillationLoss(config: config, head: .classification(labels: 3),
                                              transformation: transformation)
        let p = try withLabels(student: student, teacher: teacher, labels: .classes([2, 0]))
        XCTAssertEqual(p.layer!.teacherLayers, [1, 6])
        XCTAssertEqual(p.total.value.scalar, 0.5 * p.prediction.value.scalar + 0.5 * p.layer!.loss.value.scalar
            + 0.3 * p.label!.value.scalar, accuracy: 1e-6)
        XCTAssertThrowsError(try withLabels(student: student, teacher: teacher)) { error in
            XCTAssertTrue("\(error)".contains("labels"))
        }

        // α_layer = 0: no transformation needed, no layer part.
        config = DistillationConfig(predictionWeight: 1, layerWeight: 0)
        let predOnly = try DistillationLoss(config: config, head: .classification(labels: 3), transformation: nil)
        XCTAssertTrue(predOnly.parameters.isEmpty)
        let q = try predOnly(student: student, teacher: teacher)
        XCTAssertNil(q.layer)
        XCTAssertEqual(q.total.value.scalar, q.prediction.value.scalar)
        XCTAssertThrowsError(try DistillationLoss(head: .regression, transformation: nil))
        XCTAssertThrowsError(try loss(student: student, teacher: teacher, masks: MaskSet(layerCount: 2))) { error in
            XCTAssertTrue("\(error)".contains("mask set has 2 layers, the student 3"), "\(error)")
        }
    }
}
