import Foundation
import XCTest
@testable import Tasks

/// The real all-MiniLM-L6-v2 tokenizer files (fetched by `cofi fetch` into .assets/, or $COFI_ASSETS),
/// loaded once per test process.
enum TokenizerAssets {
    static var directory: URL {
        if let dir = ProcessInfo.processInfo.environment["COFI_ASSETS"] {
            return URL(fileURLWithPath: dir).appendingPathComponent("all-MiniLM-L6-v2")
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".assets/all-MiniLM-L6-v2")
    }

    static func require() throws -> URL {
        let dir = directory
        for name in ["vocab.txt", "tokenizer.json"]
        where !FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path) {
            throw TokenizerError("\(dir.path)/\(name) is missing: run `swift run cofi fetch` first (or set COFI_ASSETS)")
        }
        return dir
    }

    /// From tokenizer.json, as `BertTokenizerFast.from_pretrained` reads it.
    static let uncased = Result { try WordPieceTokenizer.load(directory: try require()) }
    /// The same vocab.txt without lowercasing (no cased vocabulary can be had offline).
    static let cased = Result {
        try WordPieceTokenizer.load(vocabFile: try require().appendingPathComponent("vocab.txt"), doLowerCase: false)
    }
    static let vocabulary = Result { try WordPieceTokenizer.readVocab(try require().appendingPathComponent("vocab.txt")) }
}

/// The fixture files of scripts/reference/make_tokenizer_golden.py.
enum TokenizerGolden {
    struct Record: Decodable {
        let line: Int
        let ids: [Int]
        let types: [Int]?
        let offsets: [Int]
        let trunc: [Truncated]?
        let decode: String?
        let decode_special: String?
    }

    struct Truncated: Decodable {
        let max: Int
        let strategy: String
        let ids: [Int]?
        let types: [Int]?
        let n: Int?
        let error: Bool?
    }

    static func url(_ name: String, _ ext: String) throws -> URL {
        guard let url = Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: ext) else {
            throw TokenizerError("fixture Fixtures/\(name).\(ext) is missing from the test bundle")
        }
        return url
    }

    static func lines(_ name: String, _ ext: String) throws -> [Data] {
        let data = try Data(contentsOf: try url(name, ext))
        return data.split(separator: 0x0A, omittingEmptySubsequences: true).map { Data($0) }
    }

    /// The texts: one or two per line.
    static let corpus = Result { try lines("tokenizer_corpus", "jsonl").map { try JSONDecoder().decode([String].self, from: $0) } }

    static func records(_ variant: String) throws -> [Record] {
        let decoder = JSONDecoder()
        return try lines("tokenizer_golden_\(variant)", "jsonl").dropFirst().map { try decoder.decode(Record.self, from: $0) }
    }
}

final class TokenizerGoldenTests: XCTestCase {
    func testAssetsExample() throws {
        let t = try TokenizerAssets.uncased.get()
        let e = t.encode("Hello, world! Unaffable tokenization.")
        XCTAssertEqual(e.ids, [101, 7592, 1010, 2088, 999, 14477, 20961, 3468, 19204, 3989, 1012, 102])
        XCTAssertEqual(t.tokens(e.ids), ["[CLS]", "hello", ",", "world", "!", "una", "##ffa", "##ble", "token", "##ization",
                                         ".", "[SEP]"])
        XCTAssertEqual(e.offsets, [nil, 0..<5, 5..<6, 7..<12, 12..<13, 14..<17, 17..<20, 20..<23, 24..<29, 29..<36,
                                   36..<37, nil])
        XCTAssertEqual(e.sequenceIds, [nil] + Array(repeating: 0, count: 10) + [nil])
        XCTAssertEqual(e.typeIds, Array(repeating: 0, count: 12))
        XCTAssertEqual(e.attentionMask, Array(repeating: 1, count: 12))
    }

    func testUncasedMatchesHF() throws {
        try compare(variant: "uncased", try TokenizerAssets.uncased.get())
    }

    func testCasedMatchesHF() throws {
        try compare(variant: "cased", try TokenizerAssets.cased.get())
    }

