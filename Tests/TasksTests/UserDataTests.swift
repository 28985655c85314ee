import Foundation
import XCTest
@testable import Tasks

/// The user's own CSV, TSV and JSON-lines files: named columns, inferred or given label sets, regression.
final class UserDataTests: XCTestCase {
    func parse(_ text: String, _ name: String, _ spec: UserDataSpec, options: ReadOptions = ReadOptions()) throws -> TaskDataset {
        try UserData.parse(Array(text.utf8), name: name, spec: spec, options: options)
    }

    func testCSVWithQuotingPairsAndInferredStringLabels() throws {
        let csv = "id,premise,hypothesis,label,notes\r\n" +
            "1,\"A man, a plan\",\"He said \"\"hi\"\"\",neutral,x\r\n" +
            "2,\"Two\nlines\",B,entailment,\r\n" +
            "3,C,D,contradiction,\"n, m\""
        let ds = try parse(csv, "data/train.csv", UserDataSpec(textColumn: "premise", pairColumn: "hypothesis"))
        XCTAssertEqual(ds.labelNames, ["contradiction", "entailment", "neutral"], "sorted by code points")
        XCTAssertEqual(ds.examples.map(\.textA), ["A man, a plan", "Two\nlines", "C"])
        XCTAssertEqual(ds.examples.map(\.textB), ["He said \"hi\"", "B", "D"])
        XCTAssertEqual(ds.examples.map(\.label), [.classification(2), .classification(1), .classification(0)])
        XCTAssertEqual(ds.examples.map(\.source.line), [2, 3, 5])
        XCTAssertEqual(ds.name, "train.csv")
        XCTAssertEqual(ds.metrics, .accuracy)
    }

    func testIntegerLabelsSortNumerically() throws {
        let ds = try parse("text,label\na,10\nb,2\nc,-1\nd,2\n", "t.csv", UserDataSpec())
        XCTAssertEqual(ds.labelNames, ["-1", "2", "10"])
        XCTAssertEqual(ds.examples.map { $0.label!.classIndex! }, [2, 1, 0, 1])
        XCTAssertEqual(UserData.inferLabelSet(["b", "B", "a", "é", "e"]), ["B", "a", "b", "e", "é"])
    }

    func testGivenLabelSetKeepsItsOrderAndRejectsOthers() throws {
        let spec = UserDataSpec(labels: ["pos", "neg"])
        let ds = try parse("text\tlabel\nfine\tneg\ngreat\tpos\n", "t.tsv", spec)
        XCTAssertEqual(ds.labelNames, ["pos", "neg"])
        XCTAssertEqual(ds.examples.map(\.label), [.classification(1), .classification(0)])
        assertDataError(["t.tsv:3:", "column 2 (label)", "label \"Neg\" is not in the label set; expected one of \"pos\", \"neg\""]) {
            try parse("text\tlabel\nfine\tneg\nbad\tNeg\n", "t.tsv", spec)
        }
    }

    func testTSVQuotesAreLiteralUnlessAsked() throws {
        let text = "text\tlabel\n\"quoted\ttab\"\t1\n"
        assertDataError(["t.tsv:2:", "extra columns"]) { try parse(text, "t.tsv", UserDataSpec()) }
        let ds = try parse(text, "t.tsv", UserDataSpec(tsvQuoting: .rfc4180))
        XCTAssertEqual(ds.examples[0].textA, "quoted\ttab")
        let literal = try parse("text\tlabel\n\"Hi,\" he said\t1\n", "t.tsv", UserDataSpec())
        XCTAssertEqual(literal.examples[0].textA, "\"Hi,\" he said")
    }

