import Foundation
import Tensor
import XCTest
@testable import BERT

/// The model loader's validation (issue 13): corrupted model directories that used to crash, hang or load with
/// wrong answers are each one error naming the file, the key or tensor, what was found and what was expected;
/// good models load as before.
final class ModelValidationTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-validate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// Three dense layers, a 2-class classifier.
    static let config = BertConfig(vocabSize: 40, hiddenSize: 8, numHiddenLayers: 3, numAttentionHeads: 2,
                                   intermediateSize: 12, maxPositionEmbeddings: 16, initializerRange: 0.2,
                                   id2label: ["0": "negative", "1": "positive"],
                                   label2id: ["negative": 0, "positive": 1])

    var configURL: URL { dir.appendingPathComponent("config.json") }
    var weightsURL: URL { dir.appendingPathComponent("model.safetensors") }

    /// Saves a random model of `config` with `task`, then rewrites its tensors with `edit`.
    @discardableResult
    func writeModel(config: BertConfig = ModelValidationTests.config, task: TaskHeadKind? = .classification(labels: 2),
                    _ edit: (inout [String: Tensor]) -> Void = { _ in }) throws -> BertModel {
        let model = BertModel.randomlyInitialized(config: config, task: task, seed: 4)
        try model.save(to: dir)
        var tensors: [String: Tensor] = [:]
        for (name, p) in model.namedParameters { tensors[name] = p.value }
        edit(&tensors)
        try SafetensorsWriter.write(tensors, to: weightsURL)
        return model
    }

    /// Rewrites config.json with `edit` applied to its JSON object.
    func editConfig(_ edit: (inout [String: Any]) -> Void) throws {
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: configURL)
    }

    /// Loading fails with one line holding every part.
    func assertLoadFails(_ parts: [String], task: TaskHeadKind? = nil, options: ModelLoadOptions = ModelLoadOptions(),
                         file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try BertModel.load(directory: dir, task: task, options: options)
            XCTFail("loading should have failed", file: file, line: line)
        } catch {
            let text = "\(error)"
            print("validation error: \(text)")
            XCTAssertFalse(text.contains("\n"), "one line: '\(text)'", file: file, line: line)
            for p in parts { XCTAssertTrue(text.contains(p), "'\(text)' should mention '\(p)'", file: file, line: line) }
        }
    }

    func testAGoodModelLoadsAsBefore() throws {
        let model = try writeModel()
        let loaded = try BertModel.load(directory: dir)
        XCTAssertEqual(loaded.task, .classification(labels: 2))
        XCTAssertEqual(loaded.shape, model.shape)
        XCTAssertNil(loaded.config.compact)
        for ((n, p), (_, q)) in zip(model.namedParameters, loaded.namedParameters) { XCTAssertEqual(p.value, q.value, n) }
    }

    // MARK: - Crashes and hangs

    /// `intermediate_size` near 2^62 overflowed in `BertShape.ffnPrunableParameters` (SIGILL); huge layer counts
    /// hung while memory grew. Every size is bounded before anything is allocated or multiplied.
    func testHugeSizesAreBoundedBeforeAnyArithmetic() throws {
        try writeModel()
        let cases: [(String, Any, String)] = [
            ("intermediate_size", 4_611_686_018_427_387_904, "exceeds the limit of 1048576"),
            ("num_hidden_layers", 1_000_000_000, "exceeds the limit of 1000"),
            ("num_hidden_layers", 2_147_483_648, "exceeds the limit of 1000"),
            ("hidden_size", 4_611_686_018_427_387_904, "exceeds the limit of 65536"),
            ("vocab_size", Int.max, "exceeds the limit of 10000000"),
            ("max_position_embeddings", 1 << 40, "exceeds the limit of 1048576"),
            ("type_vocab_size", 1 << 40, "exceeds the limit of 65536"),
            ("num_labels", 1 << 40, "exceeds the limit of 1000000"),
        ]
        let pristine = try Data(contentsOf: configURL)
        for (key, value, message) in cases {
            try pristine.write(to: configURL)
            try editConfig { $0[key] = value }
            let start = Date()
            assertLoadFails(["config.json", key, message])
            XCTAssertLessThan(Date().timeIntervalSince(start), 5, "\(key) = \(value) is rejected at once")
        }
        // Within the limits, the largest sizes multiply without overflow.
        let limits = BertConfig.sizeLimits
        let widest = BertShape(vocabSize: limits["vocab_size"]!, hiddenSize: limits["hidden_size"]!, headDim: 1,
                               maxPositions: limits["max_position_embeddings"]!, typeVocabSize: limits["type_vocab_size"]!,
                               layers: Array(repeating: LayerShape(heads: limits["hidden_size"]!, ffnWidth: limits["intermediate_size"]!),
                                             count: limits["num_hidden_layers"]!))
        XCTAssertGreaterThan(widest.prunableParameters, 0)
        XCTAssertGreaterThan(widest.embeddingParameters + widest.encoderParameters + widest.poolerParameters, 0)
    }

    /// Duplicate names in id2label crashed the predictor ("Duplicate values for key"); the label maps must be
    /// one-to-one and agree with each other.
    func testLabelMapsMustBeOneToOne() throws {
        try writeModel()
        let pristine = try Data(contentsOf: configURL)
        func expect(_ parts: [String], _ edit: (inout [String: Any]) -> Void, line: UInt = #line) throws {
            try pristine.write(to: configURL)
            try editConfig(edit)
            assertLoadFails(["config.json"] + parts, line: line)
        }
        try expect(["id2label", "classes 0 and 1 both 'same'"]) {
            $0["id2label"] = ["0": "same", "1": "same"]; $0["label2id"] = nil
        }
        try expect(["label2id", "maps both 'a' and 'b' to class 0"]) {
            $0["id2label"] = nil; $0["label2id"] = ["a": 0, "b": 0]
        }
        try expect(["label2id", "'negative' to 1", "inverse of id2label"]) {
            $0["label2id"] = ["negative": 1, "positive": 0]
        }
        try expect(["label2id", "'x' maps to 7", "outside the class indices 0 … 1"]) {
            $0["id2label"] = nil; $0["label2id"] = ["x": 7, "y": 0]
        }
        try expect(["id2label", "'00'", "expected the class indices"]) {
            $0["id2label"] = ["00": "negative", "1": "positive"]
        }
    }

    // MARK: - Tensors that disagree with the config

    /// A dense checkpoint without layer 1's tensors was taken as pruned and answered wrong.
    func testAMissingLayerIsAnError() throws {
        try writeModel { t in for k in t.keys where k.hasPrefix("bert.encoder.layer.1.") { t[k] = nil } }
        assertLoadFails(["model.safetensors", "missing tensor 'bert.encoder.layer.1.attention.output.dense.weight'",
                         "num_attention_heads", "no cofi block"])
    }

    /// `num_hidden_layers: 6` over three layers of tensors was accepted (inspect then showed sparsity 0.5).
    func testMoreLayersInTheConfigThanInTheTensorsIsAnError() throws {
        try writeModel()
        try editConfig { $0["num_hidden_layers"] = 6 }
        assertLoadFails(["missing tensor 'bert.encoder.layer.3.attention.output.dense.weight'", "no cofi block"])
    }

    /// Fewer heads or FFN units in the tensors than the dense config says, without a cofi block.
    func testNarrowerSublayersWithoutCofiBlockAreAnError() throws {
        try writeModel()
        try editConfig { $0["intermediate_size"] = 24 }
        assertLoadFails(["bert.encoder.layer.0.output.dense.weight", "holds 12 FFN units", "intermediate_size = 24"])
        // Layer 0 cut to one head of four columns.
        try writeModel { t in
            for name in ["query", "key", "value"] {
                t["bert.encoder.layer.0.attention.self.\(name).weight"] = Tensor(zeros: [4, 8])
                t["bert.encoder.layer.0.attention.self.\(name).bias"] = Tensor(zeros: [4])
            }
            t["bert.encoder.layer.0.attention.output.dense.weight"] = Tensor(zeros: [8, 4])
        }
        assertLoadFails(["bert.encoder.layer.0.attention.output.dense.weight", "holds 1 heads (4 columns)",
                         "expected num_attention_heads = 2"])
    }

    /// `vocab_size`, `max_position_embeddings` and `type_vocab_size` contradicting the embedding tables.
    func testEmbeddingTablesMustMatchTheConfig() throws {
        for (key, value, tensor) in [("vocab_size", 50, "word_embeddings"), ("max_position_embeddings", 32, "position_embeddings"),
                                     ("type_vocab_size", 3, "token_type_embeddings")] {
            try writeModel()
            try editConfig { $0[key] = value }
            assertLoadFails(["model.safetensors", "bert.embeddings.\(tensor).weight", "expected \(value)", key])
        }
        try writeModel()
        try editConfig { $0["hidden_size"] = 16; $0["num_attention_heads"] = 4 }
        assertLoadFails(["word_embeddings.weight", "is 8 wide, expected hidden_size = 16"])
    }

    /// A missing classifier bias was made up; a head or pooler needs weight and bias.
    func testAHeadNeedsBothWeightAndBias() throws {
        for (dropped, kept) in [("classifier.bias", "classifier.weight"), ("classifier.weight", "classifier.bias"),
                                ("bert.pooler.dense.bias", "bert.pooler.dense.weight")] {
            try writeModel { $0[dropped] = nil }
            assertLoadFails(["model.safetensors", "missing tensor '\(dropped)'", "'\(kept)' is there"])
            assertLoadFails(["missing tensor '\(dropped)'"], task: .classification(labels: 2))
        }
        try writeModel(task: .span) { $0["qa_outputs.bias"] = nil }
        assertLoadFails(["missing tensor 'qa_outputs.bias'"])
    }

    /// A stored classifier reads the pooler: a checkpoint without it is an error, not a random pooler.
    func testAStoredHeadNeedsItsPooler() throws {
        try writeModel { t in t["bert.pooler.dense.weight"] = nil; t["bert.pooler.dense.bias"] = nil }
        assertLoadFails(["missing tensor 'bert.pooler.dense.weight'", "reads the pooler"])
        assertLoadFails(["missing tensor 'bert.pooler.dense.weight'"], task: .classification(labels: 2))
    }

    /// A wholly missing head is initialised only when the caller names the task to train; an inference load
    /// (no task) takes the checkpoint as a bare encoder.
    func testAMissingHeadIsInitialisedOnlyForTraining() throws {
        try writeModel { t in t["classifier.weight"] = nil; t["classifier.bias"] = nil }
        XCTAssertNil(try BertModel.load(directory: dir).task)
        let trained = try BertModel.load(directory: dir, task: .classification(labels: 2))
        XCTAssertEqual(trained.head?.weight.shape, [2, 8])
        try writeModel(task: nil)
        let bare = try BertModel.load(directory: dir, task: .classification(labels: 3))
        XCTAssertEqual(bare.head?.weight.shape, [3, 8])
    }

    /// A classifier with one row while the config says two labels became a regression model.
    func testClassifierRowsMustMatchTheLabels() throws {
        try writeModel(task: .regression)
        try editConfig { $0["num_labels"] = 2; $0["problem_type"] = nil; $0["id2label"] = ["0": "a", "1": "b"]; $0["label2id"] = nil }
        assertLoadFails(["classifier.weight", "has 1 row", "expected num_labels = 2", "problem_type 'regression'"])
        // Said as regression, it loads as one.
        try editConfig { $0["problem_type"] = "regression" }
        XCTAssertEqual(try BertModel.load(directory: dir).task, .regression)
        try writeModel(task: .classification(labels: 3))
        try editConfig { $0["num_labels"] = 2; $0["id2label"] = nil; $0["label2id"] = nil }
        assertLoadFails(["classifier.weight", "has 3 rows", "expected num_labels = 2"])
        try editConfig { $0["num_labels"] = 3; $0["problem_type"] = "regression" }
        assertLoadFails(["classifier.weight", "has 3 rows, expected 1", "problem_type 'regression'"])
    }

    /// `save` writes a config that says what the head is, so that the loader reads the same task back.
    func testSaveDescribesTheHead() throws {
        for task in [TaskHeadKind.classification(labels: 3), .regression, .span] {
            try writeModel(task: task)
            XCTAssertEqual(try BertModel.load(directory: dir).task, task)
        }
    }

    // MARK: - The cofi block

    /// A heterogeneous model saves with a cofi block describing its shape and loads back; a corrupted block is an
    /// error of every load (it used to be checked only by `CompactModel.load`, which no command called).
    func testTheCofiBlockIsValidatedOnEveryLoad() throws {
        let shape = BertShape(vocabSize: 40, hiddenSize: 6, headDim: 4, maxPositions: 16, typeVocabSize: 2,
                              layers: [LayerShape(heads: 1, ffnWidth: 5), LayerShape(heads: 0, ffnWidth: 12),
                                       LayerShape(heads: 2, ffnWidth: 0)], poolerWidth: 8)
        let model = BertModel.randomlyInitialized(config: Self.config, shape: shape, task: .classification(labels: 2), seed: 2)
        XCTAssertNotNil(model.config.compact)
        try model.save(to: dir)
        let loaded = try BertModel.load(directory: dir)
        XCTAssertEqual(loaded.shape, model.shape)
        XCTAssertEqual(loaded.config.compact, model.config.compact)

        let pristine = try Data(contentsOf: configURL)
        func expect(_ field: String, _ fragment: String, _ edit: (inout [String: Any]) -> Void, line: UInt = #line) throws {
            var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: pristine) as? [String: Any])
            var cofi = json["cofi"] as? [String: Any] ?? [:]
            edit(&cofi)
            json["cofi"] = cofi
            try JSONSerialization.data(withJSONObject: json).write(to: configURL)
            assertLoadFails(["config.json", field, fragment], line: line)
        }
        func layer(_ c: inout [String: Any], _ l: Int, _ edit: (inout [String: Any]) -> Void) {
            var layers = c["layers"] as! [[String: Any]]
            edit(&layers[l])
            c["layers"] = layers
        }
        try expect("cofi.layers[0].kept_heads", "outside [0, original_num_attention_heads = 2)") { c in
            layer(&c, 0) { $0["kept_heads"] = [5] }
        }
        try expect("cofi.layers[2].kept_heads", "strictly increasing") { c in layer(&c, 2) { $0["kept_heads"] = [1, 0] } }
        try expect("cofi.layers[2].kept_heads", "strictly increasing") { c in layer(&c, 2) { $0["kept_heads"] = [1, 1] } }
        try expect("cofi.layers[0].kept_ffn_units", "the tensors hold 5") { c in
            layer(&c, 0) { $0["kept_ffn_units"] = [0, 1, 2, 3]; $0["ffn_width"] = 4 }
        }
        try expect("cofi.layers", "has 2 entries") { c in c["layers"] = Array((c["layers"] as! [[String: Any]]).prefix(2)) }
        try expect("cofi.hidden_size", "kept_hidden_indices lists 6") { c in c["hidden_size"] = 7 }
        try expect("cofi.original_intermediate_size", "is 13") { c in c["original_intermediate_size"] = 13 }
        // The block a string, or missing a key: a decoding error naming the field.
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: pristine) as? [String: Any])
        json["cofi"] = "pruned"
        try JSONSerialization.data(withJSONObject: json).write(to: configURL)
        assertLoadFails(["config.json", "cofi", "expected"])
        try expect("cofi.layers", "missing required key") { c in c["layers"] = nil }

        // Without its block, the narrower tensors are refused.
        json["cofi"] = nil
        try JSONSerialization.data(withJSONObject: json).write(to: configURL)
        assertLoadFails(["word_embeddings.weight", "is 6 wide, expected hidden_size = 8"])
    }

    // MARK: - Non-finite weights and unused tensors

    func testNonFiniteWeightsAreAnErrorUnlessAllowed() throws {
        try writeModel { t in t["bert.encoder.layer.2.intermediate.dense.weight"]!.scalars[17] = .nan }
        assertLoadFails(["model.safetensors", "bert.encoder.layer.2.intermediate.dense.weight", "holds NaN at element 17",
                         "--allow-non-finite"])
        let loaded = try BertModel.load(directory: dir, options: ModelLoadOptions(allowNonFiniteWeights: true))
        XCTAssertTrue(loaded.layers[2].feedForward!.intermediate.weight.value.scalars[17].isNaN)
        try writeModel { t in t["classifier.bias"]!.scalars[1] = -.infinity }
        assertLoadFails(["classifier.bias", "holds -infinity at element 1"])
        XCTAssertNil(WeightSource.firstNonFinite([1, -2, .greatestFiniteMagnitude, 0]))
        XCTAssertEqual(WeightSource.firstNonFinite([1, .infinity, .nan]), 1)
    }

    /// A tensor the model does not use is a warning, not an error.
    func testAnExtraTensorIsNotAnError() throws {
        let model = try writeModel { t in t["cls.predictions.bias"] = Tensor(zeros: [40]) }
        let loaded = try BertModel.load(directory: dir)
        XCTAssertEqual(loaded.namedParameters.map(\.0), model.namedParameters.map(\.0))
    }
}
