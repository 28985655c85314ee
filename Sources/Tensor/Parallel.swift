import Dispatch
import Foundation

/// Splits loops across the machine's cores. All parallelism in the project goes through here (BLAS is kept
/// single-threaded, see `BLAS`), so the number of busy threads never exceeds the number of cores.
public enum Parallel {
    /// Number of worker threads: the active processor count (override with `COFI_THREADS`, or `setWorkers`).
    nonisolated(unsafe) public private(set) static var workers: Int = {
        if let s = ProcessInfo.processInfo.environment["COFI_THREADS"], let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Sets the number of worker threads (a command's `--threads`, or a data-parallel rank's share of its host's
    /// cores). Call it before any parallel work starts, from the main thread.
    public static func setWorkers(_ n: Int) {
        precondition(n > 0, "worker threads must be positive, got \(n)")
        workers = n
    }

    /// Runs `body` over `0..<count` split into at most `workers` contiguous chunks, concurrently when there is
    /// more than one chunk. `grain` is the smallest chunk worth a thread (in loop iterations).
    /// Chunk boundaries depend only on `count`, `grain` and `workers`, so results are deterministic.
    @inline(__always)
    public static func forChunks(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = min(workers, max(1, count / max(grain, 1)))
        if chunks == 1 { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { body(lo..<hi) }
        }
    }
}

/// A pointer that may cross into `Parallel.forChunks` closures; each chunk writes a disjoint range.
public struct SharedPointer<T>: @unchecked Sendable {
    public let base: UnsafeMutablePointer<T>
    public init(_ base: UnsafeMutablePointer<T>) { self.base = base }
}
