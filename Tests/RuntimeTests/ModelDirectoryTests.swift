import BERT
import Foundation
import Tasks
import Tensor
import XCTest
@testable import Runtime

/// Opening a model directory for prediction (predict, bench, serve) runs the loader's validation: a broken model
/// is refused when it is opened, with one line naming the file and what is wrong, never at the first request.
final class ModelDirectoryTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-modeldir-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A 2-class model (labels "negative", "positive") with the predictor tests' vocabulary in `dir`; `edit`
    /// changes its tensors.
    func writeClassifier(_ edit: (inout [String: Tensor]) -> Void = { _ in }) throws {
        var config = EngineFixtures.config(layers: 2)
        config.id2label = ["0": "negative", "1": "positive"]
        config.label2id = ["negative": 0, "positive": 1]
        let model = BertModel.randomlyInitialized(config: config, task: .classification(labels: 2), seed: 5)
        try model.save(to: dir)
        var tensors: [String: Tensor] = [:]
        for (name, p) in model.namedParameters { tensors[name] = p.value }
        edit(&tensors)
        try SafetensorsWriter.write(tensors, to: dir.appendingPathComponent("model.safetensors"))
        let vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + PredictorTests.words
        try (vocabulary.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("vocab.txt"),
                                                               atomically: true, encoding: .utf8)
    }

    func predictorError(_ loadOptions: ModelLoadOptions = ModelLoadOptions()) -> String? {
        do {
            _ = try ModelDirectory.predictor(dir, options: PredictorOptions(), threads: 1, loadOptions: loadOptions)
            return nil
        } catch {
            return "\(error)"
        }
    }

    func testAGoodModelPredicts() throws {
        try writeClassifier()
        let predictor = try ModelDirectory.predictor(dir, options: PredictorOptions(), threads: 1)
        XCTAssertEqual(predictor.labels, ["negative", "positive"])
        let p = predictor.predict([.text("the film was good")])[0]
        XCTAssertNil(p.error)
        XCTAssertEqual(p.probabilities.map { Set($0.keys) }, ["negative", "positive"])
    }

    /// Duplicate names in id2label crashed `predict` and `serve` on their first request; now the directory is
    /// refused when it is opened.
    func testDuplicateLabelNamesAreRefusedWhenOpened() throws {
        try writeClassifier()
        let url = dir.appendingPathComponent("config.json")
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        json["id2label"] = ["0": "positive", "1": "positive"]
        json["label2id"] = ["positive": 1]
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        let error = try XCTUnwrap(predictorError())
        XCTAssertTrue(error.contains("config.json") && error.contains("id2label") && error.contains("both 'positive'"), error)
    }

    /// NaN weights are refused at load, naming the tensor; allowed on request, the predictions say the outputs are
    /// not finite.
    func testNonFiniteWeightsAreRefusedUnlessAllowed() throws {
        try writeClassifier { t in t["classifier.weight"]!.scalars[3] = .nan }
        let error = try XCTUnwrap(predictorError())
        XCTAssertTrue(error.contains("model.safetensors") && error.contains("'classifier.weight' holds NaN at element 3"), error)
        XCTAssertNil(predictorError(ModelLoadOptions(allowNonFiniteWeights: true)))
        let predictor = try ModelDirectory.predictor(dir, options: PredictorOptions(), threads: 1,
                                                     loadOptions: ModelLoadOptions(allowNonFiniteWeights: true))
        XCTAssertTrue(predictor.predict([.text("good")])[0].error?.contains("not finite") ?? false)
    }

    /// A missing layer, or a classifier without its bias, is refused (they used to load and answer wrong).
    func testTensorsThatDisagreeWithTheConfigAreRefused() throws {
        try writeClassifier { t in for k in t.keys where k.hasPrefix("bert.encoder.layer.1.") { t[k] = nil } }
        XCTAssertTrue(predictorError()?.contains("missing tensor 'bert.encoder.layer.1.attention.output.dense.weight'") ?? false,
                      predictorError() ?? "no error")
        try writeClassifier { t in t["classifier.bias"] = nil }
        XCTAssertTrue(predictorError()?.contains("missing tensor 'classifier.bias'") ?? false, predictorError() ?? "no error")
    }
}
