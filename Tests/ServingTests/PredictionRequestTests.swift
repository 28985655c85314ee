import Foundation
import XCTest
import Runtime
@testable import Serving

/// `POST /predict` bodies: what is read from them, every client error with its status and message, the input
/// limit, and how answers are written back (ids echoed, errors located).
final class PredictionRequestTests: XCTestCase {
    func parse(_ body: String, maxInputs: Int = 4) -> Result<PredictionRequest, RequestError> {
        PredictionRequest.parse(Data(body.utf8), maxInputs: maxInputs)
    }

    /// The error of a body that must fail: its status and message.
    func failure(_ body: String, maxInputs: Int = 4, file: StaticString = #filePath,
                 line: UInt = #line) -> RequestError? {
        switch parse(body, maxInputs: maxInputs) {
        case .success(let r):
            XCTFail("\(body.debugDescription) was read as \(r)", file: file, line: line)
            return nil
        case .failure(let e):
            return e
        }
    }

    func testSingleRecordsOfEveryKind() throws {
        XCTAssertEqual(try parse(#"{"text": "the film"}"#).get(), .single(PredictorRecord(input: .text("the film"))))
        XCTAssertEqual(try parse(#"{"id": "a", "text": "the plot", "text_pair": "was dull"}"#).get(),
                       .single(PredictorRecord(input: .pair("the plot", "was dull"), id: .string("a"))))
        XCTAssertEqual(try parse(#"{"id": 7, "question": "who", "context": "ann lee", "extra": [1]}"#).get(),
                       .single(PredictorRecord(input: .question("who", context: "ann lee"), id: .integer(7))))
        XCTAssertEqual(try parse(#" {"id": 2.5, "text": "x"} "#).get().inputs, [.text("x")])
    }

    /// Elements that are not records stay in place as errors; the others are read, and only they are inputs.
    func testBatchKeepsOrderAndBadElements() throws {
        let r = try parse(#"{"inputs": [{"text": "a"}, {"txt": "b"}, 3, {"id": "q", "text": "c", "text_pair": "d"}]}"#).get()
        guard case .batch(let records) = r else { return XCTFail("expected a batch, got \(r)") }
        XCTAssertEqual(records.count, 4)
        XCTAssertEqual(try records[0].get(), PredictorRecord(input: .text("a")))
        XCTAssertThrowsError(try records[1].get())
        XCTAssertThrowsError(try records[2].get())
        XCTAssertEqual(try records[3].get(), PredictorRecord(input: .pair("c", "d"), id: .string("q")))
        XCTAssertEqual(r.inputs, [.text("a"), .pair("c", "d")])
        XCTAssertEqual(try parse(#"{"inputs": []}"#).get(), .batch([]))
    }

    func testClientErrorsNameWhatIsWrong() {
        let cases: [(String, String)] = [
            ("", "empty body; expected a record such as {\"text\": \"…\"} or {\"inputs\": [record, …]}"),
            (" \n\t\r ", "empty body"),
            (#"{"text": "the film"#, "malformed JSON"),
            ("[1, 2]", "a JSON array; expected a record"),
            ("3", "a JSON number; expected a record"),
            (#""text""#, "a JSON string; expected a record"),
            ("null", "a JSON null; expected a record"),
            (#"{"inputs": "the film"}"#, "\"inputs\" is a string; expected an array of records"),
            (#"{"inputs": {"text": "a"}}"#, "\"inputs\" is a object; expected an array of records"),
            (#"{"txt": "the film"}"#, "no \"text\" or \"question\" key"),
            (#"{"text": 3}"#, "\"text\" is a number; expected a string"),
            (#"{"text_pair": "x"}"#, "\"text_pair\" without \"text\""),
            (#"{"id": true, "text": "x"}"#, "\"id\" is a boolean; expected a string or a number"),
        ]
        for (body, fragment) in cases {
            guard let e = failure(body) else { continue }
            XCTAssertEqual(e.status, 400, body)
            XCTAssertTrue(e.message.contains(fragment), "\(body.debugDescription): \(e.message)")
            XCTAssertEqual(e.json, Prediction.failure(e.message).jsonLine())
        }
    }

    /// At most `maxInputs` records per request: that many are read, one more is 413 naming both counts.
    func testInputLimit() throws {
        let four = "{\"inputs\": [" + Array(repeating: #"{"text": "a"}"#, count: 4).joined(separator: ",") + "]}"
        let five = "{\"inputs\": [" + Array(repeating: #"{"text": "a"}"#, count: 5).joined(separator: ",") + "]}"
        XCTAssertEqual(try parse(four, maxInputs: 4).get().inputs.count, 4)
        let e = try XCTUnwrap(failure(five, maxInputs: 4))
        XCTAssertEqual(e.status, 413)
        XCTAssertTrue(e.message.hasPrefix("5 inputs; at most 4 per request (cofi serve --max-inputs)"), e.message)
        // Elements that are not records count too: the limit is on what the client sent.
        XCTAssertEqual(failure(#"{"inputs": [1, 2, 3, 4, 5]}"#, maxInputs: 4)?.status, 413)
    }

    func testAnswersEchoIdsAndLocateErrors() throws {
        let single = try parse(#"{"id": "x", "text": "a"}"#).get()
        XCTAssertEqual(single.answer([Prediction(label: "LABEL_1", probabilities: ["LABEL_0": 0.25, "LABEL_1": 0.75])]),
                       #"{"id":"x","label":"LABEL_1","probabilities":{"LABEL_0":0.25,"LABEL_1":0.75}}"#)
        XCTAssertEqual(single.answer([.failure("the text is empty")]), #"{"error":"the text is empty","id":"x"}"#)

        let batch = try parse(#"{"inputs": [{"id": 1, "text": "a"}, {"id": 2, "txt": "b"}, {"text": "c"}]}"#).get()
        XCTAssertEqual(batch.inputs.count, 2)
        let answer = batch.answer([Prediction(score: 0.5), .failure("the text is empty")])
        XCTAssertEqual(answer, #"{"outputs":[{"id":1,"score":0.5},"#
                       + #"{"error":"inputs[1]: no \"text\" or \"question\" key; expected {\"text\": …}, {\"text\": …, \"text_pair\": …} or {\"question\": …, \"context\": …}","id":2},"#
                       + #"{"error":"inputs[2]: the text is empty"}]}"#)
        XCTAssertEqual(try parse(#"{"inputs": []}"#).get().answer([]), #"{"outputs":[]}"#)
    }
}
