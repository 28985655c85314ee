import Foundation
import Formats
import Tensor
import XCTest
@testable import Llama

/// A fixture of scripts/reference/make_llama_golden.py: Hugging Face `LlamaForCausalLM` (float64) on a padded batch,
/// its logits, loss and the gradient of every parameter.
struct LlamaFixture {
    let file: SafetensorsFile
    let config: LlamaConfig

    init(_ name: String) throws {
        let url = Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: "safetensors")!
        file = try SafetensorsFile(contentsOf: url)
        let json = try JSONDecoder().decode(JSONValue.self, from: Data((file.metadata["config"] ?? "{}").utf8))
        config = try LlamaConfig(json: json, file: name)
    }

    /// The model's weights (every tensor that is not an input, an output or a gradient).
    var weights: [String: Tensor] {
        get throws {
            var out: [String: Tensor] = [:]
            for n in file.names where !["grads.", "inputs.", "outputs."].contains(where: { n.hasPrefix($0) }) {
                out[n] = try file.tensor(n)
            }
            return out
        }
    }

    var batch: LlamaBatch {
        get throws {
            let ids = try file.integers("inputs.input_ids")
            return LlamaBatch(batch: ids.shape[0], seqLen: ids.shape[1], tokenIds: ids.values,
                              attentionMask: try file.integers("inputs.attention_mask").values,
                              positions: try file.integers("inputs.position_ids").values)
        }
    }

    func model(allowNonFinite: Bool = false, edit: (inout [String: Tensor]) -> Void = { _ in }) throws -> LlamaModel {
        var w = try weights
        edit(&w)
        return try LlamaModel(config: config, tensors: w, source: "fixture", allowNonFinite: allowNonFinite)
    }
}

/// The training path against Hugging Face: logits (≤ 1e-4 absolute), loss, and every parameter's gradient (≤ 1e-4
/// relative to the largest element of that gradient), for a tied model, an untied one and one whose three layers
/// all have different shapes (fewer KV groups, an absent attention, an absent FFN).
final class LlamaGoldenTests: XCTestCase {
    /// Runs forward and backward and returns the worst differences (NaN-aware: a NaN anywhere is reported as NaN).
    func compare(_ fixture: LlamaFixture, _ model: LlamaModel, verbose: Bool = true) throws -> (logits: Float, loss: Float, grad: Float, names: [String]) {
        let batch = try fixture.batch
        let logits = model.forward(batch)
        let loss = languageModelLoss(logits, tokens: batch.tokenIds, counted: batch.isReal, batch: batch.batch,
                                     seqLen: batch.seqLen)
        loss.backward()
        let expectedLogits = try fixture.file.tensor("outputs.logits")
        let dLogits = logits.value.maxAbsDifference(expectedLogits.reshaped(logits.shape))
        let dLoss = absDifference(loss.value.scalar, try fixture.file.tensor("outputs.loss").scalar)
        var worst: Float = 0
        var names: [String] = []
        for (name, p) in model.namedParameters {
            let expected = try fixture.file.tensor("grads." + name)
            let got = p.grad ?? Tensor(zeros: p.shape)
            let rel = got.maxAbsDifference(expected) / max(expected.maxAbs, 1e-12)
            worst = maxError([worst, rel])
            if verbose && !(rel <= 1e-4) { print("  gradient of \(name) differs by \(rel) relative") }
            names.append(name)
        }
        return (dLogits, dLoss, worst, names)
    }

    func checkFixture(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let fixture = try LlamaFixture(name)
        let model = try fixture.model()
        let d = try compare(fixture, model)
        print("\(name): logits max abs diff \(d.logits), loss diff \(d.loss), gradients max rel diff \(d.grad) over \(d.names.count) tensors")
        XCTAssertTrue(d.logits <= 1e-4, "logits differ by \(d.logits)", file: file, line: line)
        XCTAssertTrue(d.loss <= 1e-5, "loss differs by \(d.loss)", file: file, line: line)
        XCTAssertTrue(d.grad <= 1e-4, "a gradient differs by \(d.grad) relative", file: file, line: line)
        // Every gradient of the fixture was compared, and nothing else.
        let stored = Set(fixture.file.names.filter { $0.hasPrefix("grads.") }.map { String($0.dropFirst(6)) })
        XCTAssertEqual(Set(d.names), stored, file: file, line: line)
    }

    func testTiedModelMatchesTransformers() throws { try checkFixture("llama_tied") }
    func testUntiedModelMatchesTransformers() throws { try checkFixture("llama_untied") }

    func testHeterogeneousLayersMatchTransformers() throws {
        try checkFixture("llama_hetero")
        let shape = try LlamaFixture("llama_hetero").model().shape
        XCTAssertEqual(shape.layers, [LlamaLayerShape(kvHeads: 1, ffnWidth: 20), LlamaLayerShape(kvHeads: 0, ffnWidth: 30),
                                      LlamaLayerShape(kvHeads: 2, ffnWidth: 0)])
    }

    /// The comparison can fail: one NaN weight makes the logits and the gradients NaN, which the checks reject.
    func testNaNWeightFailsTheComparison() throws {
        let fixture = try LlamaFixture("llama_untied")
        let model = try fixture.model(allowNonFinite: true) { w in
            w["model.layers.1.mlp.up_proj.weight"]!.scalars[7] = .nan
        }
        let d = try compare(fixture, model, verbose: false)
        XCTAssertFalse(d.logits <= 1e-4)
        XCTAssertFalse(d.grad <= 1e-4)
        // And a perturbed weight (finite) is caught by the gradient and logit tolerances.
        let nudged = try fixture.model { w in w["model.layers.0.self_attn.k_proj.weight"]!.scalars[3] += 1e-2 }
        let e = try compare(fixture, nudged, verbose: false)
        XCTAssertFalse(e.logits <= 1e-4 && e.grad <= 1e-4)
    }
}
