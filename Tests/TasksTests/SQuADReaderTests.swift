import Foundation
import XCTest
@testable import Tasks

/// The golden file written by scripts/reference/make_squad_golden.py and the SQuAD sample files it reads.
enum SQuADFixtures {
    struct Golden: Decodable {
        struct Feature: Decodable {
            var example_id: String
            var example_index: Int
            var input_ids: [Int]
            var token_type_ids: [Int]
            var context_start: Int
            var context_offsets: [Int]
            var start_position: Int
            var end_position: Int
        }
        struct Candidate: Decodable {
            var text: String
            var start_logit: Double
            var end_logit: Double
            var probability: Double
        }
        struct Run: Decodable {
            var null_score_diff_threshold: Double
            var predictions: [String: String]
            var null_score_diff: [String: Double]?
            var metrics: [String: Double]
        }
        struct Config: Decodable {
            var max_length: Int
            var stride: Int
            var example_ids: [String]
            var features: [Feature]
            var start_logits: [[Int]]?
            var end_logits: [[Int]]?
            var nbest: [String: [Candidate]]?
            var postprocess: [Run]?
        }
        struct File: Decodable {
            var file: String
            var version_2_with_negative: Bool
            var configs: [Config]
        }
        struct Pair: Decodable {
            var prediction: String
            var gold: [String]
            var v1_exact: Bool?
            var v1_f1: Double?
            var v2_exact: Bool
            var v2_f1: Double
        }
        var generator: String
        var logit_denominator: Int
        var files: [File]
        var normalize: [[String]]
        var pairs: [Pair]
    }

    static func url(_ name: String) throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: "json"),
                      "Fixtures/\(name).json is missing; run scripts/reference/make_squad_golden.py")
    }

    static func golden() throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url("squad_golden")))
    }

    static func dataset(_ file: String) throws -> SQuADDataset {
        try SQuADDataset.load(contentsOf: url(String(file.dropLast(".json".count))))
    }

    /// The feature the golden file describes, padded back to `maxLength` (id 0, type 0, mask 0, no offset).
    static func feature(_ f: Golden.Feature, maxLength: Int) -> SQuADFeature {
        let n = f.input_ids.count, pad = maxLength - n
        var offsets = [Range<Int>?](repeating: nil, count: maxLength)
        for k in 0..<(f.context_offsets.count / 2) {
            offsets[f.context_start + k] = f.context_offsets[2 * k]..<f.context_offsets[2 * k + 1]
        }
        return SQuADFeature(exampleIndex: f.example_index, exampleId: f.example_id,
                            inputIds: f.input_ids + Array(repeating: 0, count: pad),
                            tokenTypeIds: f.token_type_ids + Array(repeating: 0, count: pad),
                            attentionMask: Array(repeating: 1, count: n) + Array(repeating: 0, count: pad),
                            offsets: offsets, startPosition: f.start_position, endPosition: f.end_position)
    }
}

/// Strings compared as Python does: scalar for scalar.
func squadScalars(_ s: String) -> [UInt32] { s.unicodeScalars.map(\.value) }

