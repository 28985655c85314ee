import Foundation
import XCTest
@testable import Tasks

/// Every GLUE task read from small files written here in the official `glue_data/` layouts, including the quirks
/// of real files: quotes inside TSV fields, CRLF line ends, no final newline, a byte order mark, blank lines at the end.
final class GLUETests: XCTestCase {
    typealias Row = (a: String, b: String?, label: Label?)

    func check(_ task: GLUETask, _ split: GLUESplit, _ text: String, bom: Bool = false, _ expected: [Row],
               file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try dataScratchDirectory()
        let bytes = (bom ? [0xEF, 0xBB, 0xBF] : []) + Array(text.utf8)
        try DataTestFiles.write(bytes, "glue_data/\(task.directoryName)/\(task.fileName(split))", in: dir)
        // Both the task folder and glue_data itself are accepted.
        let ds = try task.read(split, from: dir.appendingPathComponent("glue_data"))
        let again = try task.read(split, from: dir.appendingPathComponent("glue_data/\(task.directoryName)"))
        XCTAssertEqual(ds.examples, again.examples, file: file, line: line)
        XCTAssertEqual(ds.name, task.rawValue, file: file, line: line)
        XCTAssertEqual(ds.kind, task.kind, file: file, line: line)
        XCTAssertEqual(ds.metrics, task.metrics, file: file, line: line)
        XCTAssertEqual(ds.examples.count, expected.count, "\(task) \(split)", file: file, line: line)
        for (e, x) in zip(ds.examples, expected) {
            XCTAssertEqual(e.textA, x.a, "\(task) \(split)", file: file, line: line)
            XCTAssertEqual(e.textB, x.b, "\(task) \(split)", file: file, line: line)
            XCTAssertEqual(e.label, x.label, "\(task) \(split)", file: file, line: line)
        }
        XCTAssertEqual(ds.isLabeled, split != .test, file: file, line: line)
        XCTAssertEqual(ds.skipped.count, 0, file: file, line: line)
    }

    func testCoLA() throws {
        // No header, 4 columns; the marker column is empty for acceptable sentences. CRLF, no final newline.
        try check(.cola, .train, "gj04\t1\t\tOur friends won't buy this analysis, let alone the next one we propose.\r\n" +
                  "gj04\t0\t*\tThey drank the pub.\r\ncj99\t1\t\tHe said \"so\" twice.", [
                      ("Our friends won't buy this analysis, let alone the next one we propose.", nil, .classification(1)),
                      ("They drank the pub.", nil, .classification(0)),
                      ("He said \"so\" twice.", nil, .classification(1))])
        try check(.cola, .dev, "gj04\t0\t*\tThe more we study verbs, the crazier they get get.\n\n\n",
                  [("The more we study verbs, the crazier they get get.", nil, .classification(0))])
        try check(.cola, .test, "index\tsentence\n0\tBill whistled past the house.\n1\tThe car honked its way down the road.\n",
                  [("Bill whistled past the house.", nil, nil), ("The car honked its way down the road.", nil, nil)])
        XCTAssertEqual(GLUETask.cola.kind.labelNames, ["unacceptable", "acceptable"])
    }

    func testSST2() throws {
        // Real SST-2 sentences end with a space; it is kept (tokenizers strip it, readers must not decide that).
        try check(.sst2, .train, "sentence\tlabel\nhide new secretions from the parental units \t0\n" +
                  "the greatest musicians \t1\n\"a \"\"funny\"\" movie \t1\n", bom: true, [
                      ("hide new secretions from the parental units ", nil, .classification(0)),
                      ("the greatest musicians ", nil, .classification(1)),
                      ("\"a \"\"funny\"\" movie ", nil, .classification(1))])
        try check(.sst2, .test, "index\tsentence\r\n0\tuneasy mishmash of styles and genres .\r\n",
                  [("uneasy mishmash of styles and genres .", nil, nil)])
        XCTAssertEqual(GLUETask.sst2.kind.labelNames, ["negative", "positive"])
    }

