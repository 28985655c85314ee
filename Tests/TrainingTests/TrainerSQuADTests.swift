import BERT
import Foundation
import Tasks
import XCTest
@testable import Training

/// Span extraction through the same trainer: SQuAD features as training data, the span loss, the official scores.
final class TrainerSQuADTests: XCTestCase {
    /// Questions whose answer is the one sentiment word of the context.
    func examples(_ n: Int, offset: Int) -> [SQuADExample] {
        let filler = ["the", "movie", "film", "plot", "was", "is", "very", "really", "acting", "a"]
        let words = TinyRun.positive + TinyRun.negative
        return (0..<n).map { i in
            let k = i + offset
            var context = (0..<(4 + k % 5)).map { filler[(k * 3 + $0) % filler.count] }
            let answer = words[k % words.count]
            context.insert(answer, at: (k * 7) % context.count)
            let text = context.joined(separator: " ")
            let start = text.unicodeScalars.count - (context.drop(while: { $0 != answer }).joined(separator: " ")).unicodeScalars.count
            return SQuADExample(id: "q\(k)", context: text, question: "the acting was", answers: [SQuADAnswer(text: answer, start: start)])
        }
    }

    func testTrainsAndScoresASpanTask() throws {
        let dir = try TinyRun.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tokenizer = try WordPieceTokenizer.load(directory: dir)
        let options = SQuADFeatureOptions(maxLength: 24, stride: 4, padToMaxLength: false)
        let train = try SQuADDataset(examples: examples(40, offset: 0), isVersion2: false)
        let dev = try SQuADDataset(examples: examples(10, offset: 100), isVersion2: false)
        let trainFeatures = try SQuADFeature.make(dataset: train, tokenizer: tokenizer, options: options)
        let devFeatures = try SQuADFeature.make(dataset: dev, tokenizer: tokenizer, options: options)
        let data = SQuADTrainingData(features: trainFeatures, batchSize: 4, seed: 57, padId: tokenizer.padId)
        XCTAssertEqual(data.order(epoch: 1), data.order(epoch: 1))
        XCTAssertNotEqual(data.order(epoch: 0), data.order(epoch: 1))
        XCTAssertEqual(data.order(epoch: 0).flatMap { $0 }.sorted(), Array(trainFeatures.indices))

        let evaluator = SQuADEvaluator(dataset: dev, features: devFeatures, padId: tokenizer.padId, batchSize: 3)
        let model = BertModel.randomlyInitialized(config: TinyRun.config, task: .span, seed: 5)
        let before = try evaluator.evaluate(model: model)
        XCTAssertEqual(before.metrics.map(\.name), ["exact_match", "f1"])
        XCTAssertEqual(before.primaryName, "f1")

        var c = TinyRun.configuration
        c.epochs = 8
        c.evalSteps = nil
        let output = try TrainingOutput.prepare(dir.appendingPathComponent("out"), mode: .fresh)
        let trainer = try Trainer(model: model, data: data, configuration: c, evaluator: evaluator, output: output,
                                  export: ModelExport(tokenizerDirectory: dir))
        var losses: [Float] = []
        trainer.onStep = { losses.append($0.loss) }
        let summary = try trainer.train()
        let early = losses.prefix(5).reduce(0, +) / 5, late = losses.suffix(5).reduce(0, +) / 5
        XCTAssertLessThan(late, early, "the span loss falls")
        let best = try XCTUnwrap(summary.bestMetric)
        XCTAssertGreaterThan(best, before.primary, "F1 improves on the untrained model's \(before.primary)")
        let config = try BertConfig.load(from: output.best.appendingPathComponent("config.json"))
        XCTAssertEqual(config.architectures, ["BertForQuestionAnswering"])
        XCTAssertEqual(try BertModel.load(directory: output.best).task, .span)
    }
}