    func testLowercaseKeepingAccentsMatchesHF() throws {
        let t = try WordPieceTokenizer(vocabulary: try TokenizerAssets.vocabulary.get(), doLowerCase: true,
                                       stripAccents: false)
        try compare(variant: "lower_keep_accents", t)
    }

    func testStripWithoutCleaningMatchesHF() throws {
        let t = try WordPieceTokenizer(vocabulary: try TokenizerAssets.vocabulary.get(), doLowerCase: false,
                                       stripAccents: true, tokenizeChineseChars: false, cleanText: false)
        try compare(variant: "strip_no_clean", t)
    }

    /// Every fixture line of one variant: ids, type ids and offsets without truncation; truncated and padded
    /// encodings; decoding. Everything must be identical.
    func compare(variant: String, _ t: WordPieceTokenizer, file: StaticString = #filePath, line: UInt = #line) throws {
        let corpus = try TokenizerGolden.corpus.get()
        let records = try TokenizerGolden.records(variant)
        var lines = 0, identicalLines = 0, tokens = 0, identicalTokens = 0, truncations = 0, decodes = 0
        var failures: [String] = []
        for r in records {
            let texts = corpus[r.line]
            let e = t.encode(texts[0], texts.count > 1 ? texts[1] : nil)
            let types = r.types ?? Array(repeating: 0, count: r.ids.count)
            let offsets = e.offsets.flatMap { o in o.map { [$0.lowerBound, $0.upperBound] } ?? [0, 0] }
            lines += 1
            tokens += r.ids.count
            let same = e.ids == r.ids && e.typeIds == types && offsets == r.offsets
                && e.attentionMask == Array(repeating: 1, count: r.ids.count)
            if same {
                identicalLines += 1
                identicalTokens += r.ids.count
            } else {
                identicalTokens += zip(zip(e.ids, e.typeIds), e.offsets).enumerated().filter { i, x in
                    i < r.ids.count && x.0.0 == r.ids[i] && x.0.1 == types[i]
                        && (x.1.map { [$0.lowerBound, $0.upperBound] } ?? [0, 0]) == Array(r.offsets[(2 * i)..<(2 * i + 2)])
                }.count
                if failures.count < 10 {
                    failures.append("line \(r.line) \(texts.map { quoted($0) }):\n  ids  \(e.ids)\n  HF   \(r.ids)\n"
                                    + "  types \(e.typeIds)\n  HF    \(types)\n  offsets \(offsets)\n  HF      \(r.offsets)\n"
                                    + "  tokens \(t.tokens(e.ids))\n  HF     \(t.tokens(r.ids))")
                }
            }
            for x in r.trunc ?? [] {
                truncations += 1
                let strategy = try XCTUnwrap(Truncation(rawValue: x.strategy))
                let b = texts.count > 1 ? texts[1] : nil
                if x.error == true {
                    do {
                        _ = try t.encodeChecked(texts[0], b, maxLength: x.max, truncation: strategy, padToMaxLength: true)
                        failures.append("line \(r.line) max \(x.max) \(x.strategy): HF raises, encodeChecked did not")
                    } catch let error as TokenizerError {
                        XCTAssertEqual(error.description, TokenizerError.sequenceTooShort, file: file, line: line)
                    }
                    // encode falls back to longest_first, which always fits.
                    let fallback = t.encode(texts[0], b, maxLength: x.max, truncation: strategy, padToMaxLength: true)
                    let longest = t.encode(texts[0], b, maxLength: x.max, truncation: .longestFirst, padToMaxLength: true)
                    if fallback != longest || fallback.count != x.max {
                        failures.append("line \(r.line) max \(x.max) \(x.strategy): the fallback is not longest_first")
                    }
                    continue
                }
                let te = try t.encodeChecked(texts[0], b, maxLength: x.max, truncation: strategy, padToMaxLength: true)
                let n = try XCTUnwrap(x.n)
                let mask = Array(repeating: 1, count: n) + Array(repeating: 0, count: (x.ids?.count ?? 0) - n)
                let want = x.types ?? []
                if te.ids != x.ids || te.typeIds != want || te.attentionMask != mask
                    || te != t.encode(texts[0], b, maxLength: x.max, truncation: strategy, padToMaxLength: true) {
                    failures.append("line \(r.line) max \(x.max) \(x.strategy):\n  ids \(te.ids)\n  HF  \(x.ids ?? [])\n"
                                    + "  types \(te.typeIds)\n  HF    \(want)\n  mask \(te.attentionMask) n \(n)")
                }
                // The kept tokens are the prefixes of each text, with their untruncated offsets.
                for (i, s) in te.sequenceIds.enumerated() where s != nil {
                    let k = e.sequenceIds.firstIndex(of: s)! + te.sequenceIds[..<i].filter { $0 == s }.count
                    if te.offsets[i] != e.offsets[k] || te.ids[i] != e.ids[k] {
                        failures.append("line \(r.line) max \(x.max) \(x.strategy): token \(i) is not the untruncated one")
                        break
                    }
                }
            }
            if let d = r.decode {
                decodes += 1
                if t.decode(r.ids) != d { failures.append("line \(r.line) decode: \(quoted(t.decode(r.ids))) vs HF \(quoted(d))") }
            }
            if let d = r.decode_special {
                decodes += 1
                let mine = t.decode(r.ids, skipSpecialTokens: false)
                if mine != d { failures.append("line \(r.line) decode_special: \(quoted(mine)) vs HF \(quoted(d))") }
            }
        }
        let percent = String(format: "%.2f", 100 * Double(identicalTokens) / Double(max(tokens, 1)))
        print("tokenizer golden \(variant): \(lines) lines (\(identicalLines) identical), \(tokens) tokens, ids + type ids + offsets identical for \(percent)% of tokens; \(truncations) truncated encodings, \(decodes) decodings")
        XCTAssertGreaterThan(lines, 500, file: file, line: line)
        XCTAssertEqual(identicalLines, lines, "\n" + failures.prefix(10).joined(separator: "\n"), file: file, line: line)
        XCTAssertTrue(failures.isEmpty, "\(failures.count) failures:\n" + failures.prefix(10).joined(separator: "\n"),
                      file: file, line: line)
    }

