import BERT
import Foundation
import Platform
import Tensor

/// Where a rank's rows lie in a step's global batch, and what a rank needs to compute its part of the batch loss.
///
/// A loss that is a mean over the batch's rows is, over the ranks, Σ_r weight_r · (mean over rank r's rows) with
/// weight_r = rows_r / B: each rank back-propagates its weighted part and the gradients are summed. Terms that do not
/// depend on the batch (CoFi's Lagrangian) are added by the lead rank only, so that they count once; a choice made
/// from batch statistics (CoFi's layer mapping) sums the ranks' weighted parts with `sum` first.
public struct BatchShard {
    public let rows: RowSlice
    /// rows / B: this shard's share of a mean over the global batch.
    public var weight: Float { Float(fraction) }
    /// rows / B in double precision (for sums of statistics).
    public var fraction: Double { rows.total == 0 ? 0 : Double(rows.count) / Double(rows.total) }
    /// Whether this rank adds the batch-independent terms.
    public let isLead: Bool
    /// The element-wise sum over the ranks of each rank's values (a collective: every rank calls it at the same
    /// point of every step, an empty shard included).
    public let sum: ([Double]) -> [Double]
    /// Every rank's token rows in a pass over its rows, padded (rows × T) and packed (its real tokens where its
    /// rows pack, `PackedSequences`; else rows × T), and this rank's number.
    public let paddedTokens: [Int], packedTokens: [Int], rank: Int

    /// `paddedTokens` and `packedTokens` default to this shard's rows alone (a whole batch of `rows.total` rows).
    public init(rows: RowSlice, isLead: Bool, sum: @escaping ([Double]) -> [Double], paddedTokens: [Int]? = nil,
                packedTokens: [Int]? = nil, rank: Int = 0) {
        self.rows = rows
        self.isLead = isLead
        self.sum = sum
        self.paddedTokens = paddedTokens ?? [rows.count, rows.total - rows.count]
        self.packedTokens = packedTokens ?? self.paddedTokens
        self.rank = paddedTokens == nil ? 0 : rank
    }

    /// This shard's share of a mean over the token rows of the global batch (the layer-distillation MSE): its
    /// share of the padded rows, or with `packed` of the rows the packed passes hold.
    public func tokenFraction(packed: Bool) -> Double {
        let tokens = packed ? packedTokens : paddedTokens
        let total = tokens.reduce(0, +)
        return total == 0 ? 0 : Double(tokens[rank]) / Double(total)
    }
}

extension TrainingBatch {
    /// The rows `range` of this batch (same padded length), carrying `shard`.
    public func rows(_ range: Range<Int>, shard: BatchShard) -> TrainingBatch {
        var t: TrainingTargets?
        switch targets {
        case .classes(let k)?: t = .classes(Array(k[range]))
        case .values(let v)?: t = .values(Array(v[range]))
        case let .spans(s, e)?: t = .spans(start: Array(s[range]), end: Array(e[range]))
        case nil: t = nil
        }
        var b = TrainingBatch(inputs: inputs.rows(range), targets: t, indices: Array(indices[range]))
        b.shard = shard
        return b
    }
}

/// Communication counters of a data-parallel run (rank-local).
public struct CommunicationStats: Sendable {
    /// Steps whose gradients were reduced.
    public var steps = 0
    /// Gradient bytes each rank sent into all-reduces, over all steps (float32 buckets plus the step scalars).
    public var bytes = 0
    /// Seconds from the first bucket's start to the last bucket's completion, summed over steps.
    public var reduceSeconds = 0.0
    /// Seconds the rank waited for gradient reductions after its backward pass ended (the communication the
    /// backward pass did not hide), summed over steps.
    public var exposedSeconds = 0.0
    /// Buckets per step.
    public var buckets = 0
}

