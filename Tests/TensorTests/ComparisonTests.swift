import XCTest
@testable import Tensor
import TestSupport

/// The tolerance comparisons: NaN and ±Inf on either side fail, even where both sides agree; finite values are
/// compared by their largest absolute difference; counts and shapes must agree.
final class ComparisonTests: XCTestCase {
    static let nonFinite: [Float] = [.nan, .infinity, -.infinity]

    func testFiniteValues() {
        XCTAssertEqual(maxAbsDifference([1, 2, 3] as [Float], [1, 2.5, 2] as [Float]), 1)
        XCTAssertEqual(maxAbsDifference([] as [Float], [] as [Float]), 0)
        XCTAssertEqual(maxAbsDifference([-1.5] as [Double], [1.5] as [Double]), 3)
        XCTAssertTrue(isClose([1, 2] as [Float], [1.05, 2] as [Float], tolerance: 0.1))
        XCTAssertFalse(isClose([1, 2] as [Float], [1.2, 2] as [Float], tolerance: 0.1))
        XCTAssertTrue(isClose(Float(1), 1.05, tolerance: 0.1))
        XCTAssertEqual(absDifference(Float(-2), 3), 5)
        XCTAssertEqual(maxError([0.5, 2, 1] as [Float]), 2)
        XCTAssertEqual(maxError([] as [Float]), 0)
        let a = Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]), b = Tensor(shape: [2, 2], scalars: [1, 2, 3, 4.5])
        XCTAssertEqual(a.maxAbsDifference(b), 0.5)
        XCTAssertTrue(a.isClose(to: b, tolerance: 0.5))
        XCTAssertFalse(a.isClose(to: b, tolerance: 0.4))
        XCTAssertEqual(Tensor(shape: [3], scalars: [1, -7, 2]).maxAbs, 7)
    }

    /// A NaN, +Inf or −Inf anywhere, on either side or on both, makes the difference NaN and nothing close — wherever
    /// it stands (first, middle, last: a `max` fold kept a leading NaN only).
    func testNonFiniteValuesOnEitherSideFail() {
        for v in Self.nonFinite {
            for position in 0..<3 {
                var bad: [Float] = [1, 2, 3]
                bad[position] = v
                let good: [Float] = [1, 2, 3]
                for (x, y, side) in [(bad, good, "left"), (good, bad, "right"), (bad, bad, "both")] {
                    let what = "\(v) at \(position) on the \(side)"
                    XCTAssertTrue(maxAbsDifference(x, y).isNaN, what)
                    XCTAssertFalse(isClose(x, y, tolerance: 1e30), what)
                    XCTAssertFalse(isClose(x, y, tolerance: .infinity), what)
                    let tx = Tensor(shape: [3], scalars: x), ty = Tensor(shape: [3], scalars: y)
                    XCTAssertTrue(tx.maxAbsDifference(ty).isNaN, what)
                    XCTAssertFalse(tx.isClose(to: ty, tolerance: 1e30), what)
                    // The way the tests use it: XCTAssertLessThanOrEqual(d, tol) fails for d = NaN.
                    XCTAssertFalse(maxAbsDifference(x, y) <= 1e30, what)
                }
                XCTAssertTrue(maxError(bad).isNaN, "maxError: \(v) at \(position)")
            }
            XCTAssertTrue(absDifference(v, 1).isNaN, "\(v)")
            XCTAssertTrue(absDifference(1, v).isNaN, "\(v)")
            XCTAssertTrue(absDifference(v, v).isNaN, "\(v) on both sides")
            XCTAssertFalse(isClose(v, v, tolerance: 1), "\(v) on both sides")
            XCTAssertTrue(maxAbsDifference([Double(v)], [0.0]).isNaN, "Double \(v)")
        }
        // Finite values whose difference overflows.
        XCTAssertTrue(maxAbsDifference([Float.greatestFiniteMagnitude], [-Float.greatestFiniteMagnitude]).isNaN)
        XCTAssertTrue(Tensor(shape: [3], scalars: [1, .nan, 2]).maxAbs.isNaN)
        // A running maximum through maxError keeps a NaN once seen.
        var worst: Float = 0
        for e: Float in [0.1, .nan, 0.2] { worst = maxError([worst, e]) }
        XCTAssertTrue(worst.isNaN)
    }

    /// The gradient check fails where a gradient is NaN (before, NaN > tolerance was false and the check passed).
    func testGradientCheckFailsOnNaNGradients() {
        let x = Variable(Tensor(shape: [3], scalars: [1, 2, 3]), requiresGrad: true)
        let c = Variable(Tensor(shape: [3], scalars: [1, .nan, 1]))
        let r = checkGradientsNumerically(inputs: [x]) { x * c }
        XCTAssertNotNil(r.failure)
        XCTAssertTrue(r.worstError.isNaN, "\(r.worstError)")
    }
}
