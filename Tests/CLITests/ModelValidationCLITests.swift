import BERT
import Foundation
import Tensor
import XCTest

/// A broken model handed to the commands that load one: an error naming the file and the tensor or key, and a
/// non-zero exit — never a crash, and never a score or an answer made from broken weights.
final class ModelValidationCLITests: XCTestCase {
    var work: URL!
    func url(_ name: String) -> URL { work.appendingPathComponent(name) }
    var model: URL { url("classifier") }

    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-validate-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        try TinyModels.write(model, task: .classification(labels: 2), seed: 1)
        try ("text,label\n\"a good film\",positive\n\"a bad film\",negative\n\"dull\",negative\n")
            .write(to: url("dev.csv"), atomically: true, encoding: .utf8)
    }

    override func tearDownWithError() throws {
        if let work { try? FileManager.default.removeItem(at: work) }
    }

    /// Rewrites the model's tensors with `edit`.
    func editWeights(_ edit: (inout [String: Tensor]) -> Void) throws {
        let weights = model.appendingPathComponent("model.safetensors")
        let file = try SafetensorsFile(contentsOf: weights)
        var tensors: [String: Tensor] = [:]
        for name in file.names { tensors[name] = try file.tensor(name) }
        edit(&tensors)
        try SafetensorsWriter.write(tensors, to: weights)
    }

    /// `cofi eval` on NaN weights printed "accuracy 0.0000 (loss nan)" and exited 0. The weights are refused at
    /// load; with --allow-non-finite the NaN metric is an error.
    func testEvalOnNonFiniteWeightsFails() throws {
        try editWeights { $0["bert.encoder.layer.0.output.dense.weight"]!.scalars[5] = .nan }
        let (s1, out1, e1) = try runCofi(["eval", "--model", model.path, "--dev", url("dev.csv").path])
        XCTAssertNotEqual(s1, 0, out1)
        XCTAssertTrue(e1.contains("model.safetensors: tensor 'bert.encoder.layer.0.output.dense.weight' holds NaN at element 5"), e1)
        let (s2, out2, e2) = try runCofi(["eval", "--model", model.path, "--dev", url("dev.csv").path, "--max-length", "16",
                                          "--allow-non-finite"])
        XCTAssertNotEqual(s2, 0, out2)
        XCTAssertFalse(out2.contains("accuracy"), out2)
        XCTAssertTrue(e2.contains("is not a number") && e2.contains("loss nan") && e2.contains("not finite"), e2)
        // predict with the flag answers each line with an error instead.
        let (s3, out3, e3) = try runCofi(["predict", "--model", model.path, "--allow-non-finite"], input: Data("good\n".utf8))
        XCTAssertEqual(s3, 0, e3)
        XCTAssertTrue(out3.contains("not finite"), out3)
    }

    /// Duplicate names in id2label crashed `cofi predict` ("Duplicate values for key").
    func testDuplicateLabelNamesAreAnErrorNotACrash() throws {
        let configURL = model.appendingPathComponent("config.json")
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        json["id2label"] = ["0": "positive", "1": "positive"]
        json["label2id"] = ["positive": 1]
        try JSONSerialization.data(withJSONObject: json).write(to: configURL)
        let (status, _, stderr) = try runCofi(["predict", "--model", model.path], input: Data("good\n".utf8))
        XCTAssertEqual(status, 1, stderr)
        XCTAssertTrue(stderr.contains("config.json") && stderr.contains("id2label") && stderr.contains("both 'positive'"), stderr)
        let (s2, _, e2) = try runCofi(["inspect", model.path])
        XCTAssertEqual(s2, 1, e2)
    }

    /// A dense checkpoint without a layer's tensors was taken as pruned by every command.
    func testAMissingLayerIsAnErrorOfEveryCommand() throws {
        try editWeights { t in for k in t.keys where k.hasPrefix("bert.encoder.layer.1.") { t[k] = nil } }
        for args in [["inspect", model.path], ["eval", "--model", model.path, "--dev", url("dev.csv").path],
                     ["predict", "--model", model.path]] {
            let (status, _, stderr) = try runCofi(args, input: Data("good\n".utf8))
            XCTAssertEqual(status, 1, "\(args[0]): \(stderr)")
            XCTAssertTrue(stderr.contains("missing tensor 'bert.encoder.layer.1.attention.output.dense.weight'"), "\(args[0]): \(stderr)")
        }
    }
}