/// Data-parallel training over a `ProcessGroup` (the way PyTorch DDP and Horovod do it, with CoFi's specifics):
///
/// - every rank takes the same global batch (same order as one process), keeps its contiguous share of the rows
///   (`rows(of:)`) padded to the global batch's length, and draws dropout as a single process would for those rows;
/// - gradients are averaged by summing each rank's weighted part over fused flat buckets of about `bucketBytes`,
///   in reverse parameter order; a bucket's all-reduce starts as soon as the backward pass has finished every
///   gradient in it and progresses while the pass goes on (`Variable.backward(leafReady:)`); buckets start in the
///   same order on every rank;
/// - a parameter no rank produced a gradient for keeps none (as in one process, where the optimiser skips it);
/// - every `checkEvery` steps the ranks compare a digest of their weights and stop with an error if they differ.
public final class DataParallel {
    public let group: ProcessGroup
    public let bucketBytes: Int
    public let checkEvery: Int
    public private(set) var stats = CommunicationStats()

    private var plan: BucketPlan?

    /// - Parameters:
    ///   - bucketBytes: the size of a fused gradient bucket (PyTorch DDP's default is 25 MB).
    ///   - checkEvery: steps between weight-digest comparisons.
    public init(group: ProcessGroup, bucketBytes: Int = 25 << 20, checkEvery: Int = 100) {
        precondition(bucketBytes >= 4 && checkEvery > 0, "bucket of \(bucketBytes) bytes, check every \(checkEvery)")
        self.group = group
        self.bucketBytes = bucketBytes
        self.checkEvery = checkEvery
    }

    /// Rank `rank`'s rows of a batch of `total` rows: contiguous, the first `total % size` ranks one row more.
    public static func rows(of total: Int, rank: Int, size: Int) -> Range<Int> {
        let base = total / size, extra = total % size
        let start = rank * base + min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }

    /// This rank's shard of `batch`.
    public func shard(_ batch: TrainingBatch) -> TrainingBatch {
        let range = Self.rows(of: batch.size, rank: group.rank, size: group.size)
        let T = batch.inputs.seqLen
        let ranges = (0..<group.size).map { Self.rows(of: batch.size, rank: $0, size: group.size) }
        let packed = ranges.map { r in
            PackedSequences(attentionMask: Array(batch.inputs.attentionMask[(r.lowerBound * T)..<(r.upperBound * T)]),
                            batch: r.count, seqLen: T)?.count ?? r.count * T
        }
        let shard = BatchShard(rows: RowSlice(offset: range.lowerBound, count: range.count, total: batch.size),
                               isLead: group.isLead, sum: { [group] in group.allReduceSum($0) },
                               paddedTokens: ranges.map { $0.count * T }, packedTokens: packed, rank: group.rank)
        return batch.rows(range, shard: shard)
    }

    /// Back-propagates `loss` (this rank's weighted part; nil for an empty shard) and leaves in each of
    /// `parameters` the gradient summed over the ranks. `scalars` (the step's loss part, flags) are summed in the
    /// same final exchange and returned.
    public func backward(_ loss: Variable?, parameters: [Variable], scalars: [Double]) -> [Double] {
        if plan == nil || plan!.parameters.count != parameters.count
            || !zip(plan!.parameters, parameters).allSatisfy({ $0 === $1 }) {
            plan = BucketPlan(parameters: parameters, bucketFloats: max(1, bucketBytes / 4), group: group)
        }
        let plan = plan!
        plan.begin()
        let started = Self.now()
        if let loss {
            loss.backward(leafReady: { leaf in plan.ready(leaf) })
        }
        let backwardDone = Self.now()
        plan.launchAll()
        plan.waitAll()
        let done = Self.now()
        // Which parameters any rank had a gradient for, with the step's scalars.
        var tail = plan.presence + scalars
        tail = group.allReduceSum(tail)
        plan.finish(presence: Array(tail[0..<parameters.count]))
        stats.steps += 1
        stats.buckets = plan.buckets.count
        stats.bytes += plan.totalFloats * 4 + tail.count * 8
        stats.reduceSeconds += done - (plan.firstLaunch ?? started)
        stats.exposedSeconds += done - backwardDone
        return Array(tail[parameters.count...])
    }