    func testMRPC() throws {
        let header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
        let a = "Amrozi accused his brother , whom he called \" the witness \" , of deliberately distorting his evidence ."
        let b = "Referring to him as only \" the witness \" , Amrozi accused his brother of deliberately distorting his evidence ."
        try check(.mrpc, .train, header + "1\t702876\t702977\t\(a)\t\(b)\n0\t2108705\t2108831\tYucaipa owned Dominick 's .\tYucaipa bought Dominick 's .\n", [
            (a, b, .classification(1)), ("Yucaipa owned Dominick 's .", "Yucaipa bought Dominick 's .", .classification(0))])
        try check(.mrpc, .test, "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t1089874\t1089925\tPCCW 's chief .\tCurrent Chief .",
                  [("PCCW 's chief .", "Current Chief .", nil)])
        XCTAssertEqual(GLUETask.mrpc.kind.labelNames, ["not_equivalent", "equivalent"])
    }

    func testSTSB() throws {
        let header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
        try check(.stsb, .train, header + "\tscore\r\n0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\tAn air plane is taking off.\t5.000\r\n" +
                  "1\tmain-captions\tMSRvid\t2012test\t0004\tnone\tnone\tA man is playing a large flute.\tA man is playing a flute.\t3.800\r\n", [
                      ("A plane is taking off.", "An air plane is taking off.", .regression(5)),
                      ("A man is playing a large flute.", "A man is playing a flute.", .regression(3.8))])
        try check(.stsb, .test, header + "\n0\tmain-forums\tanswers-forums\t2015\t0001\tnone\tnone\tWhat is it?\tWhat's that?\n",
                  [("What is it?", "What's that?", nil)])
        XCTAssertEqual(GLUETask.stsb.kind, .regression)
        XCTAssertEqual(GLUETask.stsb.kind.outputCount, 1)
    }

    func testQQP() throws {
        try check(.qqp, .dev, "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n" +
                  "133273\t213221\t213222\tHow is the life of a math student? Could you describe your own experiences?\tWhich level of prepration is enough for the exam jlpt5?\t0\n" +
                  "402555\t536040\t536041\tHow do I control my horny emotions?\tHow do you control your horniness?\t1\n", [
                      ("How is the life of a math student? Could you describe your own experiences?",
                       "Which level of prepration is enough for the exam jlpt5?", .classification(0)),
                      ("How do I control my horny emotions?", "How do you control your horniness?", .classification(1))])
        try check(.qqp, .test, "id\tquestion1\tquestion2\n0\tWould the idea of Trump and Putin in bed together scare you?\tDo you think that if Donald Trump were elected President?\n",
                  [("Would the idea of Trump and Putin in bed together scare you?",
                    "Do you think that if Donald Trump were elected President?", nil)])
        XCTAssertEqual(GLUETask.qqp.kind.labelNames, ["not_duplicate", "duplicate"])
    }

    static let mnliCommon = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2"

