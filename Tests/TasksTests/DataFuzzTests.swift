import Foundation
import XCTest
@testable import Tasks

/// The data fuzz test of issue 13: a table of bad (and a few odd but valid) data files generated from small valid
/// ones — the user's CSV, TSV and JSON lines, GLUE's SST-2, MRPC, STS-B and CoLA files, SQuAD v1.1 JSON — each read
/// the way the commands read it (`TaskSource.files(…).load`, `GLUETask.read`, `SQuADSource.load`), with a deadline.
/// Each must give what its row says: a clean error that names the file (and the line, where the row gives one,
/// and the fragments it lists), or a read with the expected number of examples. Never a crash or a hang; the
/// outcomes are printed as a table by family.
final class DataFuzzTests: XCTestCase {
    /// What reading a case must give.
    enum Expect {
        /// An error naming the file, `file:line` when `line` is given, and every fragment.
        case error(line: Int?, [String])
        /// A read with this many examples.
        case examples(Int)
        /// Either, for input that is invalid but unambiguous and that the JSON parser may tolerate.
        case errorOrExamples(line: Int, Int)
    }

    enum Content {
        case bytes([UInt8])
        case directory
        case missing
    }

    struct Case {
        let family: String
        let name: String
        /// The file's path inside the case's directory.
        let path: String
        let content: Content
        let expect: Expect
        /// Reads the file the way a command does; returns the number of examples.
        let read: (URL) throws -> Int
    }

    enum Outcome: String, CaseIterable {
        case cleanError = "clean error"
        case correctRead = "correct read"
        case wrongError = "wrong error"
        case unexpectedRead = "unexpected read"
        case hang
    }

    /// Seconds a case may take (a debug build parses a 1 MB field in well under one).
    static let deadline: Double = 10

    // MARK: - Fixtures

    /// Labels alternate so that any two consecutive rows hold both.
    static let sentences = ["a gripping, funny film", "dull and far too long", "\"great\" acting", "the plot never starts",
                            "café scenes with charm", "not worth the ticket"]
    static let labels = ["pos", "neg", "pos", "neg", "pos", "neg"]