    /// Compares a digest of `tensors` across the ranks; throws (every rank alike) naming the ranks that differ.
    public func checkWeights(_ tensors: [(String, Tensor)], step: Int) throws {
        let digest = RunDigest.of(parameters: tensors)
        do { try group.checkIdentical(digest, what: "the weights after step \(step)") } catch let e as ClusterError {
            throw ClusterError(e.description + ": the ranks diverged (a non-deterministic operation, or different "
                               + "code or libraries on the hosts); the last checkpoint holds rank 0's weights")
        }
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}

/// The fused buckets of one parameter list and their state during a step.
final class BucketPlan {
    final class Bucket {
        /// Indices into `parameters`.
        let members: Range<Int>
        let offsets: [Int]
        let buffer: UnsafeMutableBufferPointer<Float>
        var missing = 0
        var request: PendingReduction?
        init(members: Range<Int>, offsets: [Int], floats: Int) {
            self.members = members
            self.offsets = offsets
            buffer = .allocate(capacity: floats)
        }
        deinit { buffer.deallocate() }
    }

    let parameters: [Variable]
    let buckets: [Bucket]
    /// Bucket index and position of every parameter.
    let slot: [ObjectIdentifier: (bucket: Int, index: Int)]
    let totalFloats: Int
    private(set) var presence: [Double]
    private var nextLaunch = 0
    private(set) var firstLaunch: Double?
    private let group: ProcessGroup

    /// Buckets of about `bucketFloats` floats over the parameters in reverse order (the order the backward pass
    /// finishes them); a parameter larger than a bucket has one of its own.
    init(parameters: [Variable], bucketFloats: Int, group: ProcessGroup) {
        self.parameters = parameters
        self.group = group
        var buckets: [Bucket] = []
        var slot: [ObjectIdentifier: (Int, Int)] = [:]
        // Bucket membership is a contiguous range of `order` (reversed parameter indices), stored as parameter indices.
        let order = Array(parameters.indices.reversed())
        var start = 0
        var total = 0
        while start < order.count {
            var end = start, floats = 0
            var offsets: [Int] = []
            while end < order.count && (end == start || floats + parameters[order[end]].value.count <= bucketFloats) {
                offsets.append(floats)
                floats += parameters[order[end]].value.count
                end += 1
            }
            let b = Bucket(members: start..<end, offsets: offsets, floats: floats)
            for (k, position) in (start..<end).enumerated() {
                slot[ObjectIdentifier(parameters[order[position]])] = (buckets.count, k)
            }
            buckets.append(b)
            total += floats
            start = end
        }
        self.order = order
        self.buckets = buckets
        self.slot = slot
        totalFloats = total
        presence = [Double](repeating: 0, count: parameters.count)
    }

    /// Parameter index of bucket position `position` (over all buckets).
    private let order: [Int]

    func begin() {
        for b in buckets { b.missing = b.members.count; b.request = nil }
        nextLaunch = 0
        firstLaunch = nil
        for i in presence.indices { presence[i] = 0 }
    }

    /// A parameter's gradient is final: launches every bucket now complete, in order, and lets reductions progress.
    func ready(_ leaf: Variable) {
        guard let s = slot[ObjectIdentifier(leaf)] else { return }
        buckets[s.bucket].missing -= 1
        while nextLaunch < buckets.count && buckets[nextLaunch].missing == 0 { launch(nextLaunch) }
        for b in buckets[..<nextLaunch] { if let r = b.request, r.test() { b.request = nil } }
    }

    /// Launches the buckets not started yet (a parameter without a gradient here contributes zeros).
    func launchAll() {
        while nextLaunch < buckets.count { launch(nextLaunch) }
    }

    func waitAll() {
        for b in buckets { b.request?.wait(); b.request = nil }
    }

