import BERT
import Foundation
import Tasks
import XCTest
import Tensor
@testable import Runtime

/// The predictor against the training-path forward (`EngineFixtures.oracle`: `BertModel` in inference mode, no
/// graph) on small random models with a word-level tokenizer: probabilities, scores and answer spans to 1e-5,
/// truncation flagged, per-input errors that leave the other inputs alone, input order across engine batches.
final class PredictorTests: XCTestCase {
    static let words = ["the", "film", "plot", "was", "good", "great", "fun", "bad", "dull", "awful", "a", "and",
                        "who", "directed", "it", "by", "ann", "lee", "in", "paris", "what", "is", "city", "where",
                        "made", "of", "story", "actors", "played", "well", "."]
    /// [PAD] [UNK] [CLS] [SEP] [MASK] and the words: 36 ids, within the fixture models' 61.
    static let tokenizer = try! WordPieceTokenizer(vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)

    static let layers = [(4, 64), (1, 7), (0, 0), (2, 0)]

    func classifier(labels: Int = 3, seed: UInt64 = 11) -> BertModel {
        EngineFixtures.model(Self.layers, task: .classification(labels: labels), seed: seed)
    }

    /// The oracle's inputs for a text or pair: the tokenizer's encoding at `maxLength`.
    func encoded(_ a: String, _ b: String? = nil, maxLength: Int) -> EncodedInput {
        let e = Self.tokenizer.encode(a, b, maxLength: maxLength)
        return EncodedInput(tokenIds: e.ids, tokenTypeIds: e.typeIds)
    }

    func softmax(_ x: [Float]) -> [Double] {
        let m = Double(x.max()!)
        let e = x.map { exp(Double($0) - m) }
        return e.map { $0 / e.reduce(0, +) }
    }

    func testClassificationEqualsTrainingForward() throws {
        let model = classifier()
        let names = ["negative", "neutral", "positive"]
        let predictor = try Predictor(model: model, tokenizer: Self.tokenizer, labels: names,
                                      options: PredictorOptions(batchSize: 3))
        XCTAssertEqual(predictor.maxLength, 24, "default max length: the model's max positions")
        let inputs: [PredictorInput] = [
            .text("the film was good"), .text("Awful plot ."), .pair("who directed it", "ann lee directed it in paris"),
            .text("great fun"), .pair("the story", "the actors played well"), .text("zzz unknown words"),
            .text("dull"),
        ]
        let predictions = predictor.predict(inputs)
        XCTAssertEqual(predictions.count, inputs.count)
        var worst = 0.0
        for (input, p) in zip(inputs, predictions) {
            let e: EncodedInput
            switch input {
            case .text(let a): e = encoded(a, maxLength: 24)
            case .pair(let a, let b): e = encoded(a, b, maxLength: 24)
            case .question: fatalError("no questions here")
            }
            let expected = softmax(EngineFixtures.oracle(model, [e])[0].logits)
            XCTAssertNil(p.error)
            XCTAssertNil(p.truncated)
            let probabilities = try XCTUnwrap(p.probabilities)
            XCTAssertEqual(Set(probabilities.keys), Set(names))
            for (k, name) in names.enumerated() { worst = maxError([worst, absDifference(Double(probabilities[name]!), expected[k])]) }
            XCTAssertEqual(p.label, names[expected.indices.max { expected[$0] < expected[$1] }!])
        }
        XCTAssertLessThanOrEqual(worst, 1e-5, "largest probability difference to the training-path forward")
        // The random model must not be constant: the test would not see a mix-up of inputs.
        XCTAssertGreaterThan(Set(predictions.map { $0.probabilities!["positive"]! }).count, 4)
    }

    func testRegressionScoreIsTheHeadOutput() throws {
        let model = EngineFixtures.model(Self.layers, task: .regression, seed: 5)
        let predictor = try Predictor(model: model, tokenizer: Self.tokenizer)
        XCTAssertEqual(predictor.labels, [])
        let p = predictor.predict([.pair("the plot", "was dull"), .text("good")])
        let expected = EngineFixtures.oracle(model, [encoded("the plot", "was dull", maxLength: 24), encoded("good", maxLength: 24)])
        for (p, e) in zip(p, expected) {
            XCTAssertNil(p.label)
            XCTAssertNil(p.probabilities)
            XCTAssertEqual(Double(try XCTUnwrap(p.score)), Double(e.logits[0]), accuracy: 1e-5)
        }
    }

