import XCTest
import Formats

final class FileFormatErrorTests: XCTestCase {
    func testDescriptionIsPathColonMessage() {
        let error = FileFormatError(path: "/m/config.json", key: "hidden_size", message: "key 'hidden_size' = 0 must be positive")
        XCTAssertEqual(error.description, "/m/config.json: key 'hidden_size' = 0 must be positive")
        XCTAssertEqual("\(error)", error.description)
        XCTAssertEqual(error.key, "hidden_size")
        XCTAssertNil(FileFormatError(path: "m.safetensors", message: "cannot open").key)
        XCTAssertEqual(FileFormatError(path: "m.safetensors", message: "cannot open").description, "m.safetensors: cannot open")
    }

    func testEquality() {
        let a = FileFormatError(path: "p", key: "k", message: "m")
        XCTAssertEqual(a, FileFormatError(path: "p", key: "k", message: "m"))
        XCTAssertNotEqual(a, FileFormatError(path: "p", message: "m"))
        XCTAssertNotEqual(a, FileFormatError(path: "p", key: "k", message: "n"))
        XCTAssertNotEqual(a, FileFormatError(path: "q", key: "k", message: "m"))
    }
}