    func testMNLIMatchedAndMismatched() throws {
        let train = Self.mnliCommon + "\tlabel1\tgold_label\n" +
            "0\t31193\t31193n\tgovernment\t( ( Conceptually ( cream skimming ) ) ( ( has ( ( ( two ( basic dimensions ) ) - ) ( ( product and ) geography ) ) ) . ) )\t( ( ( Product and ) geography ) ( ( are ( what ( make ( cream ( skimming work ) ) ) ) ) . ) )\t(ROOT (S (NP (JJ Conceptually) (NN cream) (NN skimming))))\t(ROOT (S (NP (NN Product))))\tConceptually cream skimming has two basic dimensions - product and geography.\tProduct and geography are what make cream skimming work. \tneutral\tneutral\n" +
            "1\t101457\t101457e\ttelephone\t( you ( ( know ( during ( the season ) ) ) ) )\t( ( You ( ( lose ( the things ) ) ) ) )\t(ROOT (S))\t(ROOT (S))\tyou know during the season and i guess at at your level uh you lose them to the next level\tYou lose the things to the following level if the people recall.\tentailment\tentailment\n"
        try check(.mnli, .train, train, [
            ("Conceptually cream skimming has two basic dimensions - product and geography.",
             "Product and geography are what make cream skimming work. ", .classification(1)),
            ("you know during the season and i guess at at your level uh you lose them to the next level",
             "You lose the things to the following level if the people recall.", .classification(0))])
        try check(.mnliMismatched, .train, train, [
            ("Conceptually cream skimming has two basic dimensions - product and geography.",
             "Product and geography are what make cream skimming work. ", .classification(1)),
            ("you know during the season and i guess at at your level uh you lose them to the next level",
             "You lose the things to the following level if the people recall.", .classification(0))])
        let dev = Self.mnliCommon + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n" +
            "0\t63735\t63735n\tslate\t( ( The ( new rights ) ) )\t( ( Everyone ) )\t(ROOT)\t(ROOT)\tThe new rights are nice enough\tEveryone really likes the newest benefits \tneutral\tentailment\tneutral\tneutral\tneutral\tneutral\n" +
            "1\t91383\t91383c\tslate\t( This ( site ) )\t( ( The ( Government ) ) )\t(ROOT)\t(ROOT)\tThis site includes a list of all award winners\tThe Government Executive articles housed on the website are not able to be searched.\tcontradiction\tcontradiction\tcontradiction\tcontradiction\tcontradiction\tcontradiction"
        let devRows: [Row] = [("The new rights are nice enough", "Everyone really likes the newest benefits ", .classification(1)),
                              ("This site includes a list of all award winners",
                               "The Government Executive articles housed on the website are not able to be searched.", .classification(2))]
        try check(.mnli, .dev, dev, devRows)
        try check(.mnliMismatched, .dev, dev, devRows)
        XCTAssertEqual(GLUETask.mnli.fileName(.dev), "dev_matched.tsv")
        XCTAssertEqual(GLUETask.mnliMismatched.fileName(.dev), "dev_mismatched.tsv")
        XCTAssertEqual(GLUETask.mnliMismatched.fileName(.test), "test_mismatched.tsv")
        try check(.mnli, .test, Self.mnliCommon + "\n0\t31349\t31349n\tfiction\t(a)\t(b)\t(ROOT)\t(ROOT)\tWhat a day.\tIt was a day.\n",
                  [("What a day.", "It was a day.", nil)])
        XCTAssertEqual(GLUETask.mnli.kind.labelNames, ["entailment", "neutral", "contradiction"])
    }

    func testQNLI() throws {
        try check(.qnli, .train, "index\tquestion\tsentence\tlabel\n" +
                  "0\tWhen did the third Digimon series begin?\tUnlike the two seasons before it, Digimon Tamers takes a darker approach.\tnot_entailment\n" +
                  "1\tWhich missile batteries often have individual launchers?\tThe missile batteries often have launchers several kilometres apart.\tentailment\n", [
                      ("When did the third Digimon series begin?",
                       "Unlike the two seasons before it, Digimon Tamers takes a darker approach.", .classification(1)),
                      ("Which missile batteries often have individual launchers?",
                       "The missile batteries often have launchers several kilometres apart.", .classification(0))])
        try check(.qnli, .test, "index\tquestion\tsentence\n0\tWhat?\tThat.\n", [("What?", "That.", nil)])
    }

