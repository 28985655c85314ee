import Foundation
import XCTest
import Runtime
import Tensor
@testable import Serving

/// The batcher: requests that arrive within the window share one predictor call, a batch holds whole requests up
/// to `maxBatch` records (a larger request goes alone), and each request gets its own predictions in its own order —
/// equal to the predictor's answers for the same records alone.
final class PredictionBatcherTests: XCTestCase {
    /// A batcher over a fresh regression predictor (a score per record, so a mix-up shows), stopped at the end.
    func batcher(maxBatch: Int, window: TimeInterval) throws -> PredictionBatcher {
        let b = PredictionBatcher(predictor: try ServingFixtures.predictor(.regression), maxBatch: maxBatch, window: window)
        addTeardownBlock { b.stop() }
        return b
    }

    /// The scores of `inputs` predicted one at a time by a predictor of their own: the expected answers.
    func alone(_ inputs: [PredictorInput]) throws -> [Float?] {
        let p = try ServingFixtures.predictor(.regression)
        return inputs.map { p.predict([$0])[0].score }
    }

    /// The requests sent at once (one task each); their answers in request order.
    func sendAtOnce(_ batcher: PredictionBatcher, _ requests: [[PredictorInput]]) async -> [[Prediction]] {
        await withTaskGroup(of: (Int, [Prediction]).self) { group in
            for (i, r) in requests.enumerated() { group.addTask { (i, await batcher.predict(r)) } }
            var answers = Array(repeating: [Prediction](), count: requests.count)
            for await (i, a) in group { answers[i] = a }
            return answers
        }
    }

    /// Each request's answers are the records' own, in order (scores to 1e-5: the engine may round differently in
    /// a batch), and different records have clearly different scores, so a mix-up would fail.
    func assertOwnAnswers(_ requests: [[PredictorInput]], _ answers: [[Prediction]], file: StaticString = #filePath,
                          line: UInt = #line) throws {
        let all = requests.flatMap { $0 }
        let expected = try alone(all)
        let scores = expected.compactMap { $0 }
        for i in scores.indices {
            for j in scores.indices where j > i {
                XCTAssertGreaterThan(abs(scores[i] - scores[j]), 1e-4, "the fixture's scores must differ: \(scores)",
                                     file: file, line: line)
            }
        }
        XCTAssertEqual(answers.map(\.count), requests.map(\.count), file: file, line: line)
        var k = 0
        for (r, a) in zip(requests, answers) {
            for (input, p) in zip(r, a) {
                if let want = expected[k] {
                    let got = try XCTUnwrap(p.score, "\(input): \(p)", file: file, line: line)
                    XCTAssertTrue(isClose(got, want, tolerance: 1e-5), "\(input): \(got) vs \(want)", file: file, line: line)
                } else {
                    XCTAssertNotNil(p.error, "\(input)", file: file, line: line)
                }
                k += 1
            }
        }
    }

    /// Three requests sent together within a long window: one batch of all their records.
    func testRequestsWithinTheWindowShareOneBatch() async throws {
        let b = try batcher(maxBatch: 32, window: 0.5)
        let texts = ServingFixtures.texts(6)
        let requests: [[PredictorInput]] = [[.text(texts[0])], [.text(texts[1]), .text(""), .text(texts[2])],
                                            [.pair(texts[3], texts[4]), .text(texts[5])]]
        let answers = await sendAtOnce(b, requests)
        try assertOwnAnswers(requests, answers)
        XCTAssertEqual(answers[1][1].error, "the text is empty", "a refused record is answered in its place")
        XCTAssertEqual(b.currentStatistics, .init(requests: 3, records: 6, batches: 1, largestBatch: 6))
    }

    /// maxBatch 4 and three requests of 2: two whole requests fill a batch (without waiting out the window), the
    /// third goes next; a request of 5 goes alone; an empty request is not a request.
    func testBatchesHoldWholeRequestsUpToMaxBatch() async throws {
        let b = try batcher(maxBatch: 4, window: 0.3)
        let texts = ServingFixtures.texts(6, offset: 10).map { PredictorInput.text($0) }
        let requests = [Array(texts[0..<2]), Array(texts[2..<4]), Array(texts[4..<6])]
        let answers = await sendAtOnce(b, requests)
        try assertOwnAnswers(requests, answers)
        XCTAssertEqual(b.currentStatistics, .init(requests: 3, records: 6, batches: 2, largestBatch: 4))

        let five = ServingFixtures.texts(5, offset: 20).map { PredictorInput.text($0) }
        try assertOwnAnswers([five], [await b.predict(five)])
        XCTAssertEqual(b.currentStatistics, .init(requests: 4, records: 11, batches: 3, largestBatch: 5))
        let none = await b.predict([])
        XCTAssertEqual(none, [])
        XCTAssertEqual(b.currentStatistics.requests, 4)
    }

    /// Window 0: the worker takes what is waiting and does not wait for more.
    func testZeroWindowDoesNotWait() async throws {
        let b = try batcher(maxBatch: 32, window: 0)
        let start = Date()
        let inputs = ServingFixtures.texts(3, offset: 30).map { PredictorInput.text($0) }
        for input in inputs { try assertOwnAnswers([[input]], [await b.predict([input])]) }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        XCTAssertEqual(b.currentStatistics, .init(requests: 3, records: 3, batches: 3, largestBatch: 1))
    }

    /// After `stop()` the worker ends; requests are then answered with an error for every record, not left waiting.
    func testStoppedBatcherAnswersWithErrors() async throws {
        let b = try batcher(maxBatch: 8, window: 0)
        b.stop()
        var answer: [Prediction] = []
        for _ in 0..<100 {  // the worker notices the stop on its own thread: up to 5 s
            answer = await b.predict([.text("the film"), .text("good")])
            if answer.first?.error != nil { break }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        XCTAssertEqual(answer, Array(repeating: .failure("the server is shutting down"), count: 2))
    }
}
