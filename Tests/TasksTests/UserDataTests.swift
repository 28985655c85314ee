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

    /// A directory where a file is expected is named as one by every reader (Foundation would say
    /// "The operation could not be completed. (NSCocoaErrorDomain error 256.)").
    func testADirectoryGivenAsAFileIsNamedAsOne() throws {
        let dir = try dataScratchDirectory()
        func folder(_ name: String) throws -> URL {
            let url = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            return url
        }
        func check(_ what: String, _ url: URL, _ body: () throws -> Any) {
            do {
                _ = try body()
                XCTFail("\(what): expected an error")
            } catch {
                let text = "\(error)"
                XCTAssertTrue(text.contains(url.path + ": is a directory; expected"), "\(what): \(text)")
                XCTAssertFalse(text.contains("NSCocoaErrorDomain"), "\(what): \(text)")
            }
        }
        let csv = try folder("train.csv")
        check("UserData", csv) { try UserData.read(csv, spec: UserDataSpec()) }
        check("TaskSource", csv) { try TaskSource.files(train: csv, dev: csv, spec: UserDataSpec()).load(train: true) }
        check("DelimitedFile", csv) { try DelimitedFile.read(csv, format: .csv) }
        let glue = try folder("glue/SST-2/train.tsv")
        check("GLUE", glue) { try GLUETask.sst2.read(.train, from: dir.appendingPathComponent("glue")) }
        let squad = try folder("squad/dev-v1.1.json")
        check("SQuAD", squad) { try SQuADDataset.load(contentsOf: squad) }
        check("SQuADSource", squad) {
            try SQuADSource(version2: false, directory: dir.appendingPathComponent("squad")).load(train: false)
        }
        // The other way round: a file where GLUE's data folder is expected.
        let file = dir.appendingPathComponent("glue.tsv")
        try Data("sentence\tlabel\n".utf8).write(to: file)
        XCTAssertThrowsError(try TaskSource.named("sst2", data: file, assets: dir)) {
            XCTAssertEqual("\($0)", "\(file.path): is a file; expected GLUE's data folder (glue_data, or glue_data/SST-2) with --data")
        }
        let vocab = try folder("model/vocab.txt")
        check("vocab.txt", vocab) { try WordPieceTokenizer.load(directory: dir.appendingPathComponent("model")) }
        let tokenizerJSON = try folder("model2/tokenizer.json")
        check("tokenizer.json", tokenizerJSON) { try WordPieceTokenizer.load(directory: dir.appendingPathComponent("model2")) }
    }

    /// A number too large for a Double (`1e999`) is named as one, not as "an array or object".
    func testJSONLabelOutOfRange() {
        let spec = UserDataSpec(textColumn: "t", labelColumn: "y")
        let e = assertDataError(["d.jsonl:2:", "column \"y\"", "1e999", "out of range"]) {
            try parse("{\"t\": \"a\", \"y\": 1}\n{\"t\": \"b\", \"y\": 1e999}\n", "d.jsonl", spec)
        }
        XCTAssertFalse(e?.description.contains("array or object") ?? true, "\(String(describing: e))")
        assertDataError(["d.jsonl:1:", "column \"y\"", "-1E+400", "out of range"]) {
            try parse("{\"t\": \"a\", \"y\": -1E+400}\n", "d.jsonl",
                      UserDataSpec(textColumn: "t", labelColumn: "y", regression: true))
        }
        assertDataError(["d.jsonl:1:", "column \"t\"", "expected a string, found a number out of range (1e999)"]) {
            try parse("{\"t\": 1e999, \"y\": 1}\n", "d.jsonl", spec)
        }
        // Elsewhere in the line an out-of-range number is still the line's problem, named as such.
        assertDataError(["d.jsonl:1:", "column \"meta\"", "out of range"]) {
            try parse("{\"t\": \"a\", \"y\": 1, \"meta\": [1e999]}\n", "d.jsonl", spec)
        }
    }

    /// An inferred label set in which two labels differ only by surrounding whitespace is an error naming both
    /// lines (Hugging Face's run_glue would train one class per spelling); labels spelled the same way throughout,
    /// spaces and all, are kept as written, and a given label set is taken as given.
    func testLabelsThatDifferOnlyBySurroundingSpaces() throws {
        assertDataError(["t.csv:4:", "column 2 (label)", "\"pos \"", "\"pos\" (line 2)", "surrounding whitespace"]) {
            try parse("text,label\na,pos\nb,neg\nc,pos \n", "t.csv", UserDataSpec())
        }
        assertDataError(["t.jsonl:3:", "column \"label\"", "\" 1\"", "\"1\" (line 1)"]) {
            try parse("{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\", \"label\": 0}\n{\"text\": \"c\", \"label\": \" 1\"}\n",
                      "t.jsonl", UserDataSpec())
        }
        assertDataError(["t.tsv:3:", "\"neg\\t\"", "\"neg\" (line 2)"]) {
            try parse("text\tlabel\na\tneg\nb\t\"neg\t\"\n", "t.tsv", UserDataSpec(tsvQuoting: .rfc4180))
        }
        // Not bad rows to skip: the file's label set is ambiguous.
        assertDataError(["t.csv:3:", "surrounding whitespace"]) {
            try parse("text,label\na,x\nb,x \nc,y\n", "t.csv", UserDataSpec(), options: ReadOptions(skipBadRows: true))
        }
        let spaced = try parse("text,label\na,pos \nb,neg \n", "t.csv", UserDataSpec())
        XCTAssertEqual(spaced.labelNames, ["neg ", "pos "])
        let given = try parse("text,label\na,pos\nb,pos \n", "t.csv", UserDataSpec(labels: ["pos", "pos "]))
        XCTAssertEqual(given.examples.map(\.label), [.classification(0), .classification(1)])
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