    func testRegression() throws {
        let ds = try parse("a,b,score\nx,y,4.5\nx,z, 0\nu,v,1e-1\n", "s.csv",
                           UserDataSpec(textColumn: "a", pairColumn: "b", labelColumn: "score", regression: true))
        XCTAssertEqual(ds.kind, .regression)
        XCTAssertEqual(ds.examples.map(\.label), [.regression(4.5), .regression(0), .regression(0.1)])
        XCTAssertEqual(ds.metrics.primaryName, "corr")
        assertDataError(["s.csv:3:", "column 3 (score)", "expected a finite number for a regression label, found \"high\""]) {
            try parse("a,b,score\nx,y,1\nx,z,high\n", "s.csv",
                      UserDataSpec(textColumn: "a", pairColumn: "b", labelColumn: "score", regression: true))
        }
    }

    func testJSONLines() throws {
        let text = "\u{FEFF}{\"sentence\": \"caf\u{E9} \\\"ok\\\"\", \"label\": 1, \"meta\": {\"k\": [1, 2]}}\r\n" +
            "{\"sentence\": \"bad\", \"label\": 0}\n" +
            "{\"label\": 1.0, \"sentence\": \"also\"}\n\n"
        let ds = try parse(text, "d.jsonl", UserDataSpec(textColumn: "sentence"))
        XCTAssertEqual(ds.labelNames, ["0", "1"], "1 and 1.0 are the same label")
        XCTAssertEqual(ds.examples.map(\.textA), ["caf\u{E9} \"ok\"", "bad", "also"])
        XCTAssertEqual(ds.examples.map(\.label), [.classification(1), .classification(0), .classification(1)])
        XCTAssertEqual(ds.examples.map(\.source.line), [1, 2, 3])

        let bools = try parse("{\"t\": \"a\", \"y\": true}\n{\"t\": \"b\", \"y\": false}\n", "b.jsonl",
                              UserDataSpec(textColumn: "t", labelColumn: "y"))
        XCTAssertEqual(bools.labelNames, ["false", "true"])

        let reg = try parse("{\"t\": \"a\", \"y\": 0.25}\n{\"t\": \"b\", \"y\": \"3\"}\n", "r.jsonl",
                            UserDataSpec(textColumn: "t", labelColumn: "y", regression: true))
        XCTAssertEqual(reg.examples.map(\.label), [.regression(0.25), .regression(3)])
    }

    func testUnlabeledFile() throws {
        let ds = try parse("text\nhello\n", "p.csv", UserDataSpec(labelColumn: nil))
        XCTAssertFalse(ds.isLabeled)
        XCTAssertNil(ds.examples[0].label)
    }

    func testTrainAndDevShareTheTrainingLabelSet() throws {
        let dir = try dataScratchDirectory()
        let train = try DataTestFiles.write("text,label\na,b\nc,d\n", "train.csv", in: dir)
        let dev = try DataTestFiles.write("{\"text\": \"x\", \"label\": \"d\"}\n", "dev.jsonl", in: dir)
        let (t, d) = try UserData.read(train: train, dev: dev, spec: UserDataSpec())
        XCTAssertEqual(t.labelNames, ["b", "d"])
        XCTAssertEqual(d?.labelNames, ["b", "d"])
        XCTAssertEqual(d?.examples.first?.label, .classification(1))
        let badDev = try DataTestFiles.write("text,label\nx,e\n", "dev2.csv", in: dir)
        assertDataError(["dev2.csv:2:", "label \"e\" is not in the label set"]) {
            try UserData.read(train: train, dev: badDev, spec: UserDataSpec())
        }
    }

    // MARK: bad input

    func testMissingColumnsInTheHeader() {
        assertDataError(["t.csv:1:", "missing column \"label\"", "found [\"text\", \"score\"]"]) {
            try parse("text,score\na,1\n", "t.csv", UserDataSpec())
        }
        assertDataError(["t.csv:1:", "\"text\" appear more than once"]) {
            try parse("text,text,label\na,b,1\n", "t.csv", UserDataSpec())
        }
    }

    func testRaggedRowsAndEmptyLabels() {
        assertDataError(["t.csv:3:", "missing columns: expected 3 fields as in the header, found 2"]) {
            try parse("text,label,extra\na,1,x\nb,1\n", "t.csv", UserDataSpec())
        }
        assertDataError(["t.csv:2:", "column 2 (label)", "empty label"]) {
            try parse("text,label\na,\n", "t.csv", UserDataSpec())
        }
    }