    func testTruncationIsFlaggedAndPredictsTheTruncatedText() throws {
        let model = classifier()
        let predictor = try Predictor(model: model, tokenizer: Self.tokenizer, options: PredictorOptions(maxLength: 8))
        let long = "the film was good and the plot was great fun"  // 11 tokens + 2 special > 8
        let fits = "the film was good and fun"                       // 6 + 2 = 8: fits exactly
        let p = predictor.predict([.text(long), .text(fits), .pair(long, "dull"), .pair("a", "b")])
        XCTAssertEqual(p[0].truncated, true)
        XCTAssertNil(p[1].truncated, "a text of exactly max length tokens is not truncated")
        XCTAssertEqual(p[2].truncated, true)
        XCTAssertNil(p[3].truncated)
        let truncated = encoded(long, maxLength: 8)
        XCTAssertEqual(truncated.tokenIds.count, 8)
        let expected = softmax(EngineFixtures.oracle(model, [truncated])[0].logits)
        for k in 0..<3 { XCTAssertEqual(Double(p[0].probabilities!["LABEL_\(k)"]!), expected[k], accuracy: 1e-5) }
        XCTAssertEqual(p[0].jsonLine().contains("\"truncated\":true"), true, p[0].jsonLine())
        XCTAssertFalse(p[1].jsonLine().contains("truncated"), p[1].jsonLine())
    }

    func testPerInputErrorsLeaveTheOthersAlone() throws {
        let model = classifier()
        let predictor = try Predictor(model: model, tokenizer: Self.tokenizer, options: PredictorOptions(batchSize: 2))
        let good = predictor.predict([.text("the film was good"), .pair("a plot", "dull")])
        let mixed = predictor.predict([.text(""), .text("the film was good"), .text("  \t "), .pair("a plot", "dull"),
                                       .pair("a plot", ""), .question("what", context: "paris"), .pair(" ", "x")])
        XCTAssertEqual(mixed.count, 7)
        XCTAssertEqual(mixed[0].error, "the text is empty")
        XCTAssertEqual(mixed[1], good[0])
        XCTAssertEqual(mixed[2].error, "the text is empty")
        XCTAssertEqual(mixed[3], good[1])
        XCTAssertEqual(mixed[4].error, "the second text of the pair (text_pair) is empty")
        XCTAssertTrue(mixed[5].error?.contains("question-answering (span) model") ?? false, "\(mixed[5])")
        XCTAssertEqual(mixed[6].error, "the first text of the pair is empty")
        for p in mixed where p.error != nil {
            XCTAssertNil(p.label)
            XCTAssertNil(p.probabilities)
        }
        // A model with one token type cannot take pairs; its single texts still work.
        let c = BertConfig(vocabSize: 40, hiddenSize: 16, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 8,
                           maxPositionEmbeddings: 16, typeVocabSize: 1)
        let oneType = BertModel.randomlyInitialized(config: c, task: .classification(labels: 2), seed: 3)
        let p = try Predictor(model: oneType, tokenizer: Self.tokenizer).predict([.pair("a", "b"), .text("good")])
        XCTAssertTrue(p[0].error?.contains("type_vocab_size 1") ?? false, "\(p[0])")
        XCTAssertNotNil(p[1].label)
    }

    func testOrderIsKeptAcrossBatches() throws {
        let model = classifier(labels: 2, seed: 19)
        let texts = (0..<13).map { i in
            (0...(i % 7)).map { Self.words[($0 * 5 + i) % Self.words.count] }.joined(separator: " ")
        }
        let one = try Predictor(model: model, tokenizer: Self.tokenizer, options: PredictorOptions(batchSize: 1))
        let batched = try Predictor(model: model, tokenizer: Self.tokenizer, options: PredictorOptions(batchSize: 4))
        let alone = texts.map { one.predict([.text($0)])[0] }
        let together = batched.predict(texts.map { .text($0) })
        XCTAssertEqual(together.count, texts.count)
        for (a, b) in zip(alone, together) {
            XCTAssertEqual(a.label, b.label)
            for (k, v) in a.probabilities! { XCTAssertEqual(v, b.probabilities![k]!, accuracy: 1e-6) }
        }
        XCTAssertGreaterThan(Set(together.map { $0.probabilities!["LABEL_1"]! }).count, 6, "inputs must differ")
    }