    private func launch(_ i: Int) {
        let b = buckets[i]
        if firstLaunch == nil { firstLaunch = DataParallel.now() }
        for (k, position) in b.members.enumerated() {
            let p = parameters[order[position]]
            let dst = b.buffer.baseAddress! + b.offsets[k]
            let n = p.value.count
            if let g = p.grad {
                presence[order[position]] = 1
                g.scalars.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: n) }
            } else {
                dst.update(repeating: 0, count: n)
            }
        }
        nextLaunch = i + 1
        b.request = group.startAllReduceSum(b.buffer)
    }

    /// Writes the summed gradients back; a parameter no rank had a gradient for gets none.
    func finish(presence global: [Double]) {
        for b in buckets {
            for (k, position) in b.members.enumerated() {
                let index = order[position]
                let p = parameters[index]
                guard global[index] != 0 else { p.grad = nil; continue }
                let n = p.value.count
                let src = b.buffer.baseAddress! + b.offsets[k]
                if p.grad != nil {
                    // In place (no fresh pages each step); a gradient storage shared with another tensor is copied first.
                    p.grad!.scalars.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: src, count: n) }
                } else {
                    p.grad = Tensor(shape: p.value.shape, scalars: Array(UnsafeBufferPointer(start: src, count: n)))
                }
            }
        }
    }
}

// MARK: - Starting a data-parallel run

extension DataParallel {
    /// Checks, before anything is trained, that every rank runs the same job: the same run arguments and
    /// settings, the same training data (as the trainer will see it, batch by batch) and the same weights in each
    /// model (`models`: what the message names, e.g. the model file, and the loaded model). Throws the agreed
    /// error naming the first thing that differs and the ranks that differ from rank 0.
    public func checkSameRun(arguments: [String: String], settings: String, data: TrainingData,
                             models: [(String, [(String, Variable)])]) throws {
        let args = arguments.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
        try group.checkIdentical(RunDigest.of(args + "\n" + settings), what: "the run's arguments")
        try group.checkIdentical(RunDigest.of(data: data), what: "the training data")
        for (what, parameters) in models {
            try group.checkIdentical(RunDigest.of(parameters: parameters.map { ($0.0, $0.1.value) }), what: what)
        }
    }

    /// A fresh private directory for this rank's copies of what rank 0 writes (ranks other than 0 only):
    /// `$TMPDIR/cofi-rankR-PID-XXXXXXXX`. Removes first the ones whose process is gone (a killed rank's).
    public func scratchDirectory() throws -> URL {
        let fm = FileManager.default
        let temp = fm.temporaryDirectory
        for name in (try? fm.contentsOfDirectory(atPath: temp.path)) ?? [] where name.hasPrefix("cofi-rank") {
            let parts = name.split(separator: "-")
            if parts.count == 4, let pid = Int32(parts[2]), kill(pid, 0) != 0 && errno == ESRCH {
                try? fm.removeItem(at: temp.appendingPathComponent(name))
            }
        }
        let url = temp.appendingPathComponent(
            "cofi-rank\(group.rank)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))")
        try fm.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Evaluators split their batches over the ranks (`TaskEvaluator.group`, `SQuADEvaluator.group`).
    public func distribute(_ evaluator: Evaluator) {
        if let e = evaluator as? TaskEvaluator { e.group = group }
        if let e = evaluator as? SQuADEvaluator { e.group = group }
    }
}

/// How this process was started: by `mpirun` (Open MPI, or a PMI/PMIx launcher) as one of several ranks, or alone.
public enum Launch {
    /// The world size and this process's rank and local (per-host) count as the launcher's environment gives them;
    /// nil when no launcher started it.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment)
        -> (rank: Int, size: Int, localSize: Int)? {
        func int(_ keys: [String]) -> Int? { keys.lazy.compactMap { env[$0].flatMap { Int($0) } }.first }
        guard let size = int(["OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"]),
              let rank = int(["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"]) else { return nil }
        return (rank, size, int(["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]) ?? size)
    }

    /// The worker threads of each rank when `--threads` is not given: the host's cores split among its ranks, and
    /// no more than the cores the rank may run on (mpirun binds each rank to one core unless `--bind-to none`).
    public static func defaultThreads(localRanks: Int) -> Int {
        let share = max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, localRanks))
        return min(share, Processor.allowedProcessors() ?? share)
    }

    /// What to tell a user who started a build without MPI under `mpirun`.
    public static let notBuiltMessage = "this cofi was built without MPI support, but mpirun started it as one of "
        + "several ranks: install Open MPI (apt-get install libopenmpi-dev openmpi-bin) and build with "
        + "`swift build -c release --traits MPI`, then run .build/release/cofi under mpirun"
}