    func testRTEAndWNLI() throws {
        try check(.rte, .dev, "index\tsentence1\tsentence2\tlabel\r\n" +
                  "0\tDana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44.\tChristopher Reeve had an accident.\tnot_entailment\r\n" +
                  "1\tYet, we now are discovering that antibiotics are losing their effectiveness.\tBacteria is winning the war against antibiotics.\tentailment\r\n\r\n", [
                      ("Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44.",
                       "Christopher Reeve had an accident.", .classification(1)),
                      ("Yet, we now are discovering that antibiotics are losing their effectiveness.",
                       "Bacteria is winning the war against antibiotics.", .classification(0))])
        try check(.wnli, .train, "index\tsentence1\tsentence2\tlabel\n" +
                  "0\tI stuck a pin through a carrot. When I pulled the pin out, it left a hole.\tThe carrot has a hole.\t1\n", [
                      ("I stuck a pin through a carrot. When I pulled the pin out, it left a hole.", "The carrot has a hole.",
                       .classification(1))])
        try check(.rte, .test, "index\tsentence1\tsentence2\n0\tA.\tB.\n", [("A.", "B.", nil)])
        try check(.wnli, .test, "index\tsentence1\tsentence2\n0\tA.\tB.", [("A.", "B.", nil)])
        XCTAssertEqual(GLUETask.rte.kind.labelNames, ["entailment", "not_entailment"])
        XCTAssertEqual(GLUETask.wnli.kind.labelNames, ["not_entailment", "entailment"])
    }

    func testTaskNames() {
        XCTAssertEqual(GLUETask(name: "SST-2"), .sst2)
        XCTAssertEqual(GLUETask(name: "sts-b"), .stsb)
        XCTAssertEqual(GLUETask(name: "mnli_mismatched"), .mnliMismatched)
        XCTAssertEqual(GLUETask(name: "MNLI-MM"), .mnliMismatched)
        XCTAssertNil(GLUETask(name: "squad"))
        for t in GLUETask.allCases { XCTAssertEqual(GLUETask(name: t.rawValue), t) }
    }

    // MARK: bad input

    func read(_ task: GLUETask, _ split: GLUESplit, _ text: String, options: ReadOptions = ReadOptions()) throws -> TaskDataset {
        try task.parse(Array(text.utf8), name: "x/\(task.fileName(split))", split: split, options: options)
    }

    func testMissingAndExtraColumnsAreErrorsWithTheLine() {
        let header = "index\tsentence1\tsentence2\tlabel\n"
        assertDataError(["x/train.tsv:3:", "missing columns: expected 4 fields as in the header, found 3"]) {
            try read(.rte, .train, header + "0\ta\tb\tentailment\n1\ta\tentailment\n")
        }
        assertDataError(["x/train.tsv:2:", "extra columns: expected 4 fields as in the header, found 5"]) {
            try read(.rte, .train, header + "0\ta\tb\tentailment\textra\n")
        }
        assertDataError(["x/train.tsv:2:", "expected CoLA's 4 tab-separated columns", "found 3 fields"]) {
            try read(.cola, .train, "gj04\t1\t\tfine.\ngj04\t1\tragged\n")
        }
        assertDataError(["x/dev.tsv:2:", "empty line"]) {
            try read(.sst2, .dev, "sentence\tlabel\n\na\t1\n")
        }
    }

    func testHeaderThatDoesNotMatchTheTask() {
        // A QNLI file given as RTE.
        assertDataError(["x/train.tsv:1:", "does not match GLUE RTE train", "missing columns \"sentence1\", \"sentence2\"",
                         "found [\"index\", \"question\", \"sentence\", \"label\"]"]) {
            try read(.rte, .train, "index\tquestion\tsentence\tlabel\n0\tq\ts\tentailment\n")
        }
        // An SST-2 file given as CoLA: CoLA train has no header and 4 columns.
        assertDataError(["x/train.tsv:1:", "CoLA's 4 tab-separated columns"]) {
            try read(.cola, .train, "sentence\tlabel\nnice \t1\n")
        }
        // A test file read as train lacks the label column.
        assertDataError(["missing column \"label\""]) {
            try read(.sst2, .train, "index\tsentence\n0\tnice\n")
        }
        assertDataError(["missing column \"gold_label\""]) {
            try read(.mnli, .dev, Self.mnliCommon + "\n0\t1\t1n\tslate\t(a)\t(b)\t(R)\t(R)\tA.\tB.\n")
        }
    }

