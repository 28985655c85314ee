import Foundation
import Generation
import Tasks
import Tensor

/// One text source of `cofi shear` (`--text FILE`, one data domain): its token sequences of `seqLen` tokens, the
/// last tenth (at least one) held out for the per-source evaluation that drives dynamic batch loading.
public struct TextSource: Sendable {
    public let name: String
    public let path: String
    public let tokens: Int
    public let train: [[Int]]
    public let heldOut: [[Int]]

    /// Reads and tokenizes `url`: it must be UTF-8, hold more than white space, and give at least two sequences.
    public init(url: URL, tokenizer: ByteLevelBPETokenizer, seqLen: Int) throws {
        let text: String
        do { text = try TextFile.read(url, flag: "--text") } catch { throw ShearError("\(error)") }
        let ids = tokenizer.encodeIDs(text)
        let count = ids.count / seqLen
        guard count >= 2 else {
            throw ShearError("--text \(url.path): \(ids.count) tokens make \(count) sequence(s) of \(seqLen); each source needs at least 2 (one to train on, one held out)")
        }
        let sequences = (0..<count).map { Array(ids[($0 * seqLen)..<(($0 + 1) * seqLen)]) }
        let held = max(1, count / 10)
        name = url.deletingPathExtension().lastPathComponent
        path = url.path
        tokens = ids.count
        train = Array(sequences[..<(count - held)])
        heldOut = Array(sequences[(count - held)...])
    }
}

/// Dynamic batch loading (Sheared-LLaMA §2.2, DoReMi's update): each training sequence comes from source i with
/// probability w_i; after each evaluation, w ← (1 − c)·softmax(log w + η·(ℓ − ℓ_ref)) + c/n with η = 1, c = 1e-4,
/// where ℓ_i is the model's held-out loss on source i and ℓ_ref,i its reference. A source whose loss lags its
/// reference the most gets more of the next batches. Within a source, sequences are taken in a shuffled order
/// (reshuffled after each pass) from `rng`, so a seed fixes the data order.
public struct DomainSampler: Codable, Sendable {
    public private(set) var weights: [Double]
    public let references: [Double]
    private var orders: [[Int]]
    private var cursors: [Int]
    private let sizes: [Int]
    public static let eta = 1.0, smoothing = 1e-4

    public init(sizes: [Int], references: [Double], weights: [Double]? = nil) {
        precondition(sizes.count == references.count && !sizes.isEmpty && sizes.allSatisfy { $0 > 0 })
        self.sizes = sizes
        self.references = references
        self.weights = weights ?? sizes.map { _ in 1 / Double(sizes.count) }
        orders = sizes.map { Array(0..<$0) }
        cursors = sizes.map { $0 }   // shuffled on first use
    }

    /// `count` (source, sequence) picks.
    public mutating func next(_ count: Int, rng: inout Xoshiro256) -> [(source: Int, index: Int)] {
        (0..<count).map { _ in
            let u = Double(rng.nextUniform())
            var acc = 0.0, s = weights.count - 1
            for (i, w) in weights.enumerated() {
                acc += w
                if u < acc { s = i; break }
            }
            if cursors[s] >= sizes[s] {
                var order = Array(0..<sizes[s])
                for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                orders[s] = order
                cursors[s] = 0
            }
            defer { cursors[s] += 1 }
            return (s, orders[s][cursors[s]])
        }
    }

    /// The DoReMi update from the held-out losses `losses` (one per source).
    public mutating func update(losses: [Double]) {
        weights = Self.updated(weights, losses: losses, references: references)
    }

    public static func updated(_ w: [Double], losses: [Double], references: [Double]) -> [Double] {
        let logits = zip(zip(w, losses), references).map { log($0.0) + eta * ($0.1 - $1) }
        let m = logits.max() ?? 0
        let e = logits.map { exp($0 - m) }
        let s = e.reduce(0, +)
        let n = Double(w.count)
        let mixed = e.map { (1 - smoothing) * $0 / s + smoothing / n }
        let total = mixed.reduce(0, +)
        return mixed.map { $0 / total }
    }
}