    func testSpanAnswerEqualsPostprocessingOfTheTrainingForward() throws {
        let model = EngineFixtures.model(Self.layers, task: .span, seed: 23)
        let options = PredictorOptions(maxLength: 16, docStride: 4)
        let predictor = try Predictor(model: model, tokenizer: Self.tokenizer, options: options)
        let context = "The film was made in Paris . Ann Lee directed it and the actors played well . The story is fun ."
        let questions = ["who directed it", "where was the film made", "what is the story"]
        let predictions = predictor.predict(questions.map { .question($0, context: context) })
        for (i, q) in questions.enumerated() {
            let example = SQuADExample(id: "q", context: context, question: q, answers: [])
            let features = try SQuADFeature.make(examples: [example], tokenizer: Self.tokenizer,
                                                 options: SQuADFeatureOptions(maxLength: 16, stride: 4, padToMaxLength: false))
            XCTAssertGreaterThan(features.count, 2, "the context must need several windows")
            let outputs = EngineFixtures.oracle(model, features.map {
                EncodedInput(tokenIds: $0.inputIds, tokenTypeIds: $0.tokenTypeIds)
            })
            let expected = try SQuADPostprocessing.predictions(examples: [example], features: features,
                                                               startLogits: outputs.map(\.startLogits),
                                                               endLogits: outputs.map(\.endLogits))[0]
            let p = predictions[i]
            XCTAssertNil(p.error, "\(p)")
            XCTAssertEqual(p.answer, expected.text)
            let best = expected.nBest[0]
            XCTAssertEqual(p.start, best.offsets.lowerBound)
            XCTAssertEqual(p.end, best.offsets.upperBound)
            XCTAssertEqual(Double(p.score!), Double(best.probability), accuracy: 1e-5)
            let scalars = Array(context.unicodeScalars)
            XCTAssertEqual(String(String.UnicodeScalarView(scalars[p.start!..<p.end!])), p.answer)
            XCTAssertNil(p.truncated, "contexts are split into windows, never truncated")
        }
        // Texts are not questions; a question too long for the max length is named.
        let bad = predictor.predict([.text("the film"), .question(Array(repeating: "what", count: 14).joined(separator: " "),
                                                                  context: context), .question("who", context: " ")])
        XCTAssertTrue(bad[0].error?.contains("give a question and a context") ?? false, "\(bad[0])")
        XCTAssertTrue(bad[1].error?.contains("leave no room for the context") ?? false, "\(bad[1])")
        XCTAssertEqual(bad[2].error, "the context is empty")
    }

    func testConstructionErrorsNameTheProblem() throws {
        func message(_ make: () throws -> Predictor) -> String {
            do { _ = try make(); return "no error" } catch { return "\(error)" }
        }
        let bare = EngineFixtures.model(Self.layers, task: .classification(labels: 2), seed: 1)
        let headless = BertModel(config: bare.config, shape: bare.shape, embeddings: bare.embeddings, layers: bare.layers,
                                 pooler: bare.pooler, head: nil, task: nil)
        XCTAssertTrue(message { try Predictor(model: headless, tokenizer: Self.tokenizer) }.contains("no task head"))
        XCTAssertTrue(message { try Predictor(model: bare, tokenizer: Self.tokenizer, labels: ["a", "b", "c"]) }
            .contains("3 label names for a classification head with 2 classes"))
        XCTAssertTrue(message { try Predictor(model: bare, tokenizer: Self.tokenizer, options: PredictorOptions(maxLength: 25)) }
            .contains("max length 25 is outside 3 … 24"))
        XCTAssertTrue(message { try Predictor(model: bare, tokenizer: Self.tokenizer, options: PredictorOptions(batchSize: 0)) }
            .contains("batch size 0"))
        // A label name twice used to crash the first prediction ("Duplicate values for key").
        XCTAssertTrue(message { try Predictor(model: bare, tokenizer: Self.tokenizer, labels: ["same", "same"]) }
            .contains("label name 'same' is given for classes 0 and 1"))
        let big = try WordPieceTokenizer(vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + (0..<60).map { "w\($0)" })
        XCTAssertTrue(message { try Predictor(model: bare, tokenizer: big) }.contains("the tokenizer (vocabulary) has 64 tokens"))
    }

    func testPredictionJSON() throws {
        let p = Prediction(id: .integer(3), label: "positive", probabilities: ["negative": 0.25, "positive": 0.75])
        XCTAssertEqual(p.jsonLine(), #"{"id":3,"label":"positive","probabilities":{"negative":0.25,"positive":0.75}}"#)
        XCTAssertEqual(try JSONDecoder().decode(Prediction.self, from: Data(p.jsonLine().utf8)), p)
        let span = Prediction(id: .string("q/1"), score: 0.5, answer: "Ann Lee", start: 3, end: 10)
        XCTAssertEqual(span.jsonLine(), #"{"answer":"Ann Lee","end":10,"id":"q/1","score":0.5,"start":3}"#)
        XCTAssertEqual(Prediction.failure("the text is empty", id: .number(1.5)).jsonLine(),
                       #"{"error":"the text is empty","id":1.5}"#)
        XCTAssertEqual(Prediction(id: .integer(1), score: .nan).jsonLine(),
                       #"{"error":"the prediction holds a number JSON cannot write (NaN or infinity)","id":1}"#)
    }
}
