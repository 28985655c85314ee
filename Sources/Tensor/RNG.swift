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