    /// What BertNormalizer and BertPreTokenizer do with every code point, as the fixture records it from tokenizers.
    func testEveryCodePointAsHF() throws {
        let text = try String(contentsOf: try TokenizerGolden.url("tokenizer_unicode", "txt"), encoding: .ascii)
        var flags = [String](repeating: "---", count: 0x110000)
        var strip: [UInt32: [UInt32]] = [:], lower: [UInt32: [UInt32]] = [:]
        var hangul: ClosedRange<UInt32>?
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(separator: " ")
            func hex(_ s: Substring) -> UInt32 { UInt32(s, radix: 16)! }
            switch f[0] {
            case "R": for c in hex(f[1])...hex(f[2]) { flags[Int(c)] = String(f[3]) }
            case "S": strip[hex(f[1])] = f[2] == "-" ? [] : f[2...].map(hex)
            case "L": lower[hex(f[1])] = f[2] == "-" ? [] : f[2...].map(hex)
            case "H": hangul = hex(f[1])...hex(f[2])
            default: XCTFail("unexpected line \(line)")
            }
        }
        let hangulRange = try XCTUnwrap(hangul)
        let classes = CharClass.table
        var mismatches: [String] = []
        var checked = 0
        for c in UInt32(0)..<0x110000 where !(0xD800...0xDFFF).contains(c) {
            let k = classes[Int(c)]
            let isSpace = k & CharClass.whitespace != 0
            let clean = k & CharClass.control != 0 ? "D" : (isSpace && c != 0x20 ? "W" : "-")
            let cjk = k & CharClass.chinese != 0 ? "C" : "-"
            let pre = k & CharClass.punctuation != 0 ? "P" : (isSpace ? "S" : "-")
            if clean + cjk + pre != flags[Int(c)] { mismatches.append(String(format: "U+%04X classes %@ vs HF %@", c, clean + cjk + pre, flags[Int(c)])) }
            // Only scalars that may change are run through the normalizer (the rest: Swift must agree they don't).
            let props = Unicode.Scalar(c)!.properties
            let mayChange = k & (CharClass.strippable | CharClass.mark) != 0 || props.changesWhenLowercased
                || strip[c] != nil || lower[c] != nil || hangulRange.contains(c)
            guard mayChange else { continue }
            checked += 1
            let expectStrip: [UInt32]
            if hangulRange.contains(c) {
                let s = c - 0xAC00, t = s % 28
                expectStrip = [0x1100 + s / 588, 0x1161 + (s % 588) / 28] + (t == 0 ? [] : [0x11A7 + t])
            } else {
                expectStrip = strip[c] ?? [c]
            }
            let stripper = BertNormalizer(cleanText: false, handleChineseChars: false, stripAccents: true, lowercase: false)
            let lowerer = BertNormalizer(cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: true)
            var out = AlignedScalars(), scratch = AlignedScalars()
            [c].withUnsafeBufferPointer { stripper.normalize($0, 0..<1, into: &out, scratch: &scratch) }
            if out.scalars != expectStrip { mismatches.append(String(format: "U+%04X strip_accents %@ vs HF %@", c, "\(out.scalars)", "\(expectStrip)")) }
            [c].withUnsafeBufferPointer { lowerer.normalize($0, 0..<1, into: &out, scratch: &scratch) }
            if out.scalars != lower[c] ?? [c] { mismatches.append(String(format: "U+%04X lowercase %@ vs HF %@", c, "\(out.scalars)", "\(lower[c] ?? [c])")) }
        }
        // Scalars that Swift leaves alone but HF changes would have been listed: every strip/lower entry is checked.
        print("tokenizer unicode: 1,112,064 code points classified, \(checked) normalized one by one, \(mismatches.count) differences")
        XCTAssertTrue(mismatches.isEmpty, mismatches.prefix(20).joined(separator: "\n"))
    }

    /// The scalar-table WordPiece equals HF's plain loop over Strings and the dictionary on every word of the corpus.
    func testWordPieceFastEqualsNaive() throws {
        let t = try TokenizerAssets.cased.get()
        var words = 0
        for texts in try TokenizerGolden.corpus.get() {
            for text in texts {
                for word in text.split(whereSeparator: { $0.isWhitespace || $0.isPunctuation }) {
                    let scalars = word.unicodeScalars.map(\.value)
                    var fast: [Token] = []
                    let n = AlignedScalars(scalars: scalars, starts: Array(0..<scalars.count), ends: Array(1...max(scalars.count, 1)).prefix(scalars.count).map { $0 })
                    scalars.withUnsafeBufferPointer { t.wordPiece($0, 0..<scalars.count, n, &fast) }
                    XCTAssertEqual(fast.map(\.id), t.wordPieceNaive(Array(word.unicodeScalars)), String(word))
                    words += 1
                }
            }
        }
        print("tokenizer wordpiece: \(words) words, fast == naive")
    }
}

