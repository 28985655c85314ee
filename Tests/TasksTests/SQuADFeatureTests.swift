import Foundation
import XCTest
import BERT
@testable import Tasks

/// SQuAD features against HF `run_qa.py` with `BertTokenizerFast` (Fixtures/squad_golden.json), on the real
/// all-MiniLM-L6-v2 vocabulary (fetched by `cofi fetch` into .assets/, or $COFI_ASSETS).
final class SQuADFeatureTests: XCTestCase {
    static var tokenizerDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["COFI_ASSETS"] {
            return URL(fileURLWithPath: dir).appendingPathComponent("all-MiniLM-L6-v2")
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".assets/all-MiniLM-L6-v2")
    }

    func tokenizer() throws -> WordPieceTokenizer {
        let dir = Self.tokenizerDirectory
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("vocab.txt").path) else {
            throw SQuADError(file: dir.path, "the MiniLM tokenizer is missing; run `swift run cofi fetch` first")
        }
        return try WordPieceTokenizer.load(directory: dir)
    }

    func testFeaturesMatchHuggingFaceRunQA() throws {
        let g = try SQuADFixtures.golden()
        let tok = try tokenizer()
        var checked = 0, labelled = 0, multiWindow = Set<String>()
        for file in g.files {
            let dataset = try SQuADFixtures.dataset(file.file)
            let byId = Dictionary(uniqueKeysWithValues: dataset.examples.map { ($0.id, $0) })
            for config in file.configs {
                let examples = try config.example_ids.map { try XCTUnwrap(byId[$0]) }
                let options = SQuADFeatureOptions(maxLength: config.max_length, stride: config.stride)
                let mine = try SQuADFeature.make(examples: examples, tokenizer: tok, options: options)
                let ref = config.features.map { SQuADFixtures.feature($0, maxLength: config.max_length) }
                XCTAssertEqual(mine.count, ref.count, "\(file.file) \(config.max_length)/\(config.stride)")
                var failures = 0
                for (i, (m, r)) in zip(mine, ref).enumerated() {
                    let label = "\(file.file) \(config.max_length)/\(config.stride) feature \(i) (\(r.exampleId))"
                    let same = m.exampleId == r.exampleId && m.exampleIndex == r.exampleIndex
                        && m.inputIds == r.inputIds && m.tokenTypeIds == r.tokenTypeIds
                        && m.attentionMask == r.attentionMask && m.offsets == r.offsets
                        && m.startPosition == r.startPosition && m.endPosition == r.endPosition
                    if !same {
                        failures += 1
                        if failures <= 3 {
                            XCTFail("\(label): ids \(m.inputIds == r.inputIds), types \(m.tokenTypeIds == r.tokenTypeIds), "
                                    + "mask \(m.attentionMask == r.attentionMask), offsets \(m.offsets == r.offsets), "
                                    + "positions \(m.startPosition),\(m.endPosition) vs \(r.startPosition),\(r.endPosition)")
                        }
                    }
                    checked += 1
                    if r.startPosition != 0 { labelled += 1 }
                    if i > 0 && ref[i - 1].exampleId == r.exampleId { multiWindow.insert(r.exampleId) }
                }
                XCTAssertEqual(failures, 0, "\(file.file) \(config.max_length)/\(config.stride)")
            }
        }
        XCTAssertGreaterThan(checked, 150)
        print("SQuAD features vs HF run_qa.py: \(checked) features identical (ids, type ids, mask, offsets, "
              + "positions); \(labelled) hold their answer; \(multiWindow.count) questions span several windows")
    }

    /// The answer in the last context token of a window: HF labels the start as the feature's last position.
    func testHuggingFacesLastTokenLabelIsKept() throws {
        let tok = try tokenizer()
        let d = try SQuADFixtures.dataset("squad_v1_sample.json")
        let e = try XCTUnwrap(d.examples.first { $0.id == "lovelace-01" })
        let f = try SQuADFeature.make(examples: [e], tokenizer: tok)
        XCTAssertEqual(f.count, 1)
        XCTAssertEqual(f[0].startPosition, 383)
        XCTAssertEqual(f[0].offsets[f[0].endPosition].map { SQuADText.slice(e.context, $0.lowerBound, $0.upperBound) },
                       "1843")
    }

    func testStrideIsTheOverlapBetweenWindows() throws {
        let e = SQuADExample(id: "q", context: "", question: "", answers: [])
        let w = try SQuADFeature.windows(contextCount: 100, questionCount: 10,
                                         options: SQuADFeatureOptions(maxLength: 64, stride: 16), example: e, source: "")
        XCTAssertEqual(w, [0..<51, 35..<86, 70..<100])       // 64 − 3 − 10 = 51 tokens a window, 16 shared
        for (a, b) in zip(w, w.dropFirst()) { XCTAssertEqual(a.upperBound - b.lowerBound, 16) }
        XCTAssertEqual(try SQuADFeature.windows(contextCount: 51, questionCount: 10,
                                                options: SQuADFeatureOptions(maxLength: 64, stride: 16), example: e,
                                                source: ""), [0..<51])
        XCTAssertEqual(try SQuADFeature.windows(contextCount: 52, questionCount: 10,
                                                options: SQuADFeatureOptions(maxLength: 64, stride: 16), example: e,
                                                source: ""), [0..<51, 35..<52])
    }

    func testQuestionsThatLeaveNoRoomAreErrors() throws {
        let tok = try tokenizer()
        let context = String(repeating: "the river flows east. ", count: 20)
        let e = SQuADExample(id: "long-q", context: context,
                             question: String(repeating: "why ", count: 60) + "?", answers: [], isImpossible: true,
                             path: "data[0].paragraphs[0].qas[0]")
        XCTAssertThrowsError(try SQuADFeature.make(examples: [e], tokenizer: tok,
                                                   options: SQuADFeatureOptions(maxLength: 64, stride: 16),
                                                   source: "dev.json")) { error in
            XCTAssertTrue("\(error)".hasPrefix("dev.json: data[0].paragraphs[0].qas[0]: question \"long-q\": its 61 "
                                               + "tokens leave no room"), "\(error)")
        }
        let shortQuestion = SQuADExample(id: "s", context: context, question: "Why?", answers: [], isImpossible: true)
        XCTAssertThrowsError(try SQuADFeature.make(examples: [shortQuestion], tokenizer: tok,
                                                   options: SQuADFeatureOptions(maxLength: 64, stride: 59))) { error in
            // "why ?" is 2 tokens: 64 − 3 − 2 = 59 context tokens a window.
            XCTAssertTrue("\(error)".contains("stride 59 must be less than the 59 context tokens"), "\(error)")
        }
        // A context that fits needs no stride check, as in HF.
        XCTAssertEqual(try SQuADFeature.make(examples: [shortQuestion], tokenizer: tok,
                                             options: SQuADFeatureOptions(maxLength: 512, stride: 500)).count, 1)
    }

    func testBatchesStackFeaturesIntoBertBatches() throws {
        let tok = try tokenizer()
        let d = try SQuADFixtures.dataset("squad_v2_sample.json")
        let features = try SQuADFeature.make(dataset: d, tokenizer: tok,
                                             options: SQuADFeatureOptions(maxLength: 64, stride: 16))
        let b = SQuADBatch.make(features, indices: [3, 0, 7], padId: tok.padId)
        XCTAssertEqual(b.inputs.batch, 3)
        XCTAssertEqual(b.inputs.seqLen, 64)
        XCTAssertEqual(Array(b.inputs.inputIds[64..<128]), features[0].inputIds)
        XCTAssertEqual(Array(b.inputs.tokenTypeIds[128..<192]), features[7].tokenTypeIds)
        XCTAssertEqual(Array(b.inputs.attentionMask[0..<64]), features[3].attentionMask)
        XCTAssertEqual(b.startPositions, [3, 0, 7].map { features[$0].startPosition })
        XCTAssertEqual(b.endPositions, [3, 0, 7].map { features[$0].endPosition })
        let all = SQuADBatch.batches(features, size: 16)
        XCTAssertEqual(all.map(\.inputs.batch).reduce(0, +), features.count)
        XCTAssertEqual(all.flatMap(\.featureIndices), Array(features.indices))

        // Unpadded features are padded to the longest in the batch.
        let unpadded = try SQuADFeature.make(examples: [d.examples[0], d.examples[4]], tokenizer: tok,
                                             options: SQuADFeatureOptions(maxLength: 384, padToMaxLength: false))
        let lengths = unpadded.map(\.length)
        XCTAssertNotEqual(lengths[0], lengths[1])
        let u = SQuADBatch.make(unpadded, indices: [0, 1], padId: tok.padId)
        XCTAssertEqual(u.inputs.seqLen, lengths.max())
        let short = lengths[0] < lengths[1] ? 0 : 1
        XCTAssertEqual(Array(u.inputs.attentionMask[(short * u.inputs.seqLen)...].prefix(u.inputs.seqLen)),
                       Array(repeating: 1, count: lengths[short]) + Array(repeating: 0, count: u.inputs.seqLen - lengths[short]))
    }
}
