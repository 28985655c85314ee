import Foundation
import XCTest
@testable import BERT
import Tensor

/// The checkpoint names: `namedParameters`, the saved file and the loader use the same names, in the same order,
/// spelled as Hugging Face spells them.
final class CheckpointKeysTests: XCTestCase {
    /// Two layers, one without attention and one without FFN, so both sublayers' names are absent somewhere.
    static let config = BertConfig(vocabSize: 30, hiddenSize: 8, numHiddenLayers: 2, numAttentionHeads: 2,
                                   intermediateSize: 12, maxPositionEmbeddings: 10, initializerRange: 0.2)
    static let shape = BertShape(vocabSize: 30, hiddenSize: 8, headDim: 4, maxPositions: 10, typeVocabSize: 2,
                                 layers: [LayerShape(heads: 0, ffnWidth: 5), LayerShape(heads: 1, ffnWidth: 0)])

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-keys-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testNamedParametersSpellHuggingFaceNamesInOrder() {
        let model = BertModel.randomlyInitialized(config: Self.config, shape: Self.shape,
                                                  task: .classification(labels: 3), seed: 3)
        XCTAssertEqual(model.namedParameters.map(\.0), [
            "bert.embeddings.word_embeddings.weight",
            "bert.embeddings.position_embeddings.weight",
            "bert.embeddings.token_type_embeddings.weight",
            "bert.embeddings.LayerNorm.weight", "bert.embeddings.LayerNorm.bias",
            "bert.encoder.layer.0.intermediate.dense.weight", "bert.encoder.layer.0.intermediate.dense.bias",
            "bert.encoder.layer.0.output.dense.weight", "bert.encoder.layer.0.output.dense.bias",
            "bert.encoder.layer.0.output.LayerNorm.weight", "bert.encoder.layer.0.output.LayerNorm.bias",
            "bert.encoder.layer.1.attention.self.query.weight", "bert.encoder.layer.1.attention.self.query.bias",
            "bert.encoder.layer.1.attention.self.key.weight", "bert.encoder.layer.1.attention.self.key.bias",
            "bert.encoder.layer.1.attention.self.value.weight", "bert.encoder.layer.1.attention.self.value.bias",
            "bert.encoder.layer.1.attention.output.dense.weight", "bert.encoder.layer.1.attention.output.dense.bias",
            "bert.encoder.layer.1.attention.output.LayerNorm.weight",
            "bert.encoder.layer.1.attention.output.LayerNorm.bias",
            "bert.pooler.dense.weight", "bert.pooler.dense.bias",
            "classifier.weight", "classifier.bias",
        ])
        let span = BertModel.randomlyInitialized(config: Self.config, shape: Self.shape, task: .span, seed: 3)
        XCTAssertEqual(span.namedParameters.suffix(3).map(\.0),
                       ["bert.encoder.layer.1.attention.output.LayerNorm.bias", "qa_outputs.weight", "qa_outputs.bias"])
        XCTAssertEqual(TaskHeadKind.regression.checkpointPrefix, "classifier")
        XCTAssertEqual(TaskHeadKind.span.checkpointPrefix, "qa_outputs")
    }

    /// Save a random model, load it back: the file holds exactly the names of `namedParameters`, the loader asks
    /// for them in the same order (each loaded parameter carries the name it was read under), values are equal.
    func testSaveLoadReadsTheNamesThatNamedParametersWrites() throws {
        for task in [TaskHeadKind.classification(labels: 3), .regression, .span] {
            let model = BertModel.randomlyInitialized(config: Self.config, shape: Self.shape, task: task, seed: 5)
            let names = model.namedParameters.map(\.0)
            let dir = try temporaryDirectory()
            try model.save(to: dir)
            let file = try SafetensorsFile(contentsOf: dir.appendingPathComponent("model.safetensors"))
            XCTAssertEqual(Set(file.names), Set(names), "\(task): the saved names")
            XCTAssertEqual(file.names.count, names.count, "\(task): no name twice")

            var read: [String] = []
            _ = try BertModel.build(config: Self.config, shape: try BertModel.inferShape(config: Self.config, weights: file),
                                    task: task) { name, _, _ in
                read.append(name)
                return try file.tensor(name)
            }
            XCTAssertEqual(read, names, "\(task): the loader's names and order")

            let loaded = try BertModel.load(directory: dir)
            XCTAssertEqual(loaded.task, task)
            XCTAssertEqual(loaded.shape, model.shape)
            XCTAssertEqual(loaded.namedParameters.map(\.0), names)
            for ((name, p), (_, q)) in zip(model.namedParameters, loaded.namedParameters) {
                XCTAssertEqual(q.name, name, "\(task): the parameter carries its checkpoint name")
                XCTAssertEqual(p.value, q.value, "\(task): \(name)")
            }
        }
    }

    /// A layer that lost its output projection but kept its input projection: the message names both tensors
    /// (the missing one by its canonical name, also when the file's names lack `bert.`).
    func testHalfAbsentSublayerMessagesNameTheTensors() throws {
        let model = BertModel.randomlyInitialized(config: Self.config, task: .span, seed: 5)
        for bare in [false, true] {
            for (dropped, kept) in [("attention.output.dense.weight", "attention.self.query.weight"),
                                    ("output.dense.weight", "intermediate.dense.weight")] {
                let dir = try temporaryDirectory()
                try model.save(to: dir)
                let url = dir.appendingPathComponent("model.safetensors")
                let file = try SafetensorsFile(contentsOf: url)
                var tensors: [String: Tensor] = [:]
                for n in file.names where n != "bert.encoder.layer.1." + dropped {
                    tensors[bare && n.hasPrefix("bert.") ? String(n.dropFirst(5)) : n] = try file.tensor(n)
                }
                try SafetensorsWriter.write(tensors, to: url)
                XCTAssertThrowsError(try BertModel.load(directory: dir)) {
                    XCTAssertEqual("\($0)", "\(url.path): tensor 'bert.encoder.layer.1.\(dropped)' is missing although the layer has \(kept)")
                }
            }
        }
    }

    func testKeysBuildPathsLikeVarBuilder() {
        let k = CheckpointKeys.layer(3)
        XCTAssertEqual(k.root.path, "bert.encoder.layer.3")
        XCTAssertEqual(k.attentionNorm.bias, "bert.encoder.layer.3.attention.output.LayerNorm.bias")
        XCTAssertEqual(k.local(k.query.weight), "attention.self.query.weight")
        XCTAssertEqual(CheckpointKeys.encoder.pp("pooler").pp("dense"), CheckpointKeys.pooler)
        XCTAssertEqual(CheckpointKeys.withoutEncoderPrefix("bert.pooler.dense.weight"), "pooler.dense.weight")
        XCTAssertNil(CheckpointKeys.withoutEncoderPrefix("classifier.weight"))
        XCTAssertNil(CheckpointKeys.withoutEncoderPrefix("bertx.weight"))
        XCTAssertTrue(CheckpointKeys.isBiasOrNorm("bert.embeddings.LayerNorm.weight"))
        XCTAssertTrue(CheckpointKeys.isBiasOrNorm("classifier.bias"))
        XCTAssertFalse(CheckpointKeys.isBiasOrNorm("bert.encoder.layer.0.output.dense.weight"))
    }
}
