import Formats
import Foundation
import XCTest
@testable import BERT

final class ConfigTests: XCTestCase {
    /// config.json of nreimers/MiniLM-L6-H384-uncased, verbatim.
    static let miniLM = """
        {
          "_name_or_path": "nreimers/MiniLM-L6-H384-uncased",
          "architectures": [
            "BertModel"
          ],
          "attention_probs_dropout_prob": 0.1,
          "gradient_checkpointing": false,
          "hidden_act": "gelu",
          "hidden_dropout_prob": 0.1,
          "hidden_size": 384,
          "initializer_range": 0.02,
          "intermediate_size": 1536,
          "layer_norm_eps": 1e-12,
          "max_position_embeddings": 512,
          "model_type": "bert",
          "num_attention_heads": 12,
          "num_hidden_layers": 6,
          "pad_token_id": 0,
          "position_embedding_type": "absolute",
          "transformers_version": "4.8.2",
          "type_vocab_size": 2,
          "use_cache": true,
          "vocab_size": 30522
        }
        """

    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("ConfigTests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func file(_ text: String, name: String = "config.json") throws -> URL {
        let url = directory.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    /// MiniLM's JSON with `key` replaced by the JSON text `value` (or removed when `value` is nil).
    private func miniLM(setting key: String, to value: String?) throws -> String {
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(Self.miniLM.utf8)) as? [String: Any])
        object[key] = nil
        var text = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        if let value { text = "{\"\(key)\": \(value), " + text.dropFirst() }
        return text
    }

    /// Loads `text` expecting failure; checks the description names the file and every one of `parts`.
    private func assertLoadFails(_ text: String, _ parts: String..., file: StaticString = #filePath, line: UInt = #line) throws {
        let url = try self.file(text)
        do {
            let config = try BertConfig.load(from: url)
            XCTFail("loaded \(config) without error", file: file, line: line)
        } catch let error as FileFormatError {
            let text = error.description
            XCTAssertTrue(text.hasPrefix(url.path + ": "), "'\(text)' does not start with the path", file: file, line: line)
            for part in ["config.json"] + parts {
                XCTAssertTrue(text.contains(part), "'\(text)' does not contain '\(part)'", file: file, line: line)
            }
        }
    }

    // MARK: - Decoding

    func testMiniLM() throws {
        let config = try BertConfig.load(from: try file(Self.miniLM))
        XCTAssertEqual(config.vocabSize, 30522)
        XCTAssertEqual(config.hiddenSize, 384)
        XCTAssertEqual(config.numHiddenLayers, 6)
        XCTAssertEqual(config.numAttentionHeads, 12)
        XCTAssertEqual(config.intermediateSize, 1536)
        XCTAssertEqual(config.hiddenAct, "gelu")
        XCTAssertEqual(config.hiddenDropoutProb, 0.1)
        XCTAssertEqual(config.attentionProbsDropoutProb, 0.1)
        XCTAssertEqual(config.maxPositionEmbeddings, 512)
        XCTAssertEqual(config.typeVocabSize, 2)
        XCTAssertEqual(config.initializerRange, 0.02)
        XCTAssertEqual(config.layerNormEps, 1e-12)
        XCTAssertEqual(config.padTokenId, 0)
        XCTAssertEqual(config.positionEmbeddingType, "absolute")
        XCTAssertEqual(config.modelType, "bert")
        XCTAssertEqual(config.architectures, ["BertModel"])
        XCTAssertNil(config.classifierDropout)
        XCTAssertNil(config.id2label)
        XCTAssertNil(config.label2id)
        XCTAssertNil(config.problemType)
        XCTAssertEqual(config.numLabels, 2)
        XCTAssertEqual(config.headDim, 32)
        XCTAssertEqual(config, BertConfig(vocabSize: 30522, hiddenSize: 384, numHiddenLayers: 6, numAttentionHeads: 12,
                                          intermediateSize: 1536, modelType: "bert", architectures: ["BertModel"]))
    }

    func testDefaults() throws {
        let minimal = #"{"vocab_size": 100, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}"#
        let config = try BertConfig.load(from: try file(minimal))
        XCTAssertEqual(config, BertConfig(vocabSize: 100, hiddenSize: 64, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 128))
        XCTAssertEqual(config.hiddenAct, "gelu")
        XCTAssertEqual(config.hiddenDropoutProb, 0.1)
        XCTAssertEqual(config.attentionProbsDropoutProb, 0.1)
        XCTAssertEqual(config.maxPositionEmbeddings, 512)
        XCTAssertEqual(config.typeVocabSize, 2)
        XCTAssertEqual(config.initializerRange, 0.02)
        XCTAssertEqual(config.layerNormEps, 1e-12)
        XCTAssertEqual(config.padTokenId, 0)
        XCTAssertEqual(config.positionEmbeddingType, "absolute")
        XCTAssertNil(config.classifierDropout)
        XCTAssertNil(config.modelType)
        XCTAssertNil(config.architectures)
        XCTAssertEqual(config.numLabels, 2)
        XCTAssertEqual(config.headDim, 16)

        // num_labels follows id2label when absent; null optionals take their defaults.
        let labelled = try BertConfig.load(from: try file(miniLM(
            setting: "id2label", to: #"{"0": "negative", "1": "neutral", "2": "positive"}"#)))
        XCTAssertEqual(labelled.numLabels, 3)
        XCTAssertEqual(labelled.id2label?["2"], "positive")
        XCTAssertEqual(try BertConfig.load(from: try file(miniLM(setting: "num_labels", to: "5"))).numLabels, 5)
        XCTAssertEqual(try BertConfig.load(from: try file(miniLM(setting: "pad_token_id", to: "null"))).padTokenId, 0)
        XCTAssertEqual(try BertConfig.load(from: try file(miniLM(setting: "classifier_dropout", to: "0.2"))).classifierDropout, 0.2)
    }

    func testRoundTrip() throws {
        let config = BertConfig(vocabSize: 30522, hiddenSize: 768, numHiddenLayers: 12, numAttentionHeads: 12,
                                intermediateSize: 3072, hiddenDropoutProb: 0.05, layerNormEps: 1e-7, padTokenId: 3,
                                classifierDropout: 0.3, id2label: ["0": "not_entailment", "1": "entailment"],
                                label2id: ["not_entailment": 0, "entailment": 1], problemType: "single_label_classification",
                                modelType: "bert", architectures: ["BertForSequenceClassification"])
        let url = directory.appendingPathComponent("config.json")
        try config.write(to: url)
        XCTAssertEqual(try BertConfig.load(from: url), config)

        // Hugging Face key names on disk, and the destination is replaced without leftovers.
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        XCTAssertEqual(object["hidden_size"] as? Int, 768)
        XCTAssertEqual(object["layer_norm_eps"] as? Double, 1e-7)
        XCTAssertEqual(object["num_labels"] as? Int, 2)
        XCTAssertEqual((object["id2label"] as? [String: String])?["1"], "entailment")
        // Every key but `cofi`, which only a compact model's config has.
        XCTAssertEqual(Set(object.keys), Set(BertConfig.CodingKeys.allCases.map(\.rawValue)).subtracting(["cofi"]))

        let minimal = BertConfig(vocabSize: 10, hiddenSize: 8, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 16)
        try minimal.write(to: url)
        XCTAssertEqual(try BertConfig.load(from: url), minimal)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["config.json"])

        // MiniLM survives load → write → load.
        let miniLM = try BertConfig.load(from: try file(Self.miniLM, name: "minilm.json"))
        try miniLM.write(to: url)
        XCTAssertEqual(try BertConfig.load(from: url), miniLM)
    }

    // MARK: - Errors

    func testMissingAndMistypedKeys() throws {
        try assertLoadFails(miniLM(setting: "hidden_size", to: nil), "missing required key 'hidden_size' (an integer)")
        try assertLoadFails(miniLM(setting: "vocab_size", to: nil), "missing required key 'vocab_size'")
        try assertLoadFails(miniLM(setting: "num_hidden_layers", to: #""6""#),
                            "key 'num_hidden_layers': expected an integer, found a string")
        try assertLoadFails(miniLM(setting: "hidden_size", to: "384.5"), "key 'hidden_size': expected an integer, found a non-integer number")
        try assertLoadFails(miniLM(setting: "vocab_size", to: "1e30"), "key 'vocab_size': expected an integer, found a number too large")
        try assertLoadFails(miniLM(setting: "label2id", to: #"{"a": 0.5}"#), "key 'label2id.a': expected an integer")
        try assertLoadFails(miniLM(setting: "hidden_size", to: "null"), "key 'hidden_size': expected an integer, found null")
        try assertLoadFails(miniLM(setting: "layer_norm_eps", to: "true"), "key 'layer_norm_eps': expected a number, found a boolean")
        try assertLoadFails(miniLM(setting: "hidden_act", to: "1"), "key 'hidden_act': expected a string, found an integer")
        try assertLoadFails(miniLM(setting: "architectures", to: #""BertModel""#), "key 'architectures': expected an array of strings, found a string")
        try assertLoadFails(miniLM(setting: "id2label", to: #"{"0": 1}"#), "key 'id2label.0': expected a string, found an integer")
        try assertLoadFails("[1, 2]", "expected a JSON object at the top level, found an array")
    }

    func testInvalidJSONAndUnreadableFile() throws {
        try assertLoadFails("{\n  \"vocab_size\": 30522,\n  oops\n}", "not valid JSON", "line 3")
        try assertLoadFails("", "not valid JSON")
        let missing = directory.appendingPathComponent("absent/config.json")
        XCTAssertThrowsError(try BertConfig.load(from: missing)) {
            XCTAssertTrue("\($0)".hasPrefix(missing.path + ": cannot read the file"), "\($0)")
        }
    }

    func testUnsupportedValues() throws {
        try assertLoadFails(miniLM(setting: "hidden_size", to: "100"),
                            "key 'hidden_size' = 100 is not divisible by num_attention_heads = 12")
        try assertLoadFails(miniLM(setting: "hidden_act", to: #""relu""#), "hidden_act 'relu' is not supported (expected 'gelu')")
        try assertLoadFails(miniLM(setting: "hidden_act", to: #""gelu_new""#), "hidden_act 'gelu_new' is not supported")
        try assertLoadFails(miniLM(setting: "position_embedding_type", to: #""relative_key""#),
                            "position_embedding_type 'relative_key' is not supported (expected 'absolute')")
        try assertLoadFails(miniLM(setting: "model_type", to: #""roberta""#),
                            "model_type 'roberta'", "only BERT-family 'bert' configs are supported")
        for key in ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                    "max_position_embeddings", "type_vocab_size"] {
            try assertLoadFails(miniLM(setting: key, to: "0"), "key '\(key)' = 0 must be positive")
        }
        try assertLoadFails(miniLM(setting: "num_attention_heads", to: "-12"), "key 'num_attention_heads' = -12 must be positive")
        try assertLoadFails(miniLM(setting: "hidden_dropout_prob", to: "1.0"), "key 'hidden_dropout_prob' = 1.0 is outside [0, 1)")
        try assertLoadFails(miniLM(setting: "attention_probs_dropout_prob", to: "-0.1"),
                            "key 'attention_probs_dropout_prob' = -0.1 is outside [0, 1)")
        try assertLoadFails(miniLM(setting: "classifier_dropout", to: "1.5"), "key 'classifier_dropout' = 1.5 is outside [0, 1)")
        try assertLoadFails(miniLM(setting: "layer_norm_eps", to: "0"), "key 'layer_norm_eps'")
        try assertLoadFails(miniLM(setting: "pad_token_id", to: "30522"), "key 'pad_token_id' = 30522")
        try assertLoadFails(miniLM(setting: "id2label", to: #"{"0": "a", "5": "b"}"#), "key 'id2label'", "'5'")
        try assertLoadFails(#"{"num_labels": 3, "id2label": {"0": "a", "1": "b"}, "vocab_size": 10, "hidden_size": 8, "#
                            + #""num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16}"#,
                            "key 'num_labels' = 3", "id2label")
    }

    func testWriteValidates() throws {
        var config = BertConfig(vocabSize: 10, hiddenSize: 8, numHiddenLayers: 1, numAttentionHeads: 3, intermediateSize: 16)
        let url = directory.appendingPathComponent("config.json")
        XCTAssertThrowsError(try config.write(to: url)) {
            XCTAssertTrue("\($0)".contains("config.json: key 'hidden_size' = 8 is not divisible"), "\($0)")
            XCTAssertEqual(($0 as? FileFormatError)?.key, "hidden_size")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
        config.numAttentionHeads = 2
        XCTAssertNoThrow(try config.validate())
    }
}
