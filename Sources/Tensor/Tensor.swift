/// A dense, row-major float32 array with a shape. Value semantics: copies share storage until one is written
/// (copy-on-write through `[Float]`).
///
/// Shapes are written in comments as `[B, T, D]` (batch, tokens, width); a linear weight is `[out, in]`, as in
/// PyTorch and in Hugging Face checkpoints.
public struct Tensor: Equatable, Sendable {
    public private(set) var shape: [Int]
    public var scalars: [Float]

    /// Wraps `scalars` (row-major) as a tensor of `shape`; the counts must agree.
    public init(shape: [Int], scalars: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(shape.reduce(1, *) == scalars.count,
                     "shape \(shape) holds \(shape.reduce(1, *)) values, got \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
    }

    /// A tensor of `shape` filled with `value`.
    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    /// A tensor of `shape` filled with zeros.
    public init(zeros shape: [Int]) { self.init(repeating: 0, shape: shape) }

    /// A tensor of `shape` whose values are written by `body` into uninitialised storage of `count` floats.
    /// `body` must write every element.
    public init(shape: [Int], unsafeUninitialized body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        let n = shape.reduce(1, *)
        self.shape = shape
        self.scalars = [Float](unsafeUninitializedCapacity: n) { buf, initialized in
            body(buf)
            initialized = n
        }
    }

    /// A scalar (rank-0) tensor.
    public init(scalar: Float) { self.init(shape: [], scalars: [scalar]) }

    public var count: Int { scalars.count }
    public var rank: Int { shape.count }

    /// The only value of a one-element tensor.
    public var scalar: Float {
        precondition(scalars.count == 1, "scalar of a tensor with shape \(shape)")
        return scalars[0]
    }

    /// The same values viewed with another shape of equal element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, scalars: scalars)
    }

    /// Largest absolute element (0 for an empty tensor); NaN when any element is NaN. `maxAbsDifference(_:)` and
    /// `isClose(to:tolerance:)` (in Comparison.swift) compare tensors.
    public var maxAbs: Float { scalars.reduce(0) { $0.isNaN || $1.isNaN ? .nan : Swift.max($0, abs($1)) } }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = scalars.prefix(8).map { String(format: "%.5g", Double($0)) }.joined(separator: ", ")
        return "Tensor(\(shape): [\(head)\(scalars.count > 8 ? ", …" : "")])"
    }
}

#if canImport(Foundation)
import Foundation
#endif
