import BERT
import Foundation
import Platform
import Tasks
import Tensor
import XCTest
@testable import Training

/// A process group of one rank, in process: every collective is the identity. Data-parallel code run on it must
/// give exactly what the single-process code gives (the 2-rank equivalence over real MPI is `MPICLITests`).
final class LoopbackGroup: ProcessGroup {
    var rank: Int { 0 }
    var size: Int { 1 }
    var host: String { "loopback" }
    private(set) var reductions = 0
    private(set) var reducedFloats = 0
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) { reductions += 1; reducedFloats += buffer.count }
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) { reductions += 1 }
    func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) -> PendingReduction {
        reductions += 1
        reducedFloats += buffer.count
        return Done()
    }
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {}
    func barrier() {}
    func abort(_ message: String) -> Never { fatalError(message) }
    final class Done: PendingReduction {
        func test() -> Bool { true }
        func wait() {}
    }
}

/// Rank 1 of 2 in process, with a scripted rank 0: broadcasts from rank 0 deliver `leadBytes` (then rank 0's host
/// name), and sums add nothing from rank 0. Enough to see what rank 1 reports when its data differ from rank 0's.
final class ScriptedPeerGroup: ProcessGroup {
    var rank: Int { 1 }
    var size: Int { 2 }
    var host: String { "node2" }
    var leadBytes: [[UInt8]]
    init(leadBytes: [[UInt8]]) { self.leadBytes = leadBytes }
    private var pendingLength: [UInt8]?
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {}
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) {}
    func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) -> PendingReduction { LoopbackGroup.Done() }
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {
        guard root == 0 else { return }
        // A length (8 bytes) first, then the bytes themselves (`broadcast(bytes:root:)`).
        if let next = pendingLength {
            buffer.copyBytes(from: next)
            pendingLength = nil
        } else {
            let bytes = leadBytes.removeFirst()
            withUnsafeBytes(of: Int64(bytes.count)) { buffer.copyBytes(from: $0) }
            pendingLength = bytes
        }
    }
    func barrier() {}
    func abort(_ message: String) -> Never { fatalError(message) }
}

final class DataParallelTests: XCTestCase {
    /// Rows split contiguously, every row once, sizes differing by at most one, the first ranks larger.
    func testRowsPartitionTheBatch() {
        for total in 0...11 {
            for size in 1...5 {
                let parts = (0..<size).map { DataParallel.rows(of: total, rank: $0, size: size) }
                XCTAssertEqual(parts.flatMap { Array($0) }, Array(0..<total), "\(total) rows over \(size)")
                let counts = parts.map(\.count)
                XCTAssertLessThanOrEqual(counts.max()! - counts.min()!, 1)
                XCTAssertEqual(counts, counts.sorted(by: >))
            }
        }
    }

    /// Dropout on a shard of rows gives exactly the keep pattern those rows get in the whole batch, and leaves the
    /// stream where the whole batch leaves it.
    func testShardDropoutMatchesTheWholeBatch() {
        let B = 5, D = 7
        let x = Variable(Tensor(shape: [B, D], scalars: (0..<(B * D)).map { Float($0 + 1) }))
        var whole = Xoshiro256(seed: 9)
        let full = dropout(x, p: 0.4, rng: &whole).value
        for (offset, count) in [(0, 2), (2, 3), (4, 1), (0, 5)] {
            var rng = Xoshiro256(seed: 9)
            let part = Variable(Tensor(shape: [count, D], scalars: Array(x.value.scalars[(offset * D)..<((offset + count) * D)])))
            let y = dropout(part, p: 0.4, rng: &rng, rows: RowSlice(offset: offset, count: count, total: B)).value
            XCTAssertEqual(y.scalars, Array(full.scalars[(offset * D)..<((offset + count) * D)]), "rows \(offset)+\(count)")
            XCTAssertEqual(rng.next(), { var w = whole; return w.next() }(), "the stream after the shard")
        }
    }