final class SQuADReaderTests: XCTestCase {
    func testReadsTheV1SampleWithUnicodeAndSeveralAnswers() throws {
        let d = try SQuADFixtures.dataset("squad_v1_sample.json")
        XCTAssertEqual(d.version, "1.1")
        XCTAssertFalse(d.isVersion2)
        XCTAssertEqual(d.examples.count, 22)
        XCTAssertEqual(d.examples.map(\.id).prefix(3), ["danube-02", "danube-03", "danube-04"])
        XCTAssertEqual(Set(d.examples.map(\.id)).count, 22)
        for e in d.examples {
            XCTAssertFalse(e.answers.isEmpty)
            XCTAssertFalse(e.isImpossible)
            for a in e.answers {
                XCTAssertEqual(squadScalars(SQuADText.slice(e.context, a.start, a.end)), squadScalars(a.text), e.id)
            }
        }
        let zurich = try XCTUnwrap(d.examples.first { $0.id == "zurich-06" })
        XCTAssertEqual(zurich.title, "Zürich")
        XCTAssertEqual(zurich.path, "data[1].paragraphs[0].qas[5]")
        XCTAssertEqual(squadScalars(zurich.question), squadScalars("\u{3000}\tHow does the café describe itself?"),
                       "questions are kept as written; features strip them")
        XCTAssertEqual(zurich.answers.map(\.text), ["ﬁne dining 🍰", "ﬁne dining"])
        // answer_start counts Unicode scalars: the emoji is one, the fullwidth/accented letters one each.
        XCTAssertEqual(zurich.answers[0].start, Array(zurich.context.unicodeScalars).firstIndex(of: "ﬁ")!)
        XCTAssertEqual(zurich.answers[0].end - zurich.answers[0].start, 12)
        let athens = try XCTUnwrap(d.examples.first { $0.id == "athens-03" })
        XCTAssertEqual(squadScalars(athens.answers[0].text), [0x391, 0x301, 0x74, 0x68, 0x65, 0x6E, 0x73],
                       "the combining accent stays a separate scalar")
        XCTAssertEqual(d.examples.first { $0.id == "danube-02" }?.answers.count, 3)
    }

    func testReadsTheV2SampleWithUnanswerableQuestions() throws {
        let d = try SQuADFixtures.dataset("squad_v2_sample.json")
        XCTAssertEqual(d.version, "v2.0")
        XCTAssertTrue(d.isVersion2)
        XCTAssertEqual(d.examples.count, 10)
        let impossible = d.examples.filter(\.isImpossible)
        XCTAssertEqual(impossible.map(\.id), ["kyoto-v2-02", "kyoto-v2-03", "zurich-v2-01", "zurich-v2-03",
                                             "danube-v2-02"])
        XCTAssertTrue(impossible.allSatisfy { $0.answers.isEmpty && $0.plausibleAnswers.count == 1 })
        XCTAssertEqual(impossible[1].plausibleAnswers, [SQuADAnswer(text: "a monk", start: 264)])
        // The v2 file is ASCII with \u escapes (surrogate pairs for the emoji); it reads to the same text as v1's.
        let v1 = try SQuADFixtures.dataset("squad_v1_sample.json")
        let z1 = try XCTUnwrap(v1.examples.first { $0.id == "zurich-02" }), z2 = try XCTUnwrap(d.examples.first {
            $0.id == "zurich-v2-02" })
        XCTAssertEqual(squadScalars(z1.context), squadScalars(z2.context))
    }

    // MARK: - Bad input

    private func error(_ json: String, file: String = "bad.json") -> SQuADError? {
        error(Data(json.utf8), file: file)
    }

    private func error(_ data: Data, file: String = "bad.json") -> SQuADError? {
        do {
            _ = try SQuADDataset(parsing: data, source: file)
            return nil
        } catch let e as SQuADError {
            return e
        } catch {
            XCTFail("unexpected error type: \(error)")
            return nil
        }
    }

    private func assertError(_ json: String, path: String?, line: Int? = nil, contains parts: [String],
                             file: StaticString = #filePath, line testLine: UInt = #line) {
        guard let e = error(json) else { return XCTFail("no error", file: file, line: testLine) }
        XCTAssertEqual(e.file, "bad.json", file: file, line: testLine)
        XCTAssertEqual(e.path, path, "\(e)", file: file, line: testLine)
        if let l = line { XCTAssertEqual(e.line, l, "\(e)", file: file, line: testLine) }
        for p in parts { XCTAssertTrue(e.description.contains(p), "'\(p)' not in: \(e)", file: file, line: testLine) }
    }

    /// A small valid file with one question, for mutating.
    private func one(context: String = "Marie Curie won two Nobel Prizes.", answer: String = "two",
                     start: Int = 16, extra: String = "") -> String {
        """
        {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": \(json(context)), "qas": [
          {"id": "q1", "question": "How many?", "answers": [{"text": \(json(answer)), "answer_start": \(start)}]\(extra)}
        ]}]}]}
        """
    }

