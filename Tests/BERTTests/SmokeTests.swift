import XCTest
@testable import BERT
final class BERTSmokeTests: XCTestCase { func testBuilds() { XCTAssertEqual(Tensor(zeros: [2, 3]).count, 6) } }
