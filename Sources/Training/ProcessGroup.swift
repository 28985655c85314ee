import Crypto
import Foundation
import Tensor

// The processes of a data-parallel run (`mpirun -np N cofi finetune|prune …`) and the few collective operations
// training needs. The trainer, the evaluators and the jobs see only this protocol; the MPI binding (target
// `Cluster`, built with the `MPI` trait) implements it, so the default build needs no MPI.

/// A group of N cooperating processes ("ranks"), each running the same program on its share of the data.
///
/// Every rank must call the collective operations in the same order with the same sizes (MPI's rule). A
/// communication failure ends the whole job (MPI's default error handler): none of these calls returns an error.
public protocol ProcessGroup: AnyObject {
    /// This process's index, 0 ..< size. Rank 0 is the lead: it alone writes the run's files and prints progress.
    var rank: Int { get }
    var size: Int { get }
    /// The name of this rank's host, for messages.
    var host: String { get }
    /// Sums `buffer` element-wise over the ranks, in place; every rank gets the same bits.
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>)
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>)
    /// Starts summing `buffer` over the ranks in place without waiting; `buffer` must stay untouched and alive until
    /// the returned reduction is done.
    func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) -> PendingReduction
    /// Copies `buffer` of rank `root` into every other rank's `buffer` (the same byte count on every rank).
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int)
    func barrier()
    /// Ends every rank of the job at once (after printing `message` on this one); for failures only some ranks see.
    func abort(_ message: String) -> Never
}

/// A reduction in flight (`ProcessGroup.startAllReduceSum`).
public protocol PendingReduction: AnyObject {
    /// Lets the reduction progress without blocking; true once it is complete.
    func test() -> Bool
    /// Blocks until it is complete.
    func wait()
}

/// A failure of a data-parallel run. `agreed` errors are thrown by every rank alike (the ranks exchanged them), so
/// every rank may stop normally and rank 0 reports; any other error a rank meets alone must abort the job.
public struct ClusterError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public var agreed: Bool
    public init(_ description: String, agreed: Bool = true) {
        self.description = description
        self.agreed = agreed
    }
}

extension ProcessGroup {
    public var isLead: Bool { rank == 0 }

    /// "rank 1 of 2 (host node7)".
    public var rankDescription: String { "rank \(rank) of \(size) (host \(host))" }

    /// The element-wise sum of every rank's `values`.
    public func allReduceSum(_ values: [Double]) -> [Double] {
        var v = values
        v.withUnsafeMutableBufferPointer { allReduceSum($0) }
        return v
    }

    /// Rank `root`'s bytes, on every rank (the length travels first).
    public func broadcast(bytes: [UInt8], root: Int) -> [UInt8] {
        var count = [Int64(bytes.count)]
        count.withUnsafeMutableBytes { broadcast($0, root: root) }
        var data = rank == root ? bytes : [UInt8](repeating: 0, count: Int(count[0]))
        if !data.isEmpty { data.withUnsafeMutableBytes { broadcast($0, root: root) } }
        return data
    }

    /// Every rank calls this with its own outcome (nil: it went well). When any rank failed, every rank throws the
    /// same agreed `ClusterError` with the first failing rank's message, naming that rank and its host; so no
    /// rank is left waiting in a collective that a failed rank will never join.
    public func agree(_ failure: Error?) throws {
        var flags = [Double](repeating: 0, count: size)
        if failure != nil { flags[rank] = 1 }
        flags = allReduceSum(flags)
        guard let first = flags.firstIndex(where: { $0 != 0 }) else { return }
        let failed = flags.indices.filter { flags[$0] != 0 }
        let text = failure.map { "rank \(rank) (host \(host)): \($0)" } ?? ""
        let message = String(decoding: broadcast(bytes: Array(text.utf8), root: first), as: UTF8.self)
        let others = failed.count > 1 ? " (ranks \(failed.map(String.init).joined(separator: ", ")) failed)" : ""
        throw ClusterError(message + others)
    }

    /// Runs `body` on every rank and agrees on the outcome (see `agree`).
    public func agreeing<T>(_ body: () throws -> T) throws -> T {
        var result: T?
        var failure: Error?
        do { result = try body() } catch { failure = error }
        try agree(failure)
        return result!
    }

