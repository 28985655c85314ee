import BERT
import Foundation
import Tensor

/// One tokenized example, unpadded: `[CLS] A [SEP] (B [SEP])` ids with their token types.
public struct EncodedExample: Sendable, Equatable {
    public var ids: [Int]
    public var typeIds: [Int]
    public var label: Label?
    /// Position of the example in the dataset it was encoded from (to map predictions back).
    public var index: Int

    public init(ids: [Int], typeIds: [Int], label: Label?, index: Int) {
        precondition(ids.count == typeIds.count, "one token type per id")
        self.ids = ids
        self.typeIds = typeIds
        self.label = label
        self.index = index
    }

    /// Length in tokens.
    public var count: Int { ids.count }
}

/// The labels of a batch, in row order.
public enum BatchLabels: Equatable, Sendable {
    case classes([Int])
    case values([Double])
}

/// A padded batch: model inputs, labels (nil for unlabeled data) and the dataset index of each row.
public struct TaskBatch {
    public var inputs: BertBatch
    public var labels: BatchLabels?
    public var indices: [Int]
}

/// Sorting by length inside chunks of batches, so that a batch holds sequences of similar length and pads less.
///
/// Each chunk of `chunkBatches × batchSize` examples of the (shuffled) epoch order is sorted by length, longest
/// first (stable, so equal lengths keep their shuffled order), and cut into batches; then the order of all the
/// epoch's batches is shuffled, so lengths do not rise and fall in a pattern the optimiser could notice. Chunks keep
/// the randomness of the epoch: a batch mixes only examples that the shuffle put near each other.
public struct LengthBucketing: Sendable, Equatable {
    public var chunkBatches: Int

    public init(chunkBatches: Int = 100) {
        precondition(chunkBatches > 0, "a chunk holds at least one batch")
        self.chunkBatches = chunkBatches
    }
}

/// How a dataset is cut into batches.
public struct BatchingOptions: Sendable, Equatable {
    public var batchSize: Int
    /// Shuffle the examples each epoch (and, with bucketing, the batches).
    public var shuffle: Bool
    /// Epoch e draws from `Xoshiro256(seed: seed &+ e)`.
    public var seed: UInt64
    /// Drop the last, incomplete batch of an epoch.
    public var dropLast: Bool
    /// Sort by length within chunks; nil for none.
    public var bucketing: LengthBucketing?

    public init(batchSize: Int, shuffle: Bool = true, seed: UInt64 = 0, dropLast: Bool = false,
                bucketing: LengthBucketing? = nil) {
        precondition(batchSize > 0, "batchSize must be positive")
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.seed = seed
        self.dropLast = dropLast
        self.bucketing = bucketing
    }

    /// In order, every example once, no dropping: for evaluation and prediction.
    public static func evaluation(batchSize: Int) -> BatchingOptions {
        BatchingOptions(batchSize: batchSize, shuffle: false)
    }
}

/// Cuts encoded examples into padded `BertBatch`es, deterministically for a seed and epoch.
///
/// Each batch is padded to its own longest sequence (dynamic padding): ids with `padId`, token types with 0,
/// attention mask 1 on tokens and 0 on padding, all row-major `[B, T]`.
public struct Batcher: Sendable {
    public let examples: [EncodedExample]
    public let padId: Int
    public let options: BatchingOptions

    public init(examples: [EncodedExample], padId: Int, options: BatchingOptions) {
        let labeled = examples.filter { $0.label != nil }
        precondition(labeled.isEmpty || labeled.count == examples.count, "either every example has a label or none has")
        let regression = labeled.filter { $0.label?.classIndex == nil }.count
        precondition(regression == 0 || regression == labeled.count, "labels are all classes or all values")
        self.examples = examples
        self.padId = padId
        self.options = options
    }

    /// Batches in an epoch.
    public var batchCount: Int {
        let n = examples.count, b = options.batchSize
        return options.dropLast ? n / b : (n + b - 1) / b
    }

    /// The epoch's batches as positions into `examples`.
    public func order(epoch: Int) -> [[Int]] {
        let n = examples.count, size = options.batchSize
        var rng = Xoshiro256(seed: options.seed &+ UInt64(truncatingIfNeeded: epoch))
        let sequence = options.shuffle ? SeededShuffle.permutation(n, using: &rng) : Array(0..<n)
        var batches: [[Int]] = []
        batches.reserveCapacity(batchCount + 1)
        if let bucketing = options.bucketing {
            let chunk = size * bucketing.chunkBatches
            var start = 0
            while start < n {
                let end = min(start + chunk, n)
                // Stable: longest first, ties in shuffled order.
                let sorted = sequence[start..<end].enumerated()
                    .sorted { (examples[$0.element].count, -$0.offset) > (examples[$1.element].count, -$1.offset) }
                    .map(\.element)
                var b = 0
                while b < sorted.count {
                    batches.append(Array(sorted[b..<min(b + size, sorted.count)]))
                    b += size
                }
                start = end
            }
        } else {
            var b = 0
            while b < n {
                batches.append(Array(sequence[b..<min(b + size, n)]))
                b += size
            }
        }
        // Only the epoch's last chunk can end with an incomplete batch (chunks are whole batches).
        if options.dropLast, let last = batches.last, last.count < size { batches.removeLast() }
        if options.bucketing != nil && options.shuffle { SeededShuffle.shuffle(&batches, using: &rng) }
        return batches
    }

    /// The epoch's padded batches, each padded when it is accessed (so an epoch of MNLI is never in memory whole;
    /// accessing a batch twice pads it twice). `Array(batches(epoch:))` materialises them.
    public func batches(epoch: Int) -> LazyMapCollection<[[Int]], TaskBatch> {
        order(epoch: epoch).lazy.map { batch($0) }
    }

    /// Pads the examples at `positions` into one batch.
    public func batch(_ positions: [Int]) -> TaskBatch {
        precondition(!positions.isEmpty, "a batch holds at least one example")
        let rows = positions.map { examples[$0] }
        let B = rows.count
        let T = rows.map(\.count).max()!
        var ids: [Int] = [], mask: [Int] = [], types: [Int] = []
        ids.reserveCapacity(B * T)
        mask.reserveCapacity(B * T)
        types.reserveCapacity(B * T)
        for e in rows {
            let pad = T - e.count
            ids.append(contentsOf: e.ids)
            ids.append(contentsOf: repeatElement(padId, count: pad))
            types.append(contentsOf: e.typeIds)
            types.append(contentsOf: repeatElement(0, count: pad))
            mask.append(contentsOf: repeatElement(1, count: e.count))
            mask.append(contentsOf: repeatElement(0, count: pad))
        }
        var labels: BatchLabels?
        if rows[0].label != nil {
            if rows[0].label?.classIndex != nil {
                labels = .classes(rows.map { $0.label!.classIndex! })
            } else {
                labels = .values(rows.map { $0.label!.value })
            }
        }
        return TaskBatch(inputs: BertBatch(batch: B, seqLen: T, inputIds: ids, attentionMask: mask, tokenTypeIds: types),
                         labels: labels, indices: rows.map(\.index))
    }
}
