#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation

/// The benchmark harness shared by `cofi bench` (`ModelBenchmark`) and `cofi-bench`: clocks, the warm-up and
/// repeat policy, order statistics, peak memory, and the table and JSON-line formatting.
public enum Benchmark {
    /// Seconds since an arbitrary origin, monotonic.
    @inline(__always)
    public static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

    /// CPU seconds used by the whole process so far (user + system, every thread). On a loaded machine the CPU
    /// time of a run is a steadier measure of its work than its wall time.
    public static func cpuTime() -> Double {
        var u = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &u)
        #else
        getrusage(RUSAGE_SELF, &u)
        #endif
        return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6
    }

    /// The `q`-th percentile with linear interpolation between order statistics (numpy's default); the median
    /// is `percentile(xs, 50)`.
    public static func percentile(_ xs: [Double], _ q: Double) -> Double {
        precondition(!xs.isEmpty, "percentile of no values")
        let s = xs.sorted()
        let position = q / 100 * Double(s.count - 1)
        let lo = Int(position.rounded(.down)), hi = min(lo + 1, s.count - 1)
        return s[lo] + (s[hi] - s[lo]) * (position - Double(lo))
    }

    public static func median(_ xs: [Double]) -> Double { percentile(xs, 50) }

    /// `s` padded with spaces to `width` characters (on the left when `right`), for tables.
    public static func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
        let n = max(0, width - s.count)
        return right ? String(repeating: " ", count: n) + s : s + String(repeating: " ", count: n)
    }

    /// Keeps results observable, so that no timed work is optimised away.
    nonisolated(unsafe) public static var sink: Float = 0
}

/// How many times a workload runs: `warmup` untimed runs, then `repeats` timed ones — or, without `repeats`, as
/// many as fit in `budget` seconds judged from the last warm-up run (one probe run when `warmup` is 0), clamped to
/// `bounds`.
public struct RepeatPolicy: Sendable {
    public var warmup: Int
    public var repeats: Int?
    public var budget: Double
    public var bounds: ClosedRange<Int>

    public init(warmup: Int, repeats: Int?, budget: Double, bounds: ClosedRange<Int>) {
        self.warmup = warmup
        self.repeats = repeats
        self.budget = budget
        self.bounds = bounds
    }

    /// The timed runs' results; `seconds` reads the time a run took from its result.
    public func run<R>(_ body: () throws -> R, seconds: (R) -> Double) rethrows -> [R] {
        var last = 0.0
        for _ in 0..<max(warmup, repeats == nil ? 1 : 0) { last = seconds(try body()) }
        let n = repeats ?? min(bounds.upperBound, max(bounds.lowerBound, Int(budget / max(last, 1e-6))))
        return try (0..<n).map { _ in try body() }
    }

    /// The seconds of each timed call of `call`.
    public func time(_ call: () throws -> Void) rethrows -> [Double] {
        try run({ () throws -> Double in
            let t0 = Benchmark.now()
            try call()
            return Benchmark.now() - t0
        }, seconds: { $0 })
    }
}

/// The process's peak resident memory.
public enum PeakMemory {
    /// Resets the peak to the current resident size where the system allows it (Linux: writing 5 to
    /// /proc/self/clear_refs resets the high-water mark that getrusage reports).
    public static func reset() {
        #if os(Linux)
        if let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") {
            handle.write(Data("5".utf8))
            try? handle.close()
        }
        #endif
    }

    /// getrusage's ru_maxrss in MiB (Linux reports KiB, macOS bytes).
    public static func mebibytes() -> Double {
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
        #else
        getrusage(RUSAGE_SELF, &usage)
        return Double(usage.ru_maxrss) / 1_048_576
        #endif
    }
}