    private func json(_ s: String) -> String {
        String(data: try! JSONSerialization.data(withJSONObject: [s], options: []), encoding: .utf8)!
            .dropFirst().dropLast().description
    }

    func testValidFilesParse() throws {
        XCTAssertNil(error(one()))
        let d = try SQuADDataset(parsing: Data(one().utf8), source: "x")
        XCTAssertEqual(d.examples[0].answers, [SQuADAnswer(text: "two", start: 16)])
        // A UTF-8 byte-order mark is skipped.
        XCTAssertNil(error(Data([0xEF, 0xBB, 0xBF]) + Data(one().utf8)))
    }

    func testEmptyAndInvalidFiles() {
        assertError("", path: nil, contains: ["bad.json", "empty"])
        assertError("  \n ", path: nil, contains: ["empty"])
        var bytes = Data("{\"data\": [\n{\"title\": \"".utf8)
        bytes.append(contentsOf: [0x41, 0xC3, 0x28])
        bytes.append(contentsOf: Data("\"}]}".utf8))
        let e = error(bytes)
        XCTAssertEqual(e?.line, 2)
        XCTAssertTrue(e?.description.contains("invalid UTF-8 (byte 0xC3 at byte offset 23)") ?? false, "\(String(describing: e))")
        assertError("{\"data\": [\n  {\"paragraphs\": []},\n  {\"paragraphs\": [] ]}", path: nil, line: 3,
                    contains: ["bad.json:3", "column 21", "expected ',' or '}'"])
        assertError("{\"data\": []} x", path: nil, contains: ["after the top-level value"])
        assertError("{\"data\": [], \"data\": []}", path: nil, contains: ["duplicate key \"data\""])
        assertError("[]", path: "(top level)", contains: ["expected an object, found an array"])
        assertError("{\"data\": {}}", path: "data", contains: ["expected an array, found an object"])
        assertError(#"{"data": [{"paragraphs": [{"context": "x\ud800y", "qas": []}]}]}"#, path: nil,
                    contains: ["lone UTF-16 surrogate"])
        assertError("{\"data\": [{\"paragraphs\": [{\"context\": \"a\tb\", \"qas\": []}]}]}", path: nil,
                    contains: ["invalid control character 0x09"])
    }

