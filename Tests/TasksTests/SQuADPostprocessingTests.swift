import Foundation
import XCTest
import Tensor
@testable import Tasks

/// HF `postprocess_qa_predictions` and the official evaluation on the golden features and seeded logits.
final class SQuADPostprocessingTests: XCTestCase {
    func testPredictionsNBestAndMetricsMatchHuggingFace() throws {
        let g = try SQuADFixtures.golden()
        var runs = 0, maxProbabilityDiff = 0.0, maxMetricDiff = 0.0
        for file in g.files {
            let dataset = try SQuADFixtures.dataset(file.file)
            for config in file.configs {
                guard let startInts = config.start_logits, let endInts = config.end_logits,
                      let nbest = config.nbest, let postprocess = config.postprocess else { continue }
                let byId = Dictionary(uniqueKeysWithValues: dataset.examples.map { ($0.id, $0) })
                let examples = try config.example_ids.map { try XCTUnwrap(byId[$0]) }
                let features = config.features.map { SQuADFixtures.feature($0, maxLength: config.max_length) }
                let denominator = Float(g.logit_denominator)
                let start = startInts.map { $0.map { Float($0) / denominator } }
                let end = endInts.map { $0.map { Float($0) / denominator } }
                let subset = try SQuADDataset(examples: examples, isVersion2: file.version_2_with_negative)
                for run in postprocess {
                    runs += 1
                    let options = SQuADPostprocessOptions(version2WithNegative: file.version_2_with_negative,
                                                          nullScoreDiffThreshold: Float(run.null_score_diff_threshold))
                    let predictions = try SQuADPostprocessing.predictions(
                        examples: examples, features: features, startLogits: start, endLogits: end, options: options)
                    XCTAssertEqual(predictions.map(\.id), config.example_ids)
                    for p in predictions {
                        let label = "\(file.file) threshold \(run.null_score_diff_threshold) \(p.id)"
                        XCTAssertEqual(squadScalars(p.text), squadScalars(try XCTUnwrap(run.predictions[p.id])), label)
                        if let diffs = run.null_score_diff {
                            XCTAssertEqual(p.nullScoreDiff.map(Double.init), diffs[p.id], label)
                        } else {
                            XCTAssertNil(p.nullScoreDiff)
                        }
                        let ref = try XCTUnwrap(nbest[p.id])
                        XCTAssertEqual(p.nBest.count, ref.count, label)
                        for (c, r) in zip(p.nBest, ref) {
                            XCTAssertEqual(squadScalars(c.text), squadScalars(r.text), label)
                            XCTAssertEqual(Double(c.startLogit), r.start_logit, label)
                            XCTAssertEqual(Double(c.endLogit), r.end_logit, label)
                            XCTAssertEqual(Double(c.probability), r.probability, accuracy: 1e-6, label)
                            maxProbabilityDiff = maxError([maxProbabilityDiff, absDifference(Double(c.probability), r.probability)])
                        }
                    }
                    let m = try SQuADEvaluation.evaluate(subset, predictions: SQuADPostprocessing.answers(predictions))
                    var pairs: [(Double, Double?)] = []
                    if file.version_2_with_negative {
                        pairs = [(m.overall.exactMatch, run.metrics["exact"]), (m.overall.f1, run.metrics["f1"]),
                                 (Double(m.overall.total), run.metrics["total"]),
                                 (m.hasAnswer!.exactMatch, run.metrics["HasAns_exact"]),
                                 (m.hasAnswer!.f1, run.metrics["HasAns_f1"]),
                                 (m.noAnswer!.exactMatch, run.metrics["NoAns_exact"]),
                                 (m.noAnswer!.f1, run.metrics["NoAns_f1"])]
                    } else {
                        pairs = [(m.overall.exactMatch, run.metrics["exact_match"]), (m.overall.f1, run.metrics["f1"])]
                    }
                    for (mine, ref) in pairs {
                        let r = try XCTUnwrap(ref)
                        XCTAssertEqual(mine, r, accuracy: 1e-9, "\(file.file) metrics \(run.metrics)")
                        maxMetricDiff = maxError([maxMetricDiff, absDifference(mine, r)])
                    }
                }
            }
        }
        XCTAssertEqual(runs, 3)
        print("SQuAD post-processing vs HF: \(runs) runs, predictions identical, max probability diff "
              + "\(maxProbabilityDiff), max EM/F1 diff \(maxMetricDiff)")
    }

    /// Hand-made logits for the corner cases of the HF rules.
    private func example(_ context: String = "zero one two three four five six seven") -> SQuADExample {
        SQuADExample(id: "x", context: context, question: "q", answers: [SQuADAnswer(text: "one", start: 5)])
    }