    /// Checks that every rank computed the same `digest` of `what` (its arguments, its data, a model file, its
    /// weights); throws the agreed error naming the ranks that differ from rank 0.
    public func checkIdentical(_ digest: [UInt8], what: String) throws {
        let lead = broadcast(bytes: digest, root: 0)
        var flags = [Double](repeating: 0, count: size)
        if lead != digest { flags[rank] = 1 }
        flags = allReduceSum(flags)
        let differing = flags.indices.filter { flags[$0] != 0 }
        guard !differing.isEmpty else { return }
        let hosts = hostNames()
        throw ClusterError("\(what) differs between the ranks: "
            + differing.map { "rank \($0) (host \(hosts[$0]))" }.joined(separator: ", ")
            + " disagree\(differing.count == 1 ? "s" : "") with rank 0 (host \(hosts[0]))")
    }

    /// Every rank's host name, in rank order.
    public func hostNames() -> [String] {
        (0..<size).map { r in String(decoding: broadcast(bytes: Array(host.utf8), root: r), as: UTF8.self) }
    }

    /// Copies the files under rank 0's `directory` (recursively; `skipping` names left out) to the same relative
    /// paths under `local` on every other rank, which must pass its own scratch directory there. What a rank needs
    /// to continue a run whose checkpoints only rank 0 writes.
    public func mirror(directory: URL, into local: URL?, skipping: Set<String> = []) throws {
        var files: [(String, Data)] = []
        if isLead {
            let fm = FileManager.default
            if let walker = fm.enumerator(at: directory, includingPropertiesForKeys: [.isRegularFileKey]) {
                for case let url as URL in walker {
                    guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
                    let relative = String(url.standardizedFileURL.path.dropFirst(directory.standardizedFileURL.path.count + 1))
                    if relative.split(separator: "/").contains(where: { skipping.contains(String($0)) }) { continue }
                    files.append((relative, try Data(contentsOf: url)))
                }
            }
        }
        let names = broadcast(bytes: Array(files.map(\.0).joined(separator: "\n").utf8), root: 0)
        let list = names.isEmpty ? [] : String(decoding: names, as: UTF8.self).components(separatedBy: "\n")
        for (i, name) in list.enumerated() {
            let bytes = broadcast(bytes: isLead ? [UInt8](files[i].1) : [], root: 0)
            guard !isLead, let local else { continue }
            let url = local.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url, options: .atomic)
        }
    }

}

/// Runs `body`; with a group, on every rank, agreeing on the outcome (`ProcessGroup.agreeing`).
public func agreeing<T>(_ group: ProcessGroup?, _ body: () throws -> T) throws -> T {
    try group?.agreeing(body) ?? body()
}

/// SHA-256 digests of what every rank must agree on before a data-parallel run starts.
public enum RunDigest {
    /// Of a string (the run's arguments and settings, in a fixed order).
    public static func of(_ text: String) -> [UInt8] { Array(SHA256.hash(data: Data(text.utf8))) }

    /// Of the exact float32 values of `parameters`, in order (the weights each rank loaded or holds).
    public static func of(parameters: [(String, Tensor)]) -> [UInt8] {
        var h = SHA256()
        for (name, t) in parameters {
            h.update(data: Data(name.utf8))
            t.scalars.withUnsafeBytes { h.update(bufferPointer: $0) }
        }
        return Array(h.finalize())
    }

    /// Of the training data as the trainer sees it: every batch of epoch 0 in order (token ids, attention masks,
    /// token types, targets), and the counts.
    public static func of(data: TrainingData) -> [UInt8] {
        var h = SHA256()
        h.update(data: Data("\(data.exampleCount) \(data.batchCount)".utf8))
        for positions in data.order(epoch: 0) {
            let b = data.trainingBatch(positions)
            for ints in [b.inputs.inputIds, b.inputs.attentionMask, b.inputs.tokenTypeIds, b.indices] {
                ints.withUnsafeBytes { h.update(bufferPointer: $0) }
            }
            switch b.targets {
            case .classes(let k)?: k.withUnsafeBytes { h.update(bufferPointer: $0) }
            case .values(let v)?: v.withUnsafeBytes { h.update(bufferPointer: $0) }
            case let .spans(s, e)?: for p in [s, e] { p.withUnsafeBytes { h.update(bufferPointer: $0) } }
            case nil: h.update(data: Data("none".utf8))
            }
        }
        return Array(h.finalize())
    }
}
