/// Tolerance comparisons: what every test and every numeric check of this package compares numbers with.
///
/// The rule: a NaN or an infinity (+Inf or −Inf) anywhere, on either side, is a failure — even where both sides
/// hold the same non-finite value — and so is a difference that overflows to infinity. A model whose outputs are
/// all NaN is therefore never "close" to anything, not even to itself. A fold such as `max(m, |a − b|)` does not
/// have this property: `max(0, .nan)` is 0, so it drops a NaN difference. Comparisons of values that may
/// legitimately be infinite (a −∞ mask entry) must compare the finite part explicitly.
///
/// Counts that differ are a bug in the caller, not a large difference: they stop the program (a precondition).

/// The largest |a[i] − b[i]| over the elements, in order; NaN when any value on either side is not finite, or a
/// difference is not (see the rule above). 0 for two empty collections. The counts must agree.
@inlinable
public func maxAbsDifference<A: Collection, B: Collection>(_ a: A, _ b: B) -> A.Element
where A.Element: FloatingPoint, B.Element == A.Element {
    precondition(a.count == b.count, "maxAbsDifference: \(a.count) values vs \(b.count)")
    var worst: A.Element = 0
    for (x, y) in zip(a, b) {
        let d = abs(x - y)
        guard x.isFinite, y.isFinite, d.isFinite else { return .nan }
        if d > worst { worst = d }
    }
    return worst
}

/// Whether a and b agree to `tolerance` element by element: every |a[i] − b[i]| ≤ tolerance and every value on
/// both sides finite (false for any NaN or infinity, see the rule above). The counts must agree.
@inlinable
public func isClose<A: Collection, B: Collection>(_ a: A, _ b: B, tolerance: A.Element) -> Bool
where A.Element: FloatingPoint, B.Element == A.Element {
    maxAbsDifference(a, b) <= tolerance
}

/// The largest of `errors` (0 when there are none); NaN when any is NaN or infinite (see the rule above). Unlike
/// `Sequence.max()` or a `max` fold, it cannot drop a NaN: what a check folds its per-element errors with.
@inlinable
public func maxError<S: Sequence>(_ errors: S) -> S.Element where S.Element: FloatingPoint {
    var worst: S.Element = 0
    for e in errors {
        guard e.isFinite else { return .nan }
        if e > worst { worst = e }
    }
    return worst
}

/// |a − b|, or NaN when a, b or the difference is not finite (see the rule above).
@inlinable
public func absDifference<T: FloatingPoint>(_ a: T, _ b: T) -> T {
    maxAbsDifference(CollectionOfOne(a), CollectionOfOne(b))
}

/// Whether |a − b| ≤ tolerance with both values finite (false for any NaN or infinity, see the rule above).
@inlinable
public func isClose<T: FloatingPoint>(_ a: T, _ b: T, tolerance: T) -> Bool {
    absDifference(a, b) <= tolerance
}

extension Tensor {
    /// The largest absolute element-wise difference to `other`, NaN when either tensor holds a NaN or an infinity
    /// (`maxAbsDifference(_:_:)`'s rule). The shapes must agree.
    public func maxAbsDifference(_ other: Tensor) -> Float {
        precondition(shape == other.shape, "shapes differ: \(shape) vs \(other.shape)")
        return maxAbsDifferenceOfElements(scalars, other.scalars)
    }

    /// Whether every element is within `tolerance` of `other`'s and every element of both is finite
    /// (`isClose(_:_:tolerance:)`'s rule). The shapes must agree.
    public func isClose(to other: Tensor, tolerance: Float) -> Bool {
        maxAbsDifference(other) <= tolerance
    }
}

/// The free `maxAbsDifference(_:_:)` under another name: the method's name hides it inside `Tensor`.
private func maxAbsDifferenceOfElements(_ a: [Float], _ b: [Float]) -> Float { maxAbsDifference(a, b) }
