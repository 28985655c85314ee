import Foundation
import XCTest

/// The `cofi` executable, run as a user runs it.
final class CLITests: XCTestCase {
    func cofi(_ args: [String]) throws -> (Int32, String, String) { try runCofi(args) }

    func testHelpAndVersion() throws {
        let (s1, help, _) = try cofi(["--help"])
        XCTAssertEqual(s1, 0)
        XCTAssertTrue(help.contains("inspect"))
        let (s2, version, _) = try cofi(["--version"])
        XCTAssertEqual(s2, 0)
        XCTAssertTrue(version.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("0."))
    }

    func testInspectMiniLM() throws {
        let dir = miniLM.path
        let (status, text, err) = try cofi(["inspect", dir])
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(text.contains("6 layers, hidden 384, 12 heads × 32, FFN 1536"), text)
        XCTAssertTrue(text.contains("prunable size M (dense config):    10,637,568"), text)
        let (s2, json, _) = try cofi(["inspect", "--json", dir])
        XCTAssertEqual(s2, 0)
        let obj = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        XCTAssertEqual(obj["prunableSizeM"] as? Int, 10_637_568)
        XCTAssertEqual(obj["hiddenSize"] as? Int, 384)
        let layers = obj["layers"] as! [[String: Any]]
        XCTAssertEqual(layers.count, 6)
        XCTAssertTrue(layers.allSatisfy { $0["heads"] as? Int == 12 && $0["ffnWidth"] as? Int == 1536 })
    }

    /// `cofi inspect FILE.gguf`: the GGUF reader's fixture (Tests/GGUFTests/Fixtures) and a file that is not GGUF.
    func testInspectGGUF() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("GGUFTests/Fixtures/types_v3.gguf")
        let (status, text, err) = try cofi(["inspect", fixture.path])
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(text.contains("GGUF version 3, alignment 64, 20 metadata entries, 7 tensors"), text)
        XCTAssertTrue(text.contains("general.architecture  STRING  \"test\""), text)
        XCTAssertTrue(text.range(of: #"q8_0\.3d\s+Q8_0\s+\[32, 3, 2\]\s+204\s+704"#, options: .regularExpression) != nil, text)
        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-cli-\(UUID().uuidString).gguf")
        try Data("not a model at all, but long enough".utf8).write(to: bad)
        defer { try? FileManager.default.removeItem(at: bad) }
        let (s2, _, err2) = try cofi(["inspect", bad.path])
        XCTAssertNotEqual(s2, 0)
        XCTAssertTrue(err2.contains("\(bad.path): not a GGUF file"), err2)
    }

    func testInspectMissingDirectoryIsAClearError() throws {
        let (status, _, err) = try cofi(["inspect", "/nonexistent/model"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("/nonexistent/model/config.json"), err)
    }
}
