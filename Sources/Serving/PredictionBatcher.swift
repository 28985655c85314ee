import Foundation
import Runtime

/// Gathers the records of concurrent requests into shared `Predictor` calls, on one worker thread.
///
/// A request hands its records to `predict(_:)` and waits. The worker takes the first waiting request, then keeps
/// gathering until `window` has passed since that request arrived or `maxBatch` records are waiting, and answers
/// the requests it took with one predictor call (the engine packs all their sequences without padding, so a batch
/// of short requests costs little more than one); each request gets its own predictions back, in its own order.
/// Requests are taken whole and in arrival order while they fit in `maxBatch` (one larger than `maxBatch` goes
/// alone; the predictor splits it into engine calls). Requests that arrive while the worker runs a batch wait for
/// the next one, so under load batches fill up without waiting for the window.
///
/// The predictor is only ever called from the worker thread (it is not thread-safe); `predict(_:)` may be called
/// from any thread or task. `stop()` lets the worker answer what is waiting and end (the worker holds the batcher
/// until then).
public final class PredictionBatcher: @unchecked Sendable {
    /// How much the batcher has done (for `GET /health` and the log).
    public struct Statistics: Sendable, Equatable, Codable {
        /// Calls of `predict(_:)` with at least one record.
        public var requests = 0
        /// Records predicted.
        public var records = 0
        /// Predictor calls (gathered batches).
        public var batches = 0
        /// The most records of one batch.
        public var largestBatch = 0

        enum CodingKeys: String, CodingKey {
            case requests, records, batches
            case largestBatch = "largest_batch"
        }
    }

    private struct Job {
        let inputs: [PredictorInput]
        let arrival: Date
        let done: ([Prediction]) -> Void
    }

    private let predictor: Predictor
    private let onBatch: @Sendable (Int, Duration) -> Void
    /// Records per gathered batch (a single larger request is taken alone).
    public let maxBatch: Int
    /// How long the worker waits for more requests after the first one of a batch arrived, in seconds.
    public let window: TimeInterval
    private let condition = NSCondition()
    private var pending: [Job] = []
    private var pendingRecords = 0
    private var stopped = false
    private var finished = false
    private var statistics = Statistics()

    /// A batcher over `predictor` (which it then owns: no one else may call it). `maxBatch` ≥ 1 records per
    /// batch; `window` ≥ 0 seconds of gathering (0: take only what is already waiting). `onBatch` gets each batch's
    /// record count and the predictor's time for it, on the worker thread.
    public init(predictor: Predictor, maxBatch: Int, window: TimeInterval,
                onBatch: @escaping @Sendable (Int, Duration) -> Void = { _, _ in }) {
        precondition(maxBatch >= 1 && window >= 0, "maxBatch must be positive and window non-negative")
        self.predictor = predictor
        self.maxBatch = maxBatch
        self.window = window
        self.onBatch = onBatch
        let worker = Thread { self.work() }  // holds the batcher until `stop()` ends the worker
        worker.name = "cofi-serve-batcher"
        worker.stackSize = 8 << 20
        worker.start()
    }

    /// The predictions of `inputs`, in order, computed together with the records of other requests that arrive
    /// at about the same time. After `stop()` every record is answered with an error.
    public func predict(_ inputs: [PredictorInput]) async -> [Prediction] {
        if inputs.isEmpty { return [] }
        return await withCheckedContinuation { continuation in
            enqueue(inputs) { continuation.resume(returning: $0) }
        }
    }

    /// The counts so far.
    public var currentStatistics: Statistics {
        condition.lock()
        defer { condition.unlock() }
        return statistics
    }

    /// Lets the worker answer the requests already waiting, then end; later requests are answered with errors.
    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private func enqueue(_ inputs: [PredictorInput], done: @escaping ([Prediction]) -> Void) {
        condition.lock()
        if finished {
            condition.unlock()
            done(inputs.map { _ in .failure("the server is shutting down") })
            return
        }
        pending.append(Job(inputs: inputs, arrival: Date(), done: done))
        pendingRecords += inputs.count
        statistics.requests += 1
        condition.broadcast()
        condition.unlock()
    }

    /// The worker: gather, predict, answer, until stopped with nothing left.
    private func work() {
        while let jobs = nextBatch() {
            let inputs = jobs.flatMap(\.inputs)
            let began = ContinuousClock.now
            let predictions = predictor.predict(inputs)
            onBatch(inputs.count, ContinuousClock.now - began)
            var start = 0
            for job in jobs {
                job.done(Array(predictions[start ..< start + job.inputs.count]))
                start += job.inputs.count
            }
        }
    }

    /// The next batch of whole jobs: waits for a first job, then for the window to pass or `maxBatch` records to
    /// wait. nil once stopped with nothing waiting.
    private func nextBatch() -> [Job]? {
        condition.lock()
        defer { condition.unlock() }
        while pending.isEmpty && !stopped { condition.wait() }
        if pending.isEmpty {
            finished = true
            return nil
        }
        let deadline = pending[0].arrival.addingTimeInterval(window)
        while !stopped && pendingRecords < maxBatch && Date() < deadline { _ = condition.wait(until: deadline) }
        var taken = [pending[0]]
        var records = pending[0].inputs.count
        while taken.count < pending.count, records + pending[taken.count].inputs.count <= maxBatch {
            records += pending[taken.count].inputs.count
            taken.append(pending[taken.count])
        }
        pending.removeFirst(taken.count)
        pendingRecords -= records
        statistics.records += records
        statistics.batches += 1
        statistics.largestBatch = max(statistics.largestBatch, records)
        return taken
    }
}