    func testJSONLinesBadInput() {
        let spec = UserDataSpec(textColumn: "t", labelColumn: "y")
        assertDataError(["d.jsonl:2:", "expected a JSON object on this line"]) {
            try parse("{\"t\": \"a\", \"y\": 1}\n{\"t\": \"a\", \"y\": \n", "d.jsonl", spec)
        }
        assertDataError(["d.jsonl:1:", "column \"t\"", "missing key; the object has \"text\", \"y\""]) {
            try parse("{\"text\": \"a\", \"y\": 1}\n", "d.jsonl", spec)
        }
        assertDataError(["d.jsonl:1:", "column \"t\"", "expected a string, found a number"]) {
            try parse("{\"t\": 5, \"y\": 1}\n", "d.jsonl", spec)
        }
        assertDataError(["d.jsonl:1:", "column \"y\"", "found null"]) {
            try parse("{\"t\": \"a\", \"y\": null}\n", "d.jsonl", spec)
        }
        assertDataError(["d.jsonl:2:", "empty line"]) {
            try parse("{\"t\": \"a\", \"y\": 1}\n\n{\"t\": \"a\", \"y\": 1}\n", "d.jsonl", spec)
        }
        assertDataError(["d.json:1:", "found a JSON array"]) {
            try parse("[{\"t\": \"a\", \"y\": 1}]\n", "d.json", spec)
        }
        assertDataError(["d.jsonl:1:", "invalid UTF-8 (byte 0xFE at byte 7"]) {
            try UserData.parse(Array("{\"t\": \"".utf8) + [0xFE] + Array("\", \"y\": 1}\n".utf8), name: "d.jsonl", spec: spec)
        }
    }

    func testInvalidUTF8EmptyFilesAndUnterminatedQuotes() {
        assertDataError(["t.csv:3:", "column 1", "invalid UTF-8"]) {
            try UserData.parse(Array("text,label\nok,1\n".utf8) + [0x80] + Array(",1\n".utf8), name: "t.csv", spec: UserDataSpec())
        }
        assertDataError(["t.csv", "empty file; expected a header line naming the columns \"text\", \"label\""]) {
            try parse("", "t.csv", UserDataSpec())
        }
        assertDataError(["t.jsonl", "empty file"]) { try parse("\n \n", "t.jsonl", UserDataSpec()) }
        assertDataError(["t.csv", "no examples"]) { try parse("text,label\r\n", "t.csv", UserDataSpec()) }
        assertDataError(["t.csv:3:", "column 1", "unterminated quoted field"]) {
            try parse("text,label\na,1\n\"never closed,1\nb,0\n", "t.csv", UserDataSpec())
        }
    }

    func testFormatFromExtension() throws {
        XCTAssertEqual(try UserFileFormat.infer(from: URL(fileURLWithPath: "a/b.TSV")), .tsv)
        XCTAssertEqual(try UserFileFormat.infer(from: URL(fileURLWithPath: "b.ndjson")), .jsonLines)
        assertDataError(["b.txt", "cannot tell the format from the extension \"txt\""]) {
            try UserFileFormat.infer(from: URL(fileURLWithPath: "b.txt"))
        }
        // An explicit format wins over the extension.
        let ds = try parse("text,label\na,1\n", "b.txt", UserDataSpec(format: .csv))
        XCTAssertEqual(ds.examples.count, 1)
    }

    func testSkipBadRows() throws {
        let text = "text,label\na,1\nb\nc,2\n\"d\"x,1\ne,\n"
        let ds = try parse(text, "t.csv", UserDataSpec(), options: ReadOptions(skipBadRows: true))
        XCTAssertEqual(ds.examples.map(\.textA), ["a", "c"])
        XCTAssertEqual(ds.labelNames, ["1", "2"])
        XCTAssertEqual(ds.skipped.count, 3)
        XCTAssertEqual(ds.skipped.firstReasons.map(\.line), [3, 5, 6])
        print(ds.skipped)
    }
}
