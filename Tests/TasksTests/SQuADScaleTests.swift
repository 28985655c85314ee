import Foundation
import XCTest
@testable import Tasks

/// Opt-in timing of the SQuAD pipeline at the size of the real SQuAD v1.1 training set (~88k questions, ~19k
/// paragraphs, ~40 MB), built from the sample paragraphs with fresh ids. Skipped unless COFI_SQUAD_SCALE=1:
///
///     COFI_SQUAD_SCALE=1 swift test -c release --filter SQuADScaleTests
final class SQuADScaleTests: XCTestCase {
    func testFullSizeFileTimings() throws {
        guard ProcessInfo.processInfo.environment["COFI_SQUAD_SCALE"] == "1" else {
            throw XCTSkip("set COFI_SQUAD_SCALE=1 to time the SQuAD pipeline on a full-size file")
        }
        let sample = try SQuADFixtures.dataset("squad_v1_sample.json")
        var paragraphs: [[String: Any]] = []
        var byContext: [String: [SQuADExample]] = [:]
        var order: [String] = []
        for e in sample.examples {
            if byContext[e.context] == nil { order.append(e.context) }
            byContext[e.context, default: []].append(e)
        }
        var n = 0
        while n < 88_000 {
            for c in order {
                let qas: [[String: Any]] = byContext[c]!.map { e in
                    n += 1
                    return ["id": "\(e.id)-\(n)", "question": e.question,
                            "answers": e.answers.map { ["text": $0.text, "answer_start": $0.start] as [String: Any] }]
                }
                paragraphs.append(["context": c, "qas": qas])
            }
        }
        let json: [String: Any] = ["version": "1.1", "data": [["title": "scale", "paragraphs": paragraphs]]]
        let data = try JSONSerialization.data(withJSONObject: json)
        let clock = ContinuousClock()
        var dataset: SQuADDataset!
        let load = clock.measure { dataset = try! SQuADDataset(parsing: data, source: "scale.json") }
        let tok = try WordPieceTokenizer.load(directory: SQuADFeatureTests.tokenizerDirectory)
        var features: [SQuADFeature] = []
        let feat = clock.measure { features = try! SQuADFeature.make(examples: dataset.examples, tokenizer: tok) }
        let subset = Array(dataset.examples.prefix(10_570))
        let evalFeatures = features.prefix { $0.exampleIndex < subset.count }
        var rng = SystemRandomNumberGenerator()
        let logits = evalFeatures.map { f in f.inputIds.map { _ in Float.random(in: -5...5, using: &rng) } }
        var predictions: [SQuADPrediction] = []
        let post = clock.measure {
            predictions = try! SQuADPostprocessing.predictions(examples: subset, features: Array(evalFeatures),
                                                                startLogits: logits, endLogits: logits)
        }
        let sub = try SQuADDataset(examples: subset, isVersion2: false)
        let eval = clock.measure { _ = try! SQuADEvaluation.evaluate(sub, predictions: SQuADPostprocessing.answers(predictions)) }
        print("SQuAD scale: \(data.count / 1_000_000) MB, \(dataset.examples.count) questions: load \(load), "
              + "\(features.count) features \(feat); post-processing \(subset.count) questions "
              + "(\(evalFeatures.count) features) \(post); evaluation \(eval)")
    }
}
