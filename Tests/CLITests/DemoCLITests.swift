import Foundation
import XCTest

/// `cofi demo` and `cofi fetch` as a user calls them. The whole demo runs for many minutes, so it is run by hand
/// (README, BENCHMARKS.md); here: its flags are checked before anything runs, and fetch finds the assets that the
/// test run's setup fetched (nothing downloaded again).
final class DemoCLITests: XCTestCase {
    func testDemoRejectsBadFlagsBeforeDoingAnything() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-demo-\(UUID().uuidString)")
        let (status, _, stderr) = try runCofi(["demo", "--target-sparsity", "1.5", "--out", out.path])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(stderr.contains("strictly between 0 and 1"), stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        let (s2, help, _) = try runCofi(["demo", "--help"])
        XCTAssertEqual(s2, 0)
        XCTAssertTrue(help.contains("--full"), help)
    }

    func testFetchFindsTheFetchedAssets() throws {
        let (status, stdout, stderr) = try runCofi(["fetch"])
        XCTAssertEqual(status, 0, stderr)
        XCTAssertTrue(stdout.contains("all-MiniLM-L6-v2: ready"), stdout)
        XCTAssertTrue(stdout.contains("SmolLM2-135M-Instruct: ready"), stdout)
        XCTAssertTrue(stdout.contains("movie-snippets: 10605 rows, 37 neutral dropped"), stdout)
        XCTAssertFalse(stderr.contains("downloading"), "already fetched: \(stderr)")
    }
}