    /// The same for attention-probability dropout: a shard's contexts are the whole batch's rows.
    func testShardAttentionDropoutMatchesTheWholeBatch() {
        let B = 3, T = 4, H = 2, Dh = 3
        var init_ = Xoshiro256(seed: 3)
        let q = Tensor.randomNormal(shape: [B * T, H * Dh], using: &init_)
        let k = Tensor.randomNormal(shape: [B * T, H * Dh], using: &init_)
        let v = Tensor.randomNormal(shape: [B * T, H * Dh], using: &init_)
        var whole = Xoshiro256(seed: 4)
        let full = attention(q: Variable(q), k: Variable(k), v: Variable(v), batch: B, seqLen: T, heads: H, headDim: Dh,
                             additiveMask: nil, dropout: 0.3, rng: &whole).value
        let width = T * H * Dh
        for (offset, count) in [(0, 1), (1, 2), (2, 1)] {
            func rows(_ t: Tensor) -> Variable {
                Variable(Tensor(shape: [count * T, H * Dh], scalars: Array(t.scalars[(offset * width)..<((offset + count) * width)])))
            }
            var rng = Xoshiro256(seed: 4)
            let y = attention(q: rows(q), k: rows(k), v: rows(v), batch: count, seqLen: T, heads: H, headDim: Dh,
                              additiveMask: nil, dropout: 0.3, rng: &rng,
                              rows: RowSlice(offset: offset, count: count, total: B)).value
            let expected = Array(full.scalars[(offset * width)..<((offset + count) * width)])
            XCTAssertLessThanOrEqual(maxAbsDifference(y.scalars, expected), 1e-6, "rows \(offset)+\(count)")
        }
    }

    /// `backward(leafReady:)` reports every reached leaf once, when its gradient is already final, and the
    /// gradients are those of a plain backward pass.
    func testLeafReadyReportsEachLeafOnceWithItsFinalGradient() {
        let model = TinyRun.model(seed: 3)
        let batch = BertBatch(batch: 2, seqLen: 5, inputIds: [2, 5, 6, 3, 0, 2, 10, 11, 12, 3],
                              attentionMask: [1, 1, 1, 1, 0, 1, 1, 1, 1, 1])
        func loss() -> Variable {
            var mode = ForwardMode(training: true, rng: Xoshiro256(seed: 1))
            return crossEntropy(model(batch, mode: &mode).logits!, labels: [0, 1])
        }
        loss().backward()
        let plain = model.namedParameters.map { $0.1.grad }
        for (_, p) in model.namedParameters { p.grad = nil }
        var reported: [ObjectIdentifier: Tensor?] = [:]
        var order: [ObjectIdentifier] = []
        loss().backward(leafReady: { leaf in
            XCTAssertNil(reported[ObjectIdentifier(leaf)] ?? nil, "reported twice")
            reported[ObjectIdentifier(leaf)] = leaf.grad
            order.append(ObjectIdentifier(leaf))
        })
        for ((name, p), g) in zip(model.namedParameters, plain) {
            guard let g else { XCTAssertNil(reported[ObjectIdentifier(p)] ?? nil, name); continue }
            guard let atReport = reported[ObjectIdentifier(p)] ?? nil else { XCTFail("\(name) not reported"); continue }
            XCTAssertEqual(atReport.scalars, p.grad!.scalars, "\(name) changed after it was reported")
            XCTAssertEqual(p.grad!.scalars, g.scalars, name)
        }
        // The head's gradients are final before the embeddings' (reverse order, what the buckets rely on).
        let head = ObjectIdentifier(model.head!.weight), words = ObjectIdentifier(model.embeddings.wordEmbeddings)
        XCTAssertLessThan(order.firstIndex(of: head)!, order.firstIndex(of: words)!)
    }

    /// Buckets hold each parameter once, in reverse order, none above the cap unless a parameter alone is.
    func testBucketsCoverTheParametersInReverseOrder() {
        let parameters = TinyRun.model().namedParameters.map(\.1)
        let cap = 600
        let plan = BucketPlan(parameters: parameters, bucketFloats: cap, group: LoopbackGroup())
        var seen: [Int] = []
        for b in plan.buckets {
            let sizes = b.members.map { parameters[parameters.count - 1 - $0].value.count }
            XCTAssertTrue(sizes.reduce(0, +) <= cap || sizes.count == 1, "bucket of \(sizes)")
            seen += b.members
        }
        XCTAssertEqual(seen, Array(parameters.indices))
        XCTAssertEqual(plan.totalFloats, parameters.reduce(0) { $0 + $1.value.count })
        XCTAssertGreaterThan(plan.buckets.count, 3)
    }

