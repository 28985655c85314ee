import Foundation
import Runtime

/// A `POST /predict` body, read: one record, or `{"inputs": [record, …]}`. Records are `cofi predict`'s JSON-lines
/// records (`PredictorRecord`), and answers are its output objects (`Prediction.jsonLine()`), so the two can be
/// compared one for one.
public enum PredictionRequest: Equatable {
    /// One record object, answered with one prediction object.
    case single(PredictorRecord)
    /// `{"inputs": […]}`: each element a record or what is wrong with it, answered `{"outputs": […]}` in order —
    /// an element that is not a record gets `{"error": "inputs[K]: …"}` in its place, as `cofi predict` answers a
    /// bad line, and the others are predicted.
    case batch([Result<PredictorRecord, PredictorRecordError>])

    /// The request in `body`, or the client error (status 400, or 413 for more than `maxInputs` records) naming
    /// what is wrong and what was expected.
    public static func parse(_ body: Data, maxInputs: Int) -> Result<PredictionRequest, RequestError> {
        let expected = "expected a record such as {\"text\": \"…\"} or {\"inputs\": [record, …]}"
        if body.allSatisfy({ [0x20, 0x09, 0x0a, 0x0d].contains($0) }) {
            return .failure(RequestError(status: 400, message: "empty body; \(expected)"))
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])
        } catch {
            let detail = (error as NSError).userInfo["NSDebugDescription"] as? String ?? "\(error)"
            return .failure(RequestError(status: 400, message: "malformed JSON (\(detail)); \(expected)"))
        }
        guard let fields = object as? [String: Any] else {
            return .failure(RequestError(status: 400, message: "a JSON \(PredictorRecord.jsonKind(object)); \(expected)"))
        }
        guard let inputs = fields["inputs"] else {
            switch PredictorRecord.decode(jsonObject: fields) {
            case .success(let record): return .success(.single(record))
            case .failure(let e): return .failure(RequestError(status: 400, message: e.message))
            }
        }
        guard let records = inputs as? [Any] else {
            return .failure(RequestError(status: 400, message: "\"inputs\" is a \(PredictorRecord.jsonKind(inputs)); "
                                         + "expected an array of records such as {\"text\": \"…\"}"))
        }
        guard records.count <= maxInputs else {
            return .failure(RequestError(status: 413, message: "\(records.count) inputs; at most \(maxInputs) per "
                                         + "request (cofi serve --max-inputs) — split them over several requests"))
        }
        return .success(.batch(records.map { PredictorRecord.decode(jsonObject: $0) }))
    }

    /// The inputs to predict: the records that were read, in order.
    public var inputs: [PredictorInput] {
        switch self {
        case .single(let record): return [record.input]
        case .batch(let records): return records.compactMap { try? $0.get().input }
        }
    }

    /// The elements of a batch that are not records (each answered with an error in its place).
    public var unreadRecords: Int {
        switch self {
        case .single: return 0
        case .batch(let records): return records.filter { (try? $0.get()) == nil }.count
        }
    }

    /// The answer body for `predictions` (one per element of `inputs`, in order): the prediction object of a
    /// single record, or `{"outputs": […]}` with each record's object, ids echoed and errors naming the element.
    public func answer(_ predictions: [Prediction]) -> String {
        var next = predictions.makeIterator()
        func resolved(_ record: PredictorRecord, prefix: String) -> Prediction {
            var p = next.next()!
            p.id = record.id
            if let error = p.error { p.error = prefix + error }
            return p
        }
        switch self {
        case .single(let record):
            return resolved(record, prefix: "").jsonLine()
        case .batch(let records):
            let lines = records.enumerated().map { k, r -> String in
                switch r {
                case .success(let record): return resolved(record, prefix: "inputs[\(k)]: ").jsonLine()
                case .failure(let e): return Prediction.failure("inputs[\(k)]: \(e.message)", id: e.id).jsonLine()
                }
            }
            return "{\"outputs\":[" + lines.joined(separator: ",") + "]}"
        }
    }
}

/// A request the server answers with an error status and `{"error": message}`.
public struct RequestError: Error, Equatable, CustomStringConvertible {
    /// The HTTP status (4xx).
    public let status: Int
    /// What is wrong and what was expected.
    public let message: String

    public init(status: Int, message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { message }

    /// The error as a JSON object: `{"error": "…"}`.
    public var json: String { Self.json(message) }

    /// `{"error": message}`, written like predictions (`Prediction.encoder`).
    public static func json(_ message: String) -> String {
        Prediction.failure(message).jsonLine()
    }
}
