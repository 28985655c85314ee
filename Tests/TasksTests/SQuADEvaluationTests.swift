import Foundation
import XCTest
import Tensor
@testable import Tasks

/// The official SQuAD answer normalisation and EM/F1 against the Python logic (Fixtures/squad_golden.json).
final class SQuADEvaluationTests: XCTestCase {
    func testNormalizationMatchesTheOfficialScript() throws {
        let g = try SQuADFixtures.golden()
        XCTAssertGreaterThanOrEqual(g.normalize.count, 40)
        for c in g.normalize {
            XCTAssertEqual(squadScalars(SQuADEvaluation.normalizeAnswer(c[0])), squadScalars(c[1]),
                           "normalize_answer(\(c[0].debugDescription)) should be \(c[1].debugDescription)")
        }
    }

    func testPairScoresMatchTheOfficialScripts() throws {
        let g = try SQuADFixtures.golden()
        var maxDiff = 0.0
        for p in g.pairs {
            let label = "\(p.prediction.debugDescription) vs \(p.gold)"
            if let exact = p.v1_exact, let f1 = p.v1_f1 {
                XCTAssertEqual(p.gold.contains { SQuADEvaluation.exactMatch(prediction: p.prediction, groundTruth: $0) },
                               exact, "v1 EM \(label)")
                let mine = p.gold.map { SQuADEvaluation.f1V1(prediction: p.prediction, groundTruth: $0) }.max()!
                XCTAssertEqual(mine, f1, accuracy: 1e-12, "v1 F1 \(label)")
                maxDiff = maxError([maxDiff, absDifference(mine, f1)])
            }
            let golds = p.gold.filter { !SQuADEvaluation.normalizeAnswer($0).isEmpty }
            let g2 = golds.isEmpty ? [""] : golds
            XCTAssertEqual(g2.contains { SQuADEvaluation.exactMatch(prediction: p.prediction, groundTruth: $0) },
                           p.v2_exact, "v2 EM \(label)")
            let mine = g2.map { SQuADEvaluation.f1V2(prediction: p.prediction, groundTruth: $0) }.max()!
            XCTAssertEqual(mine, p.v2_f1, accuracy: 1e-12, "v2 F1 \(label)")
            maxDiff = maxError([maxDiff, absDifference(mine, p.v2_f1)])
        }
        print("SQuAD EM/F1 pairs vs the official scripts: \(g.pairs.count) pairs, max abs diff \(maxDiff)")
    }

    private func dataset(_ answers: [[String]]) throws -> SQuADDataset {
        let context = "the Volga in Russia and the Danube"
        let examples = answers.enumerated().map { i, golds in
            SQuADExample(id: "q\(i)", context: context, question: "?",
                         answers: golds.map { SQuADAnswer(text: $0, start: 0) }, isImpossible: golds.isEmpty)
        }
        return try SQuADDataset(examples: examples, isVersion2: answers.contains { $0.isEmpty })
    }

    func testV1CountsMissingPredictionsAsZero() throws {
        let d = try dataset([["the Volga"], ["Danube", "the Danube"]])
        let m = try SQuADEvaluation.evaluateV1(d, predictions: ["q1": "Danube river"])
        XCTAssertEqual(m.overall.total, 2)
        XCTAssertEqual(m.overall.exactMatch, 0)
        XCTAssertEqual(m.overall.f1, 100.0 * (2 * 0.5 * 1.0 / 1.5) / 2, accuracy: 1e-12)
        XCTAssertEqual(m.missing, ["q0"])
        XCTAssertNil(m.hasAnswer)
        let full = try SQuADEvaluation.evaluate(d, predictions: ["q0": "The  Volga!", "q1": "danube"])
        XCTAssertEqual(full.overall, SQuADScore(exactMatch: 100, f1: 100, total: 2))
    }

    func testV2ScoresUnanswerableQuestionsAndSplits() throws {
        let d = try dataset([["the Volga"], [], ["Danube"], []])
        let m = try SQuADEvaluation.evaluate(d, predictions: ["q0": "Volga", "q1": "", "q2": "", "q3": "Russia"])
        XCTAssertEqual(m.overall, SQuADScore(exactMatch: 50, f1: 50, total: 4))
        XCTAssertEqual(m.hasAnswer, SQuADScore(exactMatch: 50, f1: 50, total: 2))
        XCTAssertEqual(m.noAnswer, SQuADScore(exactMatch: 50, f1: 50, total: 2))
        XCTAssertThrowsError(try SQuADEvaluation.evaluateV2(d, predictions: ["q0": ""])) { e in
            XCTAssertTrue("\(e)".contains("no prediction for question \"q1\""), "\(e)")
        }
        XCTAssertThrowsError(try SQuADEvaluation.evaluateV1(d, predictions: ["q0": "", "q1": ""])) { e in
            XCTAssertTrue("\(e)".contains("has no gold answer"), "\(e)")
        }
    }
}
