import Foundation
import Tensor
import XCTest
@testable import BERT

/// Loading rules and bad checkpoints: every failure names the file, the tensor and what was expected.
final class CheckpointTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-ckpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// The tiny golden model's weights, with `edit` applied, written to dir with its config.
    func writeCheckpoint(_ edit: (inout [String: Tensor]) -> Void = { _ in }) throws -> BertConfig {
        let g = try GoldenFixture("tiny_cls_plain")
        var tensors: [String: Tensor] = [:]
        for name in g.file.names where !name.contains(".") || name.hasPrefix("bert.") || name.hasPrefix("classifier.") {
            tensors[name] = try g.tensor(name)
        }
        edit(&tensors)
        try SafetensorsWriter.write(tensors, to: dir.appendingPathComponent("model.safetensors"))
        try g.config.write(to: dir.appendingPathComponent("config.json"))
        return g.config
    }

    func assertLoadFails(containing parts: [String], task: TaskHeadKind? = nil,
                         file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try BertModel.load(directory: dir, task: task)
            XCTFail("loading should have failed", file: file, line: line)
        } catch {
            let text = "\(error)"
            for p in parts { XCTAssertTrue(text.contains(p), "'\(text)' should mention '\(p)'", file: file, line: line) }
        }
    }

    func testSaveLoadRoundTripKeepsShapesAndValues() throws {
        _ = try writeCheckpoint()
        let model = try BertModel.load(directory: dir)
        XCTAssertEqual(model.task, .classification(labels: 3))
        XCTAssertEqual(model.shape.layers, [LayerShape(heads: 4, ffnWidth: 64), LayerShape(heads: 2, ffnWidth: 40)])
        let out = dir.appendingPathComponent("saved")
        try model.save(to: out)
        let again = try BertModel.load(directory: out)
        XCTAssertEqual(again.shape, model.shape)
        for ((n1, p1), (n2, p2)) in zip(model.namedParameters, again.namedParameters) {
            XCTAssertEqual(n1, n2)
            XCTAssertEqual(p1.value, p2.value, n1)
        }
    }

    func testNamesWithoutBertPrefixAreAccepted() throws {
        _ = try writeCheckpoint { t in
            for (k, v) in t where k.hasPrefix("bert.") { t[k] = nil; t[String(k.dropFirst(5))] = v }
        }
        let model = try BertModel.load(directory: dir)
        XCTAssertEqual(model.shape.layers.map(\.heads), [4, 2])
    }

    /// The tiny model without layer 1's attention and layer 0's FFN.
    func writePrunedCheckpoint() throws -> BertConfig {
        try writeCheckpoint { t in
            for k in t.keys where k.hasPrefix("bert.encoder.layer.1.attention.") { t[k] = nil }
            for k in t.keys where k.hasPrefix("bert.encoder.layer.0.intermediate.") || k.hasPrefix("bert.encoder.layer.0.output.") {
                t[k] = nil
            }
        }
    }

    /// Absent sublayers load as pruned when the config's `cofi` block says they were.
    func testPrunedSublayersLoadWhenTheCofiBlockSaysSo() throws {
        var config = try writePrunedCheckpoint()
        let pruned = [LayerShape(heads: 4, ffnWidth: 0), LayerShape(heads: 0, ffnWidth: 40)]
        config.compact = CompactLayout(
            describing: BertShape(vocabSize: config.vocabSize, hiddenSize: config.hiddenSize, headDim: config.headDim,
                                  maxPositions: config.maxPositionEmbeddings, typeVocabSize: config.typeVocabSize,
                                  layers: pruned),
            config: config)
        try config.write(to: dir.appendingPathComponent("config.json"))
        let model = try BertModel.load(directory: dir)
        XCTAssertEqual(model.shape.layers, pruned)
        XCTAssertNil(model.layers[1].attention)
        XCTAssertNil(model.layers[0].feedForward)
        var mode = ForwardMode.inference
        let out = model(BertBatch(batch: 1, seqLen: 3, inputIds: [1, 2, 3]), mode: &mode)
        XCTAssertEqual(out.logits!.shape, [1, 3])
    }

    /// A dense checkpoint with a layer's tensors missing is not taken as pruned: without a `cofi` block (or with
    /// one that keeps the sublayer) the missing tensor is an error naming it.
    func testMissingSublayerWithoutCofiBlockIsAnError() throws {
        var config = try writePrunedCheckpoint()
        assertLoadFails(containing: ["config.json", "cofi.layers[0].kept_ffn_units", "the tensors hold 0"])
        // The same tensors under a layer-complete dense config (layer 1 as wide as layer 0).
        config.compact = nil
        try config.write(to: dir.appendingPathComponent("config.json"))
        assertLoadFails(containing: ["model.safetensors", "missing tensor 'bert.encoder.layer.0.output.dense.weight'",
                                     "intermediate_size", "no cofi block"])
    }

    func testMissingHeadIsInitialisedLikeHuggingFace() throws {
        _ = try writeCheckpoint { t in t["classifier.weight"] = nil; t["classifier.bias"] = nil }
        let model = try BertModel.load(directory: dir, task: .classification(labels: 5))
        let w = model.head!.weight.value
        XCTAssertEqual(w.shape, [5, 32])
        let std = (w.scalars.reduce(0) { $0 + $1 * $1 } / Float(w.count)).squareRoot()
        XCTAssertEqual(std, 0.02, accuracy: 0.006)
        XCTAssertEqual(model.head!.bias.value, Tensor(zeros: [5]))
        let span = try BertModel.load(directory: dir, task: .span)
        XCTAssertEqual(span.head!.weight.shape, [2, 32])
    }

    func testMissingEncoderTensorIsNamed() throws {
        _ = try writeCheckpoint { t in t["bert.encoder.layer.1.attention.self.key.bias"] = nil }
        assertLoadFails(containing: ["model.safetensors", "bert.encoder.layer.1.attention.self.key.bias", "[16]"])
    }

    func testShapeMismatchIsNamed() throws {
        _ = try writeCheckpoint { t in t["bert.encoder.layer.0.attention.self.value.weight"] = Tensor(zeros: [32, 31]) }
        assertLoadFails(containing: ["bert.encoder.layer.0.attention.self.value.weight", "[32, 31]", "expected [32, 32]"])
    }

    func testHeadWidthMismatchIsNamed() throws {
        _ = try writeCheckpoint { t in t["classifier.weight"] = Tensor(zeros: [3, 30]) }
        assertLoadFails(containing: ["classifier.weight", "[3, 30]", "expected [3, 32]"])
    }

    func testOutputDenseNotMultipleOfHeadWidth() throws {
        _ = try writeCheckpoint { t in t["bert.encoder.layer.0.attention.output.dense.weight"] = Tensor(zeros: [32, 12]) }
        assertLoadFails(containing: ["attention.output.dense.weight", "not a multiple of the head width 8"])
    }

    func testWrongDtypeIsNamed() throws {
        let config = try writeCheckpoint()
        var tensors: [String: Tensor] = [:]
        let f = try SafetensorsFile(contentsOf: dir.appendingPathComponent("model.safetensors"))
        for n in f.names where n != "bert.pooler.dense.bias" { tensors[n] = try f.tensor(n) }
        try SafetensorsWriter.write(tensors, integers: ["bert.pooler.dense.bias": (shape: [32], values: Array(repeating: 0, count: 32))],
                                    to: dir.appendingPathComponent("model.safetensors"))
        _ = config
        assertLoadFails(containing: ["model.safetensors", "bert.pooler.dense.bias", "I64"])
    }

    func testTruncatedFileIsAnErrorNotACrash() throws {
        _ = try writeCheckpoint()
        let url = dir.appendingPathComponent("model.safetensors")
        let data = try Data(contentsOf: url)
        try data.prefix(data.count - 100).write(to: url)
        assertLoadFails(containing: ["model.safetensors"])
    }

    func testMissingFilesAreNamed() throws {
        assertLoadFails(containing: ["config.json"])
        _ = try writeCheckpoint()
        try FileManager.default.removeItem(at: dir.appendingPathComponent("model.safetensors"))
        assertLoadFails(containing: ["model.safetensors", "no such file"])
    }

    func testBadConfigIsNamed() throws {
        _ = try writeCheckpoint()
        try Data(#"{"vocab_size": 100, "hidden_size": "32", "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}"#.utf8)
            .write(to: dir.appendingPathComponent("config.json"))
        assertLoadFails(containing: ["config.json", "hidden_size", "integer"])
    }

    func testExtraLayersBeyondConfigAreRejected() throws {
        _ = try writeCheckpoint()
        var c = try BertConfig.load(from: dir.appendingPathComponent("config.json"))
        c.numHiddenLayers = 1
        try c.write(to: dir.appendingPathComponent("config.json"))
        assertLoadFails(containing: ["more than num_hidden_layers = 1"])
    }

    func testRandomInitialisationFollowsHuggingFace() {
        let config = BertConfig(vocabSize: 50, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 32)
        let a = BertModel.randomlyInitialized(config: config, task: .regression, seed: 7)
        let b = BertModel.randomlyInitialized(config: config, task: .regression, seed: 7)
        for ((n, p), (_, q)) in zip(a.namedParameters, b.namedParameters) { XCTAssertEqual(p.value, q.value, n) }
        let word = a.embeddings.wordEmbeddings.value
        XCTAssertEqual(Array(word.scalars[0..<16]), Array(repeating: 0, count: 16), "padding row is zero")
        XCTAssertEqual(a.layers[0].attention!.layerNorm.weight.value, Tensor(repeating: 1, shape: [16]))
        XCTAssertEqual(a.head!.weight.shape, [1, 16])
    }
}
