/// xoshiro256** (Blackman & Vigna), seeded through SplitMix64. Small, fast and fully deterministic for a seed;
/// every random choice in the project (initialisation, dropout, shuffling, gate noise) draws from one of these.
public struct Xoshiro256: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var sm = seed
        func splitMix() -> UInt64 {
            sm &+= 0x9E37_79B9_7F4A_7C15
            var z = sm
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    @inline(__always) private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func next() -> UInt64 {
        let result = Self.rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = Self.rotl(s.3, 45)
        return result
    }

    /// Advances the stream by `n` draws of `next()` (what a data-parallel rank does for the rows of a global
    /// batch that other ranks own, so that its own rows get the draws a single process gives them).
    public mutating func skip(_ n: Int) {
        var i = 0
        while i < n { _ = next(); i += 1 }
    }

    /// Uniform in [0, 1) with 24 random bits.
    public mutating func nextUniform() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// Standard normal (Box–Muller on two uniforms, computed in Double).
    public mutating func nextNormal() -> Float {
        let u1 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        let r = (-2.0 * log(Swift.max(u1, 1e-300))).squareRoot()
        return Float(r * cos(2.0 * Double.pi * u2))
    }
}

/// The rows `offset ..< offset + count` of a batch of `total` rows: where a data-parallel rank's shard lies in the
/// global batch. Random draws laid out row-major with the batch outermost (dropout keep patterns) skip the other
/// rows' draws, so that every row gets the draws it gets in a single process on the whole batch.
public struct RowSlice: Equatable, Sendable {
    public var offset: Int
    public var count: Int
    public var total: Int

    public init(offset: Int, count: Int, total: Int) {
        precondition(offset >= 0 && count >= 0 && offset + count <= total, "rows \(offset)..<\(offset + count) of \(total)")
        self.offset = offset
        self.count = count
        self.total = total
    }

    /// Fills `n` values (n = count × per-row draws) with `draw`, skipping the draws of the rows before and after
    /// the slice in `rng`; without a slice, draws all n.
    public static func draw<T>(_ n: Int, rows: RowSlice?, rng: inout Xoshiro256, _ draw: (inout Xoshiro256) -> T) -> [T] {
        guard let rows, rows.count != rows.total else { return (0..<n).map { _ in draw(&rng) } }
        precondition(rows.count > 0 && n % rows.count == 0, "\(n) draws do not split into \(rows.count) rows")
        let perRow = n / rows.count
        rng.skip(rows.offset * perRow)
        let values = (0..<n).map { _ in draw(&rng) }
        rng.skip((rows.total - rows.offset - rows.count) * perRow)
        return values
    }
}

extension Tensor {
    /// Values drawn from normal(mean, std).
    public static func randomNormal(shape: [Int], mean: Float = 0, std: Float = 1,
                                    using rng: inout Xoshiro256) -> Tensor {
        Tensor(shape: shape) { buf in
            for i in 0..<buf.count { buf[i] = mean + std * rng.nextNormal() }
        }
    }

    /// Values drawn uniformly from [low, high).
    public static func randomUniform(shape: [Int], low: Float = 0, high: Float = 1,
                                     using rng: inout Xoshiro256) -> Tensor {
        Tensor(shape: shape) { buf in
            for i in 0..<buf.count { buf[i] = low + (high - low) * rng.nextUniform() }
        }
    }
}

#if canImport(Foundation)
import Foundation
#endif