    func testLabelsOutsideTheLabelSet() {
        assertDataError(["x/train.tsv:3:", "column 2 (label)", "label \"2\" is not in the label set; expected one of 0, 1"]) {
            try read(.sst2, .train, "sentence\tlabel\ngood \t1\nodd \t2\n")
        }
        assertDataError(["x/dev_matched.tsv:2:", "column 16 (gold_label)", "\"-\"", "entailment, neutral, contradiction"]) {
            try read(.mnli, .dev, Self.mnliCommon + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n" +
                     "0\t1\t1n\tslate\t(a)\t(b)\t(R)\t(R)\tA.\tB.\tneutral\tentailment\tcontradiction\t-\t-\t-\n")
        }
        assertDataError(["x/train.tsv:1:", "column 2 (label)", "\"acceptable\""]) {
            try read(.cola, .train, "gj04\tacceptable\t\tA sentence.\n")
        }
        assertDataError(["label \"Entailment\""], { try read(.qnli, .train, "index\tquestion\tsentence\tlabel\n0\tq\ts\tEntailment\n") })
    }

    func testNonNumericRegressionLabels() {
        let header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
        assertDataError(["x/train.tsv:2:", "column 10 (score)", "expected a finite number", "\"high\""]) {
            try read(.stsb, .train, header + "0\tg\tf\t2012\t1\tnone\tnone\tA.\tB.\thigh\n")
        }
        assertDataError(["expected a finite number", "\"nan\""]) {
            try read(.stsb, .train, header + "0\tg\tf\t2012\t1\tnone\tnone\tA.\tB.\tnan\n")
        }
    }

    func testInvalidUTF8NamesLineAndColumn() {
        let bytes = Array("sentence\tlabel\nok \t1\nbad ".utf8) + [0xFF] + Array(" \t0\n".utf8)
        assertDataError(["x/train.tsv:3:", "column 1", "invalid UTF-8 (byte 0xFF at byte 4"]) {
            try GLUETask.sst2.parse(bytes, name: "x/train.tsv", split: .train)
        }
    }

    func testEmptyAndHeaderOnlyFiles() throws {
        assertDataError(["x/train.tsv", "empty file; expected the header [sentence\\tlabel]"]) {
            try read(.sst2, .train, "")
        }
        assertDataError(["empty file", "CoLA's 4-column rows"]) { try read(.cola, .train, "\n\n") }
        assertDataError(["no examples"]) { try read(.sst2, .train, "sentence\tlabel\n") }
        let dir = try dataScratchDirectory()
        assertDataError(["no such file", "SST-2/dev.tsv"]) { try GLUETask.sst2.read(.dev, from: dir) }
    }

    func testSkipBadRowsReportsCountAndFirstReasons() throws {
        let text = "sentence\tlabel\ngood \t1\nodd \t2\n\nragged\nbad \t0\textra\nfine \t0\n"
        assertDataError(["x/train.tsv:3:"]) { try read(.sst2, .train, text) }
        let ds = try read(.sst2, .train, text, options: ReadOptions(skipBadRows: true, reportLimit: 3))
        XCTAssertEqual(ds.examples.map(\.textA), ["good ", "fine "])
        XCTAssertEqual(ds.examples.map(\.source.line), [2, 7])
        XCTAssertEqual(ds.skipped.count, 4)
        XCTAssertEqual(ds.skipped.firstReasons.map(\.line), [3, 4, 5])
        print(ds.skipped)
        // Problems with the file as a whole still throw.
        assertDataError(["does not match"]) {
            try read(.sst2, .train, "text\tlabel\na\t1\n", options: ReadOptions(skipBadRows: true))
        }
    }
}