    static func csvQuoted(_ s: String) -> String {
        s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    /// A line-oriented fixture: its lines (the header first where it has one) and how to read it.
    struct LineFixture {
        let name: String
        let path: String
        let lines: [String]
        /// Lines before the first example (1 with a header, 0 without).
        let headerLines: Int
        let read: (URL) throws -> Int
        /// A field separator, for cases that add or remove a column.
        let separator: String
        /// Replaces the label of data line `k` (1-based line number) with `label`.
        let withLabel: (Int, String) -> String
    }

    static func userRead(_ spec: UserDataSpec) -> (URL) throws -> Int {
        { url in try TaskSource.files(train: url, dev: url, spec: spec).load(train: true).train!.examples.count }
    }

    static let csv = LineFixture(
        name: "csv", path: "train.csv",
        lines: ["text,label"] + zip(sentences, labels).map { csvQuoted($0) + "," + $1 }, headerLines: 1,
        read: userRead(UserDataSpec()), separator: ",",
        withLabel: { k, label in csvQuoted(sentences[k - 2]) + "," + label })

    static let tsv = LineFixture(
        name: "tsv", path: "train.tsv",
        lines: ["id\ttext\tlabel"] + zip(sentences, labels).enumerated().map { "\($0)\t\($1.0)\t\($1.1)" }, headerLines: 1,
        read: userRead(UserDataSpec()), separator: "\t",
        withLabel: { k, label in "\(k - 2)\t\(sentences[k - 2])\t\(label)" })

    static func jsonLine(_ text: String, _ label: String) -> String {
        "{\"text\": \(JSONQuote(text)), \"label\": \(label), \"id\": 7}"
    }

    static let jsonl = LineFixture(
        name: "jsonl", path: "train.jsonl",
        lines: zip(sentences, labels).map { jsonLine($0, JSONQuote($1)) }, headerLines: 0,
        read: userRead(UserDataSpec()), separator: ",",
        withLabel: { k, label in jsonLine(sentences[k - 1], label) })

    static func glueRead(_ task: GLUETask) -> (URL) throws -> Int {
        { url in try task.read(.train, from: url.deletingLastPathComponent()).examples.count }
    }

    static let sst2 = LineFixture(
        name: "glue-sst2", path: "SST-2/train.tsv",
        lines: ["sentence\tlabel"] + zip(sentences, labels).map { "\($0)\t\($1 == "pos" ? 1 : 0)" }, headerLines: 1,
        read: glueRead(.sst2), separator: "\t",
        withLabel: { k, label in "\(sentences[k - 2])\t\(label)" })

    static let mrpc = LineFixture(
        name: "glue-mrpc", path: "MRPC/train.tsv",
        lines: ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
            + sentences.indices.map { "\($0 % 2)\t\(100 + $0)\t\(200 + $0)\t\(sentences[$0])\t\(sentences[($0 + 1) % 6])" },
        headerLines: 1, read: glueRead(.mrpc), separator: "\t",
        withLabel: { k, label in "\(label)\t\(98 + k)\t\(198 + k)\t\(sentences[k - 2])\t\(sentences[(k - 1) % 6])" })

    static let stsb = LineFixture(
        name: "glue-stsb", path: "STS-B/train.tsv",
        lines: ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"]
            + sentences.indices.map { "\($0)\tmain\tf\t2012\t\($0)\tnone\tnone\t\(sentences[$0])\t\(sentences[5 - $0])\t\(Double($0) * 0.8)" },
        headerLines: 1, read: glueRead(.stsb), separator: "\t",
        withLabel: { k, label in "\(k - 2)\tmain\tf\t2012\t\(k - 2)\tnone\tnone\t\(sentences[k - 2])\t\(sentences[7 - k])\t\(label)" })

    static let cola = LineFixture(
        name: "glue-cola", path: "CoLA/train.tsv",
        lines: sentences.indices.map { "src\($0)\t\(($0 + 1) % 2)\t\($0 % 2 == 0 ? "" : "*")\t\(sentences[$0])" },
        headerLines: 0, read: glueRead(.cola), separator: "\t",
        withLabel: { k, label in "src\(k - 1)\t\(label)\t\t\(sentences[k - 1])" })

    static let lineFixtures = [csv, tsv, jsonl, sst2, mrpc, stsb, cola]

    static let squadJSON = """
        {
          "version": "1.1",
          "data": [
            {
              "title": "Pets",
              "paragraphs": [
                {
                  "context": "The cat sat on the mat. Dogs bark loudly.",
                  "qas": [
                    {"id": "q1", "question": "Where did the cat sit?", "answers": [{"text": "on the mat", "answer_start": 12}]},
                    {"id": "q2", "question": "What do dogs do?", "answers": [{"text": "bark loudly", "answer_start": 29}]}
                  ]
                },
                {
                  "context": "Café owners open at nine.",
                  "qas": [{"id": "q3", "question": "When do they open?", "answers": [{"text": "nine", "answer_start": 20}]}]
                }
              ]
            }
          ]
        }

        """

    static func squadRead(_ url: URL) throws -> Int {
        try SQuADSource(version2: false, directory: url.deletingLastPathComponent()).load(train: false).dev.examples.count
    }

    // MARK: - The corpus

    static func corpus() -> [Case] {
        var cases: [Case] = []
        for f in lineFixtures { cases += lineCases(f) }
        cases += jsonlCases()
        cases += squadCases()
        return cases
    }

    static func text(_ lines: [String]) -> [UInt8] { Array((lines.joined(separator: "\n") + "\n").utf8) }

    static func junk(seed: UInt64, count: Int, nul: Bool) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let b = UInt8(truncatingIfNeeded: state >> 33)
            return nul && b % 7 == 0 ? 0 : b | 0x80
        }
    }

    /// The cases every line-oriented fixture gets.
    static func lineCases(_ f: LineFixture) -> [Case] {
        var cases: [Case] = []
        let rows = f.lines.count - f.headerLines
        func add(_ family: String, _ name: String, _ content: Content, _ expect: Expect) {
            cases.append(Case(family: family, name: "\(f.name)/\(family)/\(name)", path: f.path, content: content,
                              expect: expect, read: f.read))
        }
        func bytes(_ family: String, _ name: String, _ b: [UInt8], _ expect: Expect) { add(family, name, .bytes(b), expect) }
        func lines(_ family: String, _ name: String, _ l: [String], _ expect: Expect) { bytes(family, name, text(l), expect) }
        let firstData = f.headerLines + 1, lastData = f.lines.count

        bytes("baseline", "unchanged", text(f.lines), .examples(rows))
        // Truncations: at line ends (fewer examples), inside the first field of the last line (too few columns),
        // and inside the header.
        for keep in [2, 4] { lines("truncate", "after \(keep) examples", Array(f.lines.prefix(f.headerLines + keep)), .examples(keep)) }
        let cutLine = Array(f.lines.prefix(lastData - 1)) + [String(f.lines[lastData - 1].prefix(3))]
        let cutError: [String] = f.name == "jsonl" ? ["expected a JSON object"] : f.name == "glue-cola" ? ["4 tab-separated columns"] : ["missing columns"]
        bytes("truncate", "inside the last line", Array(cutLine.joined(separator: "\n").utf8), .error(line: lastData, cutError))
        if f.headerLines > 0 {
            bytes("truncate", "inside the header", Array(f.lines[0].prefix(3).utf8), .error(line: nil, []))
        }
        bytes("empty", "no bytes", [], .error(line: nil, ["empty"]))
        bytes("empty", "only newlines", Array("\n\n\r\n".utf8), .error(line: nil, ["empty"]))
        bytes("empty", "only a byte order mark", [0xEF, 0xBB, 0xBF], .error(line: nil, ["empty"]))
        add("files", "a directory", .directory, .error(line: nil, ["is a directory; expected a file"]))
        add("files", "missing", .missing, .error(line: nil, []))

        // Encodings.
        let utf16: [UInt8] = [0xFF, 0xFE] + text(f.lines).flatMap { [$0, 0] as [UInt8] }
        bytes("encoding", "UTF-16LE", utf16, .error(line: 1, ["UTF-8"]))
        bytes("encoding", "byte order mark", [0xEF, 0xBB, 0xBF] + text(f.lines), .examples(rows))
        bytes("encoding", "CRLF line ends", Array((f.lines.joined(separator: "\r\n") + "\r\n").utf8), .examples(rows))
        var latin1 = f.lines.map { Array($0.utf8) }
        latin1[firstData] = Array(f.lines[firstData].replacingOccurrences(of: "café", with: "caf").utf8)
        latin1[firstData].insert(0xE9, at: latin1[firstData].count / 2)
        bytes("encoding", "a Latin-1 byte", Array(latin1.joined(separator: [0x0A])) + [0x0A], .error(line: firstData + 1, ["UTF-8"]))
        var lone = f.lines.map { Array($0.utf8) }
        lone[lastData - 1].insert(0x80, at: 1)
        bytes("encoding", "a lone continuation byte", Array(lone.joined(separator: [0x0A])), .error(line: lastData, ["UTF-8"]))

        // Columns.
        if f.headerLines > 0 {
            var renamed = f.lines
            renamed[0] = renamed[0].replacingOccurrences(of: f.name.hasPrefix("glue-mrpc") ? "#1 String" : "ext", with: "xt")
                .replacingOccurrences(of: "sentence", with: "sentense").replacingOccurrences(of: "score", with: "scores")
            if renamed[0] != f.lines[0] { lines("columns", "a column renamed", renamed, .error(line: 1, [])) }
            lines("columns", "header only", [f.lines[0]], .error(line: nil, ["no examples"]))
        }
        if f.name != "jsonl" {
            var extra = f.lines
            extra[firstData] += f.separator + "surplus"
            lines("columns", "a row with an extra field", extra, .error(line: firstData + 1, []))
            var short = f.lines
            short[lastData - 1] = String(short[lastData - 1][..<short[lastData - 1].range(of: f.separator, options: .backwards)!.lowerBound])
            lines("columns", "a row without its last field", short, .error(line: lastData, []))
            var blank = f.lines
            blank.insert("", at: firstData)
            lines("columns", "a blank line between rows", blank, .error(line: firstData + 1, []))
        }

        // Labels.
        let badLabels: [(String, String, Bool)] = {
            switch f.name {
            case "glue-stsb": return [("not a number", "high", true), ("nan", "nan", true), ("1e999", "1e999", true), ("empty", "", true)]
            case "glue-sst2", "glue-mrpc", "glue-cola": return [("out of the set", "2", true), ("with a space", " 1", true), ("empty", "", true), ("a word", "positive", true)]
            case "jsonl": return [("1e999", "1e999", true), ("null", "null", true), ("an object", "{}", true), ("empty string", "\"\"", true),
                                  ("a trailing space", "\"pos \"", true)]
            default: return [("empty", "", true), ("a trailing space", "pos ", true), ("a leading tab", "\tneg", true)]
            }
        }()
        for (what, label, isError) in badLabels {
            var l = f.lines
            l[lastData - 1] = f.withLabel(lastData, label)
            lines("labels", what, l, isError ? .error(line: lastData, []) : .examples(rows))
        }

        // Huge fields and junk.
        // The second example's text is sentences[1], which no quoting changes.
        let huge = String(repeating: "word ", count: 200_000)
        var big = f.lines
        big[firstData] = f.lines[firstData].replacingOccurrences(of: sentences[1], with: huge)
        lines("huge", "a 1 MB text field", big, .examples(rows))
        for seed in [1, 2] as [UInt64] {
            bytes("junk", "4 kB of binary junk, seed \(seed)", junk(seed: seed, count: 4096, nul: seed == 2), .error(line: nil, []))
        }
        var nul = f.lines
        nul[firstData] = f.lines[firstData].replacingOccurrences(of: sentences[1], with: "dull\u{0} and far")
        // JSON forbids a raw control character in a string.
        lines("junk", "a NUL byte in a text", nul, f.name == "jsonl" ? .error(line: firstData + 1, []) : .examples(rows))
        if f.name == "csv" {
            // On the last line, so that no later quote closes it.
            var open = f.lines
            open[lastData - 1] = "\"never closed,pos"
            lines("columns", "an unterminated quote", open, .error(line: lastData, ["unterminated"]))
            open[lastData - 1] = "\"" + huge + ",pos"
            lines("huge", "an unterminated quote over 1 MB", open, .error(line: lastData, ["unterminated"]))
        }
        return cases
    }

    /// JSON-lines cases beyond the line-oriented ones.
    static func jsonlCases() -> [Case] {
        let f = jsonl
        var cases: [Case] = []
        func line(_ name: String, _ replacement: String, _ expect: Expect) {
            var l = f.lines
            l[3] = replacement
            cases.append(Case(family: "jsonl", name: "jsonl/jsonl/\(name)", path: f.path, content: .bytes(text(l)),
                              expect: expect, read: f.read))
        }
        line("a JSON array", "[1, 2]", .error(line: 4, ["expected a JSON object"]))
        line("null", "null", .error(line: 4, ["expected a JSON object"]))
        line("text a number", "{\"text\": 5, \"label\": \"pos\"}", .error(line: 4, ["expected a string"]))
        line("text missing", "{\"label\": \"pos\"}", .error(line: 4, ["missing key"]))
        line("nested 600 deep", "{\"text\": \"a\", \"label\": \"pos\", \"x\": " + String(repeating: "[", count: 600) + String(repeating: "]", count: 600) + "}",
             .error(line: 4, []))
        line("a number out of range elsewhere", "{\"text\": \"a\", \"label\": \"pos\", \"x\": -1e400}", .error(line: 4, ["out of range"]))
        // Foundation's JSONDecoder accepts a trailing comma (Python's json does not); the meaning is unambiguous.
        line("trailing comma", "{\"text\": \"a\", \"label\": \"pos\",}", .errorOrExamples(line: 4, 6))
        line("single quotes", "{'text': 'a', 'label': 'pos'}", .error(line: 4, []))
        line("two objects", "{\"text\": \"a\", \"label\": \"pos\"} {\"text\": \"b\", \"label\": \"neg\"}", .error(line: 4, []))
        line("label 1.0 beside strings", "{\"text\": \"a\", \"label\": 1.0}", .examples(6))
        return cases
    }

    static func squadCases() -> [Case] {
        var cases: [Case] = []
        let path = "squad/dev-v1.1.json"
        func add(_ family: String, _ name: String, _ content: Content, _ expect: Expect) {
            cases.append(Case(family: family, name: "squad/\(family)/\(name)", path: path, content: content, expect: expect,
                              read: squadRead))
        }
        func replacing(_ family: String, _ name: String, _ a: String, _ b: String, _ expect: Expect) {
            precondition(squadJSON.contains(a), a)
            add(family, name, .bytes(Array(squadJSON.replacingOccurrences(of: a, with: b).utf8)), expect)
        }
        let all = Array(squadJSON.utf8)
        add("baseline", "unchanged", .bytes(all), .examples(3))
        for (k, cut) in [all.count / 5, all.count / 2, all.count - 8].enumerated() {
            add("truncate", "at \(k + 1) of 3", .bytes(Array(all[0..<cut])), .error(line: nil, []))
        }
        add("empty", "no bytes", .bytes([]), .error(line: nil, ["empty"]))
        add("files", "a directory", .directory, .error(line: nil, ["is a directory; expected a file"]))
        add("files", "missing", .missing, .error(line: nil, ["no such file"]))
        add("encoding", "byte order mark", .bytes([0xEF, 0xBB, 0xBF] + all), .examples(3))
        add("encoding", "UTF-16LE", .bytes([0xFF, 0xFE] + all.flatMap { [$0, 0] as [UInt8] }), .error(line: nil, []))
        let cafeLine = 1 + squadJSON[..<squadJSON.range(of: "Café")!.lowerBound].filter { $0 == "\n" }.count
        add("encoding", "a Latin-1 byte", .bytes(Array(squadJSON.replacingOccurrences(of: "Café", with: "Caf\u{1}").utf8).map { $0 == 1 ? 0xE9 : $0 }),
            .error(line: cafeLine, ["UTF-8"]))
        add("junk", "4 kB of binary junk", .bytes(junk(seed: 3, count: 4096, nul: true)), .error(line: nil, []))
        replacing("structure", "data missing", "\"data\"", "\"dota\"", .error(line: nil, ["data"]))
        replacing("structure", "answers a string", "\"answers\": [{\"text\": \"nine\", \"answer_start\": 20}]", "\"answers\": \"nine\"",
                  .error(line: nil, ["data[0].paragraphs[1].qas[0]"]))
        replacing("structure", "answer_start off by one", "\"answer_start\": 29", "\"answer_start\": 30",
                  .error(line: nil, ["data[0].paragraphs[0].qas[1]"]))
        replacing("structure", "answer_start negative", "\"answer_start\": 12", "\"answer_start\": -1",
                  .error(line: nil, ["data[0].paragraphs[0].qas[0]"]))
        replacing("structure", "answer_start 1e999", "\"answer_start\": 12", "\"answer_start\": 1e999",
                  .error(line: nil, ["qas[0]"]))
        replacing("structure", "duplicate id", "\"id\": \"q3\"", "\"id\": \"q1\"", .error(line: nil, ["q1"]))
        replacing("structure", "a duplicate key", "\"version\": \"1.1\",", "\"version\": \"1.1\", \"version\": \"1.1\",",
                  .error(line: 2, ["duplicate key"]))
        replacing("structure", "nested 600 deep", "\"version\": \"1.1\"",
                  "\"version\": " + String(repeating: "[", count: 600) + String(repeating: "]", count: 600), .error(line: 2, ["nesting"]))
        replacing("structure", "context a number", "\"context\": \"Café owners open at nine.\"", "\"context\": 7",
                  .error(line: nil, ["data[0].paragraphs[1]"]))
        replacing("huge", "a 1 MB context", "Dogs bark loudly.", "Dogs bark loudly." + String(repeating: " woof", count: 200_000), .examples(3))
        return cases
    }

    // MARK: - The test

    func testDataCorpus() throws {
        let started = Date()
        let cases = Self.corpus()
        XCTAssertGreaterThanOrEqual(cases.count, 100)
        XCTAssertEqual(Set(cases.map(\.name)).count, cases.count, "case names must be unique")
        let root = try dataScratchDirectory()
        var outcomes: [(Case, Outcome, String)] = []
        for (k, c) in cases.enumerated() {
            let dir = root.appendingPathComponent("case-\(k)")
            let url = dir.appendingPathComponent("data").appendingPathComponent(c.path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            switch c.content {
            case .bytes(let b): try Data(b).write(to: url)
            case .directory: try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            case .missing: break
            }
            let (outcome, detail) = Self.classify(c, url: url)
            outcomes.append((c, outcome, detail))
            if outcome == .hang { continue }
            try? FileManager.default.removeItem(at: dir)
        }
        print(Self.table(outcomes, seconds: Date().timeIntervalSince(started)))
        for (c, outcome, detail) in outcomes where ![.cleanError, .correctRead].contains(outcome) {
            XCTFail("\(c.name): \(outcome.rawValue): \(detail)")
        }
    }

    /// Reads one case on a background thread with `deadline`, and checks the result against the case's row.
    static func classify(_ c: Case, url: URL) -> (Outcome, String) {
        final class Box: @unchecked Sendable { var result: Swift.Result<Int, Error>? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let read = c.read
        let thread = Thread {
            box.result = Swift.Result { try read(url) }
            done.signal()
        }
        thread.stackSize = 8 << 20
        thread.start()
        guard done.wait(timeout: .now() + deadline) == .success, let result = box.result else {
            return (.hang, "no answer within \(Int(deadline)) s")
        }
        switch (result, c.expect) {
        case (.success(let n), .examples(let expected)), (.success(let n), .errorOrExamples(_, let expected)):
            return n == expected ? (.correctRead, "") : (.unexpectedRead, "\(n) examples, expected \(expected)")
        case (.success(let n), .error):
            return (.unexpectedRead, "read \(n) examples; expected an error")
        case (.failure(let error), .examples(let expected)):
            return (.wrongError, "expected \(expected) examples: \(error)")
        case (.failure(let error), .errorOrExamples(let line, _)):
            return check(error, line: line, [])
        case (.failure(let error), .error(let line, let fragments)):
            return check(error, line: line, fragments)
        }
        func check(_ error: Error, line: Int?, _ fragments: [String]) -> (Outcome, String) {
            let text = "\(error)"
            var missing: [String] = []
            if !text.contains(url.lastPathComponent) { missing.append("the file name") }
            if let line, !text.contains("\(url.lastPathComponent):\(line)") { missing.append("line \(line)") }
            missing += fragments.filter { !text.contains($0) }.map { "\"\($0)\"" }
            let shown = text.replacingOccurrences(of: url.deletingLastPathComponent().path, with: "DIR")
            return missing.isEmpty ? (.cleanError, shown) : (.wrongError, "lacks \(missing.joined(separator: ", ")): \(shown)")
        }
    }

    static func table(_ outcomes: [(Case, Outcome, String)], seconds: Double) -> String {
        var families: [String] = []
        var counts: [String: [Outcome: Int]] = [:]
        for (c, o, _) in outcomes {
            let family = String(c.name.split(separator: "/")[1])
            if counts[family] == nil { families.append(family); counts[family] = [:] }
            counts[family]![o, default: 0] += 1
        }
        var out = "data fuzz: \(outcomes.count) cases in \(String(format: "%.1f", seconds)) s\n"
        out += (["family"] + Outcome.allCases.map(\.rawValue) + ["total"]).joined(separator: " | ") + "\n"
        for f in families + ["all"] {
            let row = f == "all" ? Dictionary(grouping: outcomes, by: \.1).mapValues(\.count) : counts[f]!
            out += ([f] + Outcome.allCases.map { "\(row[$0] ?? 0)" } + ["\(row.values.reduce(0, +))"]).joined(separator: " | ") + "\n"
        }
        return out
    }
}

/// A JSON string literal (the tests' own, so that they do not lean on the code under test).
private func JSONQuote(_ s: String) -> String {
    "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}