/// Speed of the real tokenizer on all 10,605 movie snippets. In release:
/// `swift test -c release --filter TokenizerSpeedTests` (the claim in the tokenizer's report comes from there).
final class TokenizerSpeedTests: XCTestCase {
    func testMovieSnippets() throws {
        let t = try TokenizerAssets.uncased.get()
        let file = TokenizerAssets.directory.deletingLastPathComponent()
            .appendingPathComponent("movie-review-snippets/movieReviewSnippets_GroundTruth.txt")
        guard let raw = try? String(contentsOf: file, encoding: .utf8) else {
            throw TokenizerError("\(file.path) is missing: run `swift run cofi fetch` first (or set COFI_ASSETS)")
        }
        let texts = raw.split(separator: "\r\n").dropFirst().map { String($0.split(separator: "\t", maxSplits: 2)[2]) }
        XCTAssertEqual(texts.count, 10_605)
        #if DEBUG
        let (build, rounds) = ("debug", 1)
        #else
        let (build, rounds) = ("release", 3)
        #endif
        var best = Double.infinity, count = 0
        for _ in 0..<rounds {
            let start = DispatchTime.now().uptimeNanoseconds
            count = 0
            for text in texts { count += t.tokenize(text).count }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        print(String(format: "tokenizer speed (%@): %d movie snippets, %d tokens in %.3f s (best of %d), %.0f snippets/s",
                     build, texts.count, count, best, rounds, Double(texts.count) / best))
        #if !DEBUG
        XCTAssertLessThan(best, 1.0)
        #endif
    }
}
