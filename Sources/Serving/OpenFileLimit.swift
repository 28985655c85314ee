import Foundation

/// The process's open-files limit (RLIMIT_NOFILE): every connection is one open file, so a server that may hold
/// `maxConnections` needs that many and some to spare (the model, the event loops, the listening socket).
public enum OpenFileLimit {
    /// Files a server keeps open besides its connections, with room to spare.
    public static let reserve = 256

    /// The soft limit and the hard limit now (nil when they cannot be read).
    public static var current: (soft: Int, hard: Int)? {
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return nil }
        return (clamp(limit.rlim_cur), clamp(limit.rlim_max))
    }

    /// Raises the soft limit to `wanted` when it is lower, as far as the hard limit allows; the soft limit after.
    @discardableResult
    public static func raise(toAtLeast wanted: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return 0 }
        let soft = clamp(limit.rlim_cur), hard = clamp(limit.rlim_max)
        guard soft < wanted else { return soft }
        limit.rlim_cur = rlim_t(min(wanted, hard))
        guard setrlimit(resource, &limit) == 0 else { return soft }
        return min(wanted, hard)
    }

    #if os(Linux)
    private static let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    private static let resource = RLIMIT_NOFILE
    #endif

    /// A limit as an Int (RLIM_INFINITY and other huge values: Int.max).
    private static func clamp(_ value: rlim_t) -> Int {
        value > rlim_t(Int.max) ? Int.max : Int(value)
    }
}
