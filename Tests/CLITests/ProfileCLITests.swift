import BERT
import Foundation
import XCTest

/// `cofi profile` as a user runs it: a whole (tiny, few repeats) profile of a tiny random classifier, and bad
/// input named by its option or file. Times are not checked: only that the output is complete and consistent.
final class ProfileCLITests: XCTestCase {
    var work: URL!
    func url(_ name: String) -> URL { work.appendingPathComponent(name) }

    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-profile-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        try TinyModels.write(url("tiny/best"), task: .classification(labels: 2), seed: 1, hidden: 16, layers: 2)
    }

    override func tearDownWithError() throws {
        if let work { try? FileManager.default.removeItem(at: work) }
    }

    func testTinyProfileWritesTheFileAndTheTable() throws {
        let out = url("profile.json")
        let (status, stdout, stderr) = try runCofi([
            "profile", "--model", url("tiny/best").path, "--seq-len", "8", "--threads", "1", "--checks", "2",
            "--repeats", "3", "--out", out.path,
        ])
        XCTAssertEqual(status, 0, stderr)
        print(stdout)
        for fragment in ["latency profile: B = 1, T = 8, threads = 1", "attention", "last attention", "[CLS] FFN",
                         "predicted dense model:", "predicted", "measured", "check error: mean |error|", "of 2 within 10 %",
                         "profiled in", "wrote \(out.path)"] {
            XCTAssertTrue(stdout.contains(fragment), "'\(fragment)' missing:\n\(stdout)")
        }
        XCTAssertTrue(stderr.contains("[profile] D=16: base"), stderr)
        XCTAssertTrue(stderr.contains("[profile] check 2/2:"), stderr)
        let p = try LatencyProfile.read(out)
        XCTAssertEqual(p.conditions.sequenceLength, 8)
        XCTAssertEqual(p.conditions.threads, 1)
        XCTAssertEqual(p.checks.count, 2)
        XCTAssertEqual(p.model.hiddenSize, 16)
        XCTAssertTrue(p.pooled)
    }

    func testBadInputIsNamed() throws {
        func expectFailure(_ args: [String], _ fragment: String, line: UInt = #line) throws {
            let (status, stdout, stderr) = try runCofi(["profile"] + args)
            XCTAssertNotEqual(status, 0, stdout, line: line)
            XCTAssertTrue(stderr.contains(fragment), "expected '\(fragment)' in: \(stderr)", line: line)
        }
        let model = url("tiny/best").path, out = url("p.json").path
        try expectFailure(["--model", url("missing").path, "--out", out], "no such directory")
        try expectFailure(["--model", url("tiny").path, "--out", out], "no config.json")
        try expectFailure(["--model", model, "--out", out, "--batch", "0"], "--batch is 0")
        try expectFailure(["--model", model, "--out", out, "--seq-len", "0"], "--seq-len is 0")
        try expectFailure(["--model", model, "--out", out, "--threads", "0"], "--threads is 0")
        try expectFailure(["--model", model, "--out", out, "--checks=-1"], "--checks is -1")
        try expectFailure(["--model", model], "--out")
        try expectFailure(["--model", model, "--out", url("no/such/dir/p.json").path], "no/such/dir/p.json: cannot write the latency profile (--out)")
        try expectFailure(["--model", model, "--out", work.path], "--out is a directory")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing written on bad input")
    }
}
