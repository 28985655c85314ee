import Foundation
import Tensor

/// Seeded shuffling on the project RNG, written out so that a split or an epoch order depends only on
/// `Xoshiro256.next()` — never on the standard library's `shuffle(using:)`, whose algorithm is not promised to stay
/// the same across Swift versions.
public enum SeededShuffle {
    /// Uniform in 0..<n without modulo bias: draws below 2⁶⁴ mod n are rejected (OpenBSD `arc4random_uniform`).
    public static func index(below n: Int, using rng: inout Xoshiro256) -> Int {
        precondition(n > 0, "n must be positive")
        let bound = UInt64(n)
        let threshold = (0 &- bound) % bound
        while true {
            let r = rng.next()
            if r >= threshold { return Int(r % bound) }
        }
    }

    /// Fisher–Yates (Durstenfeld): for i = n−1 … 1, swap element i with a uniform j in 0...i.
    public static func shuffle<T>(_ a: inout [T], using rng: inout Xoshiro256) {
        var i = a.count - 1
        while i > 0 {
            a.swapAt(i, index(below: i + 1, using: &rng))
            i -= 1
        }
    }

    /// A uniformly random permutation of 0..<n.
    public static func permutation(_ n: Int, using rng: inout Xoshiro256) -> [Int] {
        var p = Array(0..<n)
        shuffle(&p, using: &rng)
        return p
    }
}
