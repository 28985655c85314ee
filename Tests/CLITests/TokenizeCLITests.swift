import Foundation
import XCTest

/// `cofi tokenize`, run as a user runs it, with stdin piped in.
final class TokenizeCLITests: XCTestCase {
    /// Runs `cofi args…` with `input` on stdin; returns (exit status, stdout, stderr).
    func cofi(_ args: [String], input: String) throws -> (Int32, String, String) {
        try cofi(args, bytes: Data(input.utf8))
    }

    func cofi(_ args: [String], bytes input: Data) throws -> (Int32, String, String) {
        try runCofi(args, input: input)
    }

    func objects(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    func testTwoLinesSingleAndPair() throws {
        guard FileManager.default.fileExists(atPath: miniLM.appendingPathComponent("tokenizer.json").path) else {
            return XCTFail("\(miniLM.path)/tokenizer.json is missing: run `swift run cofi fetch` first")
        }
        let input = "Hello, world! Unaffable tokenization.\nIs it café?\tThe [CLS] answer.\r\n"
        let (status, out, err) = try cofi(["tokenize", "--model", miniLM.path, "--tokens"], input: input)
        XCTAssertEqual(status, 0, err)
        let lines = try objects(out)
        XCTAssertEqual(lines.count, 2)
        XCTAssertEqual(lines[0]["ids"] as? [Int], [101, 7592, 1010, 2088, 999, 14477, 20961, 3468, 19204, 3989, 1012, 102])
        XCTAssertEqual(lines[0]["type_ids"] as? [Int], Array(repeating: 0, count: 12))
        XCTAssertEqual(lines[0]["offsets"] as? [[Int]], [[0, 0], [0, 5], [5, 6], [7, 12], [12, 13], [14, 17], [17, 20],
                                                          [20, 23], [24, 29], [29, 36], [36, 37], [0, 0]])
        // BertTokenizerFast("Is it café?", "The [CLS] answer.", return_offsets_mapping=True)
        XCTAssertEqual(lines[1]["tokens"] as? [String],
                       ["[CLS]", "is", "it", "cafe", "?", "[SEP]", "the", "[CLS]", "answer", ".", "[SEP]"])
        XCTAssertEqual(lines[1]["ids"] as? [Int], [101, 2003, 2009, 7668, 1029, 102, 1996, 101, 3437, 1012, 102])
        XCTAssertEqual(lines[1]["type_ids"] as? [Int], [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
        XCTAssertEqual(lines[1]["offsets"] as? [[Int]], [[0, 0], [0, 2], [3, 5], [6, 10], [10, 11], [0, 0], [0, 3],
                                                          [4, 9], [10, 16], [16, 17], [0, 0]])
        XCTAssertNil(lines[1]["attention_mask"])
    }

    func testTruncationPaddingAndHFError() throws {
        guard FileManager.default.fileExists(atPath: miniLM.appendingPathComponent("tokenizer.json").path) else {
            return XCTFail("\(miniLM.path)/tokenizer.json is missing: run `swift run cofi fetch` first")
        }
        let (s1, out, err) = try cofi(["tokenize", "--model", miniLM.path, "--max-length", "8", "--pad",
                                       "--truncation", "only_first"], input: "a b c d e f\tg\nx\n")
        XCTAssertEqual(s1, 0, err)
        let lines = try objects(out)
        XCTAssertEqual(lines[0]["ids"] as? [Int], [101, 1037, 1038, 1039, 1040, 102, 1043, 102])
        XCTAssertEqual(lines[1]["ids"] as? [Int], [101, 1060, 102, 0, 0, 0, 0, 0])
        XCTAssertEqual(lines[1]["attention_mask"] as? [Int], [1, 1, 1, 0, 0, 0, 0, 0])
        XCTAssertEqual(lines[1]["offsets"] as? [[Int]], [[0, 0], [0, 1]] + Array(repeating: [0, 0], count: 6))
        // HF raises for an only_second truncation that cannot fit: so does the CLI, naming the line.
        let (s2, out2, err2) = try cofi(["tokenize", "--model", miniLM.path, "--max-length", "6", "--truncation",
                                         "only_second"], input: "ok\tfine\na b c d e f\tg\n")
        XCTAssertNotEqual(s2, 0)
        XCTAssertEqual(try objects(out2).count, 1, "the line before the error is printed")
        XCTAssertTrue(err2.contains("stdin line 2") && err2.contains("Sequence to truncate too short"), err2)
        let (s3, out3, err3) = try cofi(["tokenize", "--model", miniLM.path],
                                        bytes: Data("fine\n".utf8) + Data([0x63, 0x61, 0x66, 0xE9, 0x0A]))
        XCTAssertNotEqual(s3, 0)
        XCTAssertEqual(try objects(out3).count, 1)
        XCTAssertTrue(err3.contains("stdin line 2: not valid UTF-8"), err3)
    }

    func testModelWithoutTokenizerIsAClearError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-tokenize-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (status, _, err) = try cofi(["tokenize", "--model", dir.path], input: "hello\n")
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains(dir.path) && err.contains("vocab.txt") && err.contains("tokenizer.json"), err)
        let (s2, _, err2) = try cofi(["tokenize", "--model", dir.path, "--truncation", "middle"], input: "")
        XCTAssertNotEqual(s2, 0)
        XCTAssertTrue(err2.contains("longest_first, only_first, only_second, do_not_truncate"), err2)
    }
}
