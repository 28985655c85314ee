import BERT
import Foundation
import Tensor
import XCTest
@testable import CoFi

/// A compact checkpoint written by `CompactModel.save` and loaded by the plain `BertModel.load`, which every command
/// uses (inspect, eval, predict, bench, serve, finetune, prune): its `cofi` block is validated there, so a corrupted
/// block is an error of every load, not only of `CompactModel.load` (which no command called).
final class CompactCheckpointLoadTests: XCTestCase {
    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-compact-load-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// The tiny model of `CompactionTests` cut by random masks, saved.
    func savedCompactModel() throws -> URL {
        let model = CompactionTests.tinyModel(.classification(labels: 3))
        var spec = CompactionTests.Spec.random(model.shape, seed: 12, zeroLayerGates: false)
        spec.heads[1] = [0.5, 0, 0.9, 0]
        let dir = try temporaryDirectory()
        try model.compacted(masks: spec.maskSet).save(to: dir)
        return dir
    }

    func testTheSavedCompactModelLoads() throws {
        let dir = try savedCompactModel()
        XCTAssertEqual(try BertModel.load(directory: dir).shape.layers[1].heads, 2)
    }

    func testACorruptedCofiBlockFailsThePlainLoader() throws {
        let dir = try savedCompactModel()
        let url = dir.appendingPathComponent("config.json")
        let pristine = try Data(contentsOf: url)
        func expectError(_ fragments: [String], edit: (inout [String: Any]) -> Void, line: UInt = #line) throws {
            var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: pristine) as? [String: Any])
            edit(&json)
            try JSONSerialization.data(withJSONObject: json).write(to: url)
            XCTAssertThrowsError(try BertModel.load(directory: dir), line: line) { error in
                for f in fragments + ["config.json"] {
                    XCTAssertTrue("\(error)".contains(f), "'\(error)' should mention '\(f)'", line: line)
                }
            }
        }
        func layer(_ json: inout [String: Any], _ l: Int, _ edit: (inout [String: Any]) -> Void) {
            var cofi = json["cofi"] as! [String: Any]
            var layers = cofi["layers"] as! [[String: Any]]
            edit(&layers[l])
            cofi["layers"] = layers
            json["cofi"] = cofi
        }
        try expectError(["cofi.layers[1].kept_heads", "outside [0, original_num_attention_heads = 4)"]) { j in
            layer(&j, 1) { $0["kept_heads"] = [0, 7] }
        }
        try expectError(["cofi.layers[1].kept_heads", "the tensors hold 2"]) { j in
            layer(&j, 1) { $0["kept_heads"] = [0, 1, 2]; $0["num_heads"] = 3 }
        }
        try expectError(["cofi.layers", "has 3 entries"]) { j in
            var cofi = j["cofi"] as! [String: Any]
            cofi["layers"] = Array((cofi["layers"] as! [[String: Any]]).prefix(3))
            j["cofi"] = cofi
        }
        try expectError(["cofi", "expected"]) { j in j["cofi"] = "pruned" }
        try expectError(["cofi.format_version", "reads format 1"]) { j in
            var cofi = j["cofi"] as! [String: Any]
            cofi["format_version"] = 7
            j["cofi"] = cofi
        }
    }
}
