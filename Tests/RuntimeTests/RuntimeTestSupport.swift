import XCTest
@testable import Runtime