    func testMissingKeysAndWrongTypesNameTheJSONPath() {
        assertError(#"{"version": "1.1"}"#, path: "(top level)", contains: ["missing key \"data\""])
        assertError(#"{"data": [{"paragraphs": [{"qas": []}]}]}"#, path: "data[0].paragraphs[0]",
                    contains: ["missing key \"context\""])
        assertError(one().replacingOccurrences(of: #""question": "How many?", "#, with: ""),
                    path: "data[0].paragraphs[0].qas[0]", line: 2, contains: ["missing key \"question\""])
        assertError(one().replacingOccurrences(of: #""answer_start": 16"#, with: #""answer_start": "16""#),
                    path: "data[0].paragraphs[0].qas[0].answers[0].answer_start",
                    contains: ["expected an integer, found a string"])
        assertError(one().replacingOccurrences(of: #""answer_start": 16"#, with: #""answer_start": 16.0"#),
                    path: "data[0].paragraphs[0].qas[0].answers[0].answer_start",
                    contains: ["expected an integer, found the number 16.0"])
        assertError(one().replacingOccurrences(of: #""answer_start": 16"#, with: #""answer_start": true"#),
                    path: "data[0].paragraphs[0].qas[0].answers[0].answer_start",
                    contains: ["expected an integer, found a boolean"])
        assertError(one().replacingOccurrences(of: #""id": "q1""#, with: #""id": 1"#),
                    path: "data[0].paragraphs[0].qas[0].id", contains: ["expected a string, found a number"])
        assertError(one(extra: #", "is_impossible": "no""#), path: "data[0].paragraphs[0].qas[0].is_impossible",
                    contains: ["expected true or false, found a string"])
        assertError(one(extra: #", "plausible_answers": [{"text": 3, "answer_start": 0}]"#),
                    path: "data[0].paragraphs[0].qas[0].plausible_answers[0].text", contains: ["expected a string"])
    }

    func testAnswersMustMatchTheContextInUnicodeScalars() {
        assertError(one(start: 15), path: "data[0].paragraphs[0].qas[0].answers[0]", line: 2,
                    contains: ["answer text \"two\" does not match context[15..<18] = \" tw\"",
                               "Unicode scalars", "occur at answer_start 16"])
        assertError(one(start: 31), path: "data[0].paragraphs[0].qas[0].answers[0]",
                    contains: ["runs outside the context of length 33"])
        assertError(one(start: -1), path: "data[0].paragraphs[0].qas[0].answers[0]", contains: ["runs outside"])
        assertError(one(answer: "", start: 0), path: "data[0].paragraphs[0].qas[0].answers[0]",
                    contains: ["the answer text is empty"])
        // An emoji before the answer is one scalar but two UTF-16 units: UTF-16 offsets are off by one.
        let emoji = "🎉 Marie Curie won two Nobel Prizes."
        XCTAssertNil(error(one(context: emoji, start: 18)))
        assertError(one(context: emoji, start: 19), path: "data[0].paragraphs[0].qas[0].answers[0]",
                    contains: ["occur at answer_start 18"])
        // Canonically equivalent is not equal: Python compares code points, and so must we.
        assertError(one(context: "Caf\u{E9} au lait", answer: "Cafe\u{301}", start: 0),
                    path: "data[0].paragraphs[0].qas[0].answers[0]", contains: ["does not match"])
        // Plausible answers are not checked against the context (see SQuADDataset).
        XCTAssertNil(error(one(extra: #", "plausible_answers": [{"text": "zzz", "answer_start": 0}]"#)))
    }

    func testQuestionLevelRules() {
        let two = """
        {"data": [{"paragraphs": [{"context": "abc", "qas": [
          {"id": "q", "question": "?", "answers": [{"text": "a", "answer_start": 0}]}]}]},
          {"paragraphs": [{"context": "abc", "qas": [
          {"id": "r", "question": "?", "answers": [{"text": "b", "answer_start": 1}]},
          {"id": "q", "question": "?", "answers": [{"text": "c", "answer_start": 2}]}]}]}]}
        """
        assertError(two, path: "data[1].paragraphs[0].qas[1]", line: 5,
                    contains: ["duplicate question id \"q\" (first used at data[0].paragraphs[0].qas[0])"])
        assertError(one(extra: #", "is_impossible": true"#), path: "data[0].paragraphs[0].qas[0]",
                    contains: ["is_impossible is true but the question has 1 answer(s)"])
        let noAnswer = one().replacingOccurrences(of: #"[{"text": "two", "answer_start": 16}]"#, with: "[]")
        assertError(noAnswer, path: "data[0].paragraphs[0].qas[0]", contains: ["the question has no answers"])
        XCTAssertNil(error(noAnswer.replacingOccurrences(of: "\"answers\": []",
                                                         with: "\"answers\": [], \"is_impossible\": true")))
        let mismatch = try? SQuADDataset(parsing: Data(one(start: 15).utf8), source: "/data/train-v1.1.json")
        XCTAssertNil(mismatch)
    }

    func testErrorDescriptionNamesFileLinePathAndExpectation() {
        let e = SQuADError(file: "dev.json", path: "data[3].paragraphs[0].qas[2].answers[1]", line: 57,
                           "answer text \"a\" does not match context[0..<1] = \"b\"")
        XCTAssertEqual(e.description, "dev.json:57: data[3].paragraphs[0].qas[2].answers[1]: answer text \"a\" "
                       + "does not match context[0..<1] = \"b\"")
    }
}
