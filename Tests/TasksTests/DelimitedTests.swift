import Foundation
import XCTest
@testable import Tasks

extension XCTestCase {
    /// A fresh temporary directory for the data tests, removed when the test ends.
    func dataScratchDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("cofi-tasks-tests-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }
}

/// Writes scratch files for the data tests.
enum DataTestFiles {
    @discardableResult
    static func write(_ text: String, _ name: String, in dir: URL) throws -> URL {
        try write(Array(text.utf8), name, in: dir)
    }

    @discardableResult
    static func write(_ bytes: [UInt8], _ name: String, in dir: URL) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url)
        return url
    }
}

/// Asserts that `body` throws a `DataError` whose description contains every one of `fragments`; returns it.
@discardableResult
func assertDataError<T>(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line,
                        _ body: () throws -> T) -> DataError? {
    do {
        _ = try body()
        XCTFail("expected a DataError containing \(fragments)", file: file, line: line)
    } catch let error as DataError {
        for f in fragments {
            XCTAssertTrue(error.description.contains(f), "\"\(error)\" lacks \"\(f)\"", file: file, line: line)
        }
        return error
    } catch {
        XCTFail("expected a DataError, got \(error)", file: file, line: line)
    }
    return nil
}

final class DelimitedTests: XCTestCase {
    func parse(_ text: String, _ format: DelimitedFormat) throws -> DelimitedFile {
        try DelimitedFile.parse(Array(text.utf8), name: "t.txt", format: format)
    }

    func testCSVQuotingPerRFC4180() throws {
        let text = "a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",plain\r\n\"multi\nline\",,\"\"\r\nlast,\"q\",\"end\""
        let f = try parse(text, .csv)
        XCTAssertEqual(f.records.map(\.fields), [
            ["a", "b", "c"], ["x, y", "say \"hi\"", "plain"], ["multi\nline", "", ""], ["last", "q", "end"]])
        XCTAssertEqual(f.records.map(\.line), [1, 2, 3, 5], "a quoted line break moves later records down a line")
    }

    func testQuoteInsideUnquotedCSVFieldIsLiteral() throws {
        XCTAssertEqual(try parse("5\" screen,x\n", .csv).records[0].fields, ["5\" screen", "x"])
    }

    func testGLUETSVTakesQuotesLiterally() throws {
        let text = "\"Hello,\" she said\t1\nan unbalanced \" quote\t0\n\"\"\t1\n"
        let f = try parse(text, .glueTSV)
        XCTAssertEqual(f.records.map(\.fields), [["\"Hello,\" she said", "1"], ["an unbalanced \" quote", "0"],
                                                 ["\"\"", "1"]])
    }

    func testQuotedTSV() throws {
        XCTAssertEqual(try parse("\"a\tb\"\tc\n", .quotedTSV).records[0].fields, ["a\tb", "c"])
    }

    func testLineEndsBOMAndTrailingBlankLines() throws {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("h1\th2\r\nx\ty\rz\tw\nu\tv\r\n\r\n\n".utf8)
        let f = try DelimitedFile.parse(bytes, name: "t.tsv", format: .glueTSV)
        XCTAssertEqual(f.records.map(\.fields), [["h1", "h2"], ["x", "y"], ["z", "w"], ["u", "v"]],
                       "BOM dropped, CRLF / CR / LF all end a line, blank lines at the end dropped")
        XCTAssertEqual(f.records.map(\.line), [1, 2, 3, 4])
    }

    func testNoTrailingNewlineAndEmptyFields() throws {
        XCTAssertEqual(try parse("a\t\tb\t", .glueTSV).records.map(\.fields), [["a", "", "b", ""]])
        XCTAssertEqual(try parse("a,b,", .csv).records.map(\.fields), [["a", "b", ""]])
    }

    func testBlankLineInTheMiddleIsKeptForTheReader() throws {
        let f = try parse("a\tb\n\nc\td\n", .glueTSV)
        XCTAssertEqual(f.records.map(\.fields), [["a", "b"], [], ["c", "d"]])
        XCTAssertEqual(f.records.map(\.line), [1, 2, 3])
    }

    func testEmptyFileHasNoRecords() throws {
        XCTAssertTrue(try parse("", .csv).records.isEmpty)
        XCTAssertTrue(try DelimitedFile.parse([0xEF, 0xBB, 0xBF, 0x0A], name: "t", format: .csv).records.isEmpty)
    }

    func testUnterminatedQuoteNamesTheLineWhereItOpened() {
        assertDataError(["t.txt:2:", "column 2", "unterminated quoted field"]) {
            try parse("a,b\nc,\"open\nd,e\nf,g\n", .csv)
        }
    }

    func testTextAfterClosingQuoteIsARecordError() throws {
        let f = try parse("a,b\n\"x\"y,z\nok,1\n", .csv)
        XCTAssertEqual(f.records.count, 3)
        let e = try XCTUnwrap(f.records[1].error)
        XCTAssertEqual(e.line, 2)
        XCTAssertTrue(e.description.contains("after a closing quote"), "\(e)")
        XCTAssertEqual(f.records[2].fields, ["ok", "1"], "the next line still parses")
    }

    func testInvalidUTF8IsReportedWithLineAndColumn() throws {
        let bytes = Array("a\tb\nfine\tca".utf8) + [0xC3, 0x28] + Array("fé\n".utf8)
        let f = try DelimitedFile.parse(bytes, name: "t.tsv", format: .glueTSV)
        let e = try XCTUnwrap(f.records[1].error)
        XCTAssertEqual(e.line, 2)
        XCTAssertEqual(e.column, "2")
        XCTAssertTrue(e.description.contains("invalid UTF-8 (byte 0xC3 at byte 2"), "\(e)")
    }

    func testReadsFromDiskAndNamesMissingFile() throws {
        let dir = try dataScratchDirectory()
        let url = try DataTestFiles.write("x,y\n1,2\n", "a.csv", in: dir)
        XCTAssertEqual(try DelimitedFile.read(url, format: .csv).records.count, 2)
        assertDataError(["nope.csv", "cannot read the file"]) {
            try DelimitedFile.read(dir.appendingPathComponent("nope.csv"), format: .csv)
        }
    }
}