    /// A feature for the context above: [CLS] q [SEP] zero … seven [SEP], positions 3…10 are the words.
    private func feature(id: String = "x") -> SQuADFeature {
        let words: [Range<Int>] = [0..<4, 5..<8, 9..<12, 13..<18, 19..<23, 24..<28, 29..<32, 33..<38]
        return SQuADFeature(exampleIndex: 0, exampleId: id, inputIds: Array(repeating: 5, count: 12),
                            tokenTypeIds: Array(repeating: 0, count: 12), attentionMask: Array(repeating: 1, count: 12),
                            offsets: [nil, nil, nil] + words.map { Optional($0) } + [nil])
    }

    func testRulesOnHandMadeLogits() throws {
        // Positions: 0 [CLS], 1–2 question and [SEP], 3 "zero", 4 "one", …, 10 "seven", 11 [SEP].
        var start = [Float](repeating: -5, count: 12), end = [Float](repeating: -5, count: 12)
        start[1] = 9; end[1] = 9           // (1, 1) = 18, but the question is never an answer
        end[3] = 4                         // (4, 3) = 6 and (6, 3) = 4.5: end before start, skipped
        start[4] = 2; end[6] = 1           // (4, 6) "one two three" = 3: the best valid span
        start[6] = 0.5                     // (6, 6) "three" = 1.5
        let p = try SQuADPostprocessing.predictions(examples: [example()], features: [feature()],
                                                    startLogits: [start], endLogits: [end])[0]
        XCTAssertEqual(p.text, "one two three")
        XCTAssertEqual(p.nBest.first?.score, 3)
        XCTAssertEqual(p.nBest.first?.offsets, 5..<18)
        XCTAssertEqual(p.nBest.dropFirst().first?.text, "three")
        XCTAssertEqual(Double(p.nBest.map(\.probability).reduce(0, +)), 1, accuracy: 1e-5)
        XCTAssertEqual(p.nBest.count, 20, "36 valid spans, cut to n-best 20")
        XCTAssertNil(p.nullScoreDiff)

        // max_answer_length counts tokens end − start + 1: three tokens are too many for 2.
        let short = try SQuADPostprocessing.predictions(
            examples: [example()], features: [feature()], startLogits: [start], endLogits: [end],
            options: SQuADPostprocessOptions(maxAnswerLength: 2))[0]
        XCTAssertEqual(short.text, "three")

        // v2.0: the null answer wins when its score beats the best span by more than the threshold.
        var s2 = start, e2 = end
        s2[0] = 2; e2[0] = 1.5             // null 3.5 vs best span 3: diff 0.5
        for (threshold, expected) in [(Float(0), ""), (0.5, "one two three"), (0.4, "")] {
            let q = try SQuADPostprocessing.predictions(
                examples: [example()], features: [feature()], startLogits: [s2], endLogits: [e2],
                options: SQuADPostprocessOptions(version2WithNegative: true, nullScoreDiffThreshold: threshold))[0]
            XCTAssertEqual(q.text, expected, "threshold \(threshold)")
            XCTAssertEqual(q.nullScoreDiff, 0.5)
            XCTAssertTrue(q.nBest.contains { $0.text.isEmpty && $0.offsets == 0..<0 })
        }
    }

    func testNoCandidateGivesHuggingFacesEmptyPlaceholder() throws {
        // Every top index is outside the context: no span at all.
        var start = [Float](repeating: -100, count: 12), end = start
        for k in [0, 1, 2, 11] { start[k] = 10; end[k] = 10 }
        let p = try SQuADPostprocessing.predictions(
            examples: [example()], features: [feature()], startLogits: [start], endLogits: [end],
            options: SQuADPostprocessOptions(nBestSize: 4))[0]
        XCTAssertEqual(p.text, "empty")
        XCTAssertEqual(p.nBest.count, 1)
        let v2 = try SQuADPostprocessing.predictions(
            examples: [example()], features: [feature()], startLogits: [start], endLogits: [end],
            options: SQuADPostprocessOptions(nBestSize: 4, version2WithNegative: true))[0]
        XCTAssertEqual(v2.nBest.map(\.text), ["empty", ""])
        XCTAssertEqual(v2.text, "", "null score 20 − placeholder 0 > 0")
    }

    func testMismatchedInputsAreErrors() {
        XCTAssertThrowsError(try SQuADPostprocessing.predictions(examples: [example()], features: [feature()],
                                                                 startLogits: [], endLogits: []))
        XCTAssertThrowsError(try SQuADPostprocessing.predictions(
            examples: [example()], features: [feature(id: "other")], startLogits: [[0]], endLogits: [[0]])) { e in
            XCTAssertTrue("\(e)".contains("\"other\", which is not among the examples"), "\(e)")
        }
    }

    func testTopIndicesBreakTiesTowardsTheLaterPosition() {
        XCTAssertEqual(SQuADPostprocessing.topIndices([1, 3, 3, 2, 3], 4), [4, 2, 1, 3])
        XCTAssertEqual(SQuADPostprocessing.topIndices([1, 2], 20), [1, 0])
    }
}
