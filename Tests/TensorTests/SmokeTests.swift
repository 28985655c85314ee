import XCTest
@testable import Tensor

final class SmokeTests: XCTestCase {
    func testRNGIsDeterministic() {
        var a = Xoshiro256(seed: 57), b = Xoshiro256(seed: 57)
        for _ in 0..<10 { XCTAssertEqual(a.next(), b.next()) }
    }
}