    /// The trainer on a one-rank group takes exactly the single-process steps (same losses, same weights), with
    /// the gradients going through the fused buckets and the sharded evaluation.
    func testOneRankGroupTrainsExactlyAsOneProcess() throws {
        let dir = try TinyRun.directory(train: 18)
        defer { try? FileManager.default.removeItem(at: dir) }
        func run(_ group: LoopbackGroup?) throws -> ([Float], [String: Tensor], Double?) {
            let parts = try TinyRun.parts(dir, batchSize: 5)
            var c = TinyRun.configuration
            c.batchSize = 5
            c.epochs = 2
            let model = TinyRun.model()
            let trainer = try Trainer(model: model, data: parts.batcher, configuration: c, evaluator: parts.evaluator)
            if let group {
                let parallel = DataParallel(group: group, bucketBytes: 2_000, checkEvery: 3)
                trainer.parallel = parallel
                parallel.distribute(parts.evaluator)
            }
            var losses: [Float] = []
            trainer.onStep = { losses.append($0.loss) }
            let summary = try trainer.train()
            return (losses, TinyRun.weights(model), summary.bestMetric)
        }
        let group = LoopbackGroup()
        let single = try run(nil), parallel = try run(group)
        XCTAssertEqual(single.0, parallel.0)
        XCTAssertEqual(TinyRun.maxDifference(single.1, parallel.1), 0)
        XCTAssertEqual(single.2, parallel.2)
        XCTAssertGreaterThan(group.reducedFloats, 0)
    }

    /// `agree` passes when no rank failed and throws the agreed error naming the failed rank otherwise;
    /// `checkIdentical` passes for the same digest.
    func testAgreementOnOneRank() throws {
        let group = LoopbackGroup()
        XCTAssertNoThrow(try group.agree(nil))
        XCTAssertThrowsError(try group.agree(TrainerError("/data/train.csv: no such file"))) { error in
            let e = error as? ClusterError
            XCTAssertEqual(e?.agreed, true)
            XCTAssertTrue(e?.description.contains("rank 0 (host loopback): /data/train.csv: no such file") ?? false, "\(error)")
        }
        XCTAssertNoThrow(try group.checkIdentical([1, 2, 3], what: "the run's arguments"))
    }

    /// A rank whose training data differ from rank 0's (same arguments, other file contents on its host) throws
    /// the agreed error naming the data, itself and its host; the digest sees any change of tokens or labels.
    func testDifferentDataOnARankIsNamed() throws {
        let dir = try TinyRun.directory(train: 12)
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = try TinyRun.parts(dir).batcher
        let digest = RunDigest.of(data: data)
        XCTAssertEqual(digest, RunDigest.of(data: try TinyRun.parts(dir).batcher))
        try TinyRun.csv(rows: 12, offset: 1).write(to: dir.appendingPathComponent("train.csv"), atomically: true, encoding: .utf8)
        let other = RunDigest.of(data: try TinyRun.parts(dir).batcher)
        XCTAssertNotEqual(digest, other)
        // Rank 1 holds `other`, rank 0 `digest`; rank 0 is scripted (its digest, then its host name).
        let group = ScriptedPeerGroup(leadBytes: [digest, Array("node1".utf8)])
        XCTAssertThrowsError(try group.checkIdentical(other, what: "the training data")) { error in
            XCTAssertEqual((error as? ClusterError)?.description,
                           "the training data differs between the ranks: rank 1 (host node2) disagrees with rank 0 (host node1)")
        }
    }

    /// The launcher's environment: Open MPI's variables, PMIx's, or none.
    func testLaunchEnvironment() throws {
        XCTAssertNil(Launch.fromEnvironment([:]))
        let ompi = Launch.fromEnvironment(["OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "2",
                                           "OMPI_COMM_WORLD_LOCAL_SIZE": "2"])
        XCTAssertEqual(ompi?.rank, 2)
        XCTAssertEqual(ompi?.size, 4)
        XCTAssertEqual(ompi?.localSize, 2)
        XCTAssertEqual(Launch.fromEnvironment(["PMIX_RANK": "1", "PMIX_SIZE": "3"])?.localSize, 3)
        XCTAssertGreaterThanOrEqual(Launch.defaultThreads(localRanks: 64), 1)
        #if os(Linux)
        let allowed = try XCTUnwrap(Processor.allowedProcessors())
        XCTAssertLessThanOrEqual(Launch.defaultThreads(localRanks: 1), allowed)
        XCTAssertGreaterThanOrEqual(allowed, 1)
        #endif
    }
}
