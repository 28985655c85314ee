import Foundation
import XCTest
import Formats

final class JSONValueTests: XCTestCase {
    private func decode(_ text: String) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    /// A coding-path element, as a decoder reports one.
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int?
        init(stringValue: String) { self.stringValue = stringValue }
        init(intValue: Int) { self.stringValue = "Index \(intValue)"; self.intValue = intValue }
        init(_ name: String) { self.init(stringValue: name) }
    }

    // MARK: - Decoding

    func testDecodeKeepsIntegersApartFromOtherNumbers() throws {
        XCTAssertEqual(try decode("[3, -7, 2.5, 1e30, 1E2, 100000000000000000000]"),
                       .array([.integer(3), .integer(-7), .number(2.5), .number(1e30), .integer(100), .number(1e20)]))
        XCTAssertEqual(try decode("[true, false, null, \"12\"]"),
                       .array([.bool(true), .bool(false), .null, .string("12")]))
        // A number that fits neither Int nor Double does not decode.
        XCTAssertThrowsError(try decode("[1e400]"))
    }

    func testDecodeNested() throws {
        let value = try decode(#"{"a": {"b": [1, {"c": "d"}], "e": []}, "f": {}}"#)
        XCTAssertEqual(value, .object([
            "a": .object(["b": .array([.integer(1), .object(["c": .string("d")])]), "e": .array([])]),
            "f": .object([:]),
        ]))
        XCTAssertEqual(value.object?["a"]?.object?["b"]?.array?.first?.integer, 1)
        XCTAssertEqual(value.object?["a"]?.object?["b"]?.array?.last?.object?["c"]?.string, "d")
        XCTAssertNil(value.object?["f"]?.array)
        XCTAssertEqual(try decode("[true, null]").array?.map(\.bool), [true, nil])
        XCTAssertEqual(try decode("[true, null]").array?.map(\.isNull), [false, true])
    }

    // MARK: - at(path:)

    func testAtPathFollowsMembersAndIndices() throws {
        let value = try decode(#"{"layers": [{"kept_heads": [0, 3]}, {"kept_heads": []}], "n": 1}"#)
        XCTAssertEqual(value.at(path: []), value)
        XCTAssertEqual(value.at(path: [Key("n")]), .integer(1))
        XCTAssertEqual(value.at(path: [Key("layers"), Key(intValue: 0), Key("kept_heads"), Key(intValue: 1)]), .integer(3))
        XCTAssertEqual(value.at(path: [Key("layers"), Key(intValue: 1), Key("kept_heads")]), .array([]))
        XCTAssertNil(value.at(path: [Key("missing")]))
        XCTAssertNil(value.at(path: [Key("layers"), Key(intValue: 2)]), "index out of range")
        XCTAssertNil(value.at(path: [Key("layers"), Key("kept_heads")]), "a name into an array")
        XCTAssertNil(value.at(path: [Key("n"), Key("x")]), "a step into a scalar")
    }

    // MARK: - Messages

    func testKindAndSummary() {
        let values: [JSONValue] = [.null, .bool(true), .integer(3), .number(2.5), .number(1e30), .string("12"),
                                   .array([.integer(1)]), .object(["a": .null])]
        XCTAssertEqual(values.map(\.kind), ["null", "a boolean", "a number", "a number", "a number", "a string",
                                            "an array", "an object"])
        XCTAssertEqual(values.map(\.summary), [
            "null", "a boolean (true)", "an integer (3)", "a non-integer number (2.5)",
            "a number too large for an integer (1e+30)", "a string (\"12\")", "an array", "an object",
        ])
    }

    func testDescribeType() {
        XCTAssertEqual(JSONValue.describe(Int.self), "an integer")
        XCTAssertEqual(JSONValue.describe(Double.self), "a number")
        XCTAssertEqual(JSONValue.describe(String.self), "a string")
        XCTAssertEqual(JSONValue.describe(Bool.self), "a boolean")
        XCTAssertEqual(JSONValue.describe([Int].self), "an array of integers")
        XCTAssertEqual(JSONValue.describe([String].self), "an array")
        XCTAssertEqual(JSONValue.describe([[Int]].self), "an array")
        XCTAssertEqual(JSONValue.describe([String: String].self), "an object")
        XCTAssertEqual(JSONValue.describe([String: Int].self), "an object")
        XCTAssertEqual(JSONValue.describe(Any.self), "a value of the right type")
        XCTAssertEqual(JSONValue.describe(Float.self, otherwise: "a value of type Float"), "a value of type Float")
        XCTAssertEqual(JSONValue.describe(Int.self, otherwise: "unused"), "an integer")
    }

    // MARK: - Writers

    func testTextIsOneLineJSONWithSortedKeys() throws {
        let value = try decode(#"{"shape": [2, 2.5, "x\"y"], "b": {"z": null, "a": true}, "e": [], "o": {}}"#)
        let text = value.text
        XCTAssertEqual(text, #"{"b": {"a": true, "z": null}, "e": [], "o": {}, "shape": [2, 2.5, "x\"y"]}"#)
        XCTAssertEqual(try decode(text), value, "the text form is JSON and reads back as the same value")
        XCTAssertEqual(JSONValue.number(0.1).text, "0.1")
        XCTAssertEqual(JSONValue.number(1e-12).text, "1e-12")
        XCTAssertEqual(JSONValue.integer(-4).text, "-4")
    }

    func testPrettyTextLayout() throws {
        let value = JSONValue.object([
            "vocab_size": .integer(30522),
            "layer_norm_eps": .number(1e-12),
            "architectures": .array([.string("BertModel")]),
            "empty_array": .array([]),
            "empty_object": .object([:]),
            "cofi": .object([
                "kept_hidden_indices": .array([.integer(0), .integer(1), .integer(5)]),
                "layers": .array([
                    .object(["kept_heads": .array([.integer(0), .integer(3)]), "num_heads": .integer(2)]),
                    .object([:]),
                ]),
                "sparsity": .number(0.7773942420681551),
                "source": .object(["note": .string("a \"note\"\n"), "target_sparsity": .number(0.5)]),
            ]),
            "id2label": .object(["1": .string("positive"), "0": .string("negative")]),
            "classifier_dropout": .null,
            "flag": .bool(false),
        ])
        let expected = """
            {
              "architectures": ["BertModel"],
              "classifier_dropout": null,
              "cofi": {
                "kept_hidden_indices": [0, 1, 5],
                "layers": [
                  {
                    "kept_heads": [0, 3],
                    "num_heads": 2
                  },
                  {}
                ],
                "source": {
                  "note": "a \\"note\\"\\n",
                  "target_sparsity": 0.5
                },
                "sparsity": 0.7773942420681551
              },
              "empty_array": [],
              "empty_object": {},
              "flag": false,
              "id2label": {
                "0": "negative",
                "1": "positive"
              },
              "layer_norm_eps": 1e-12,
              "vocab_size": 30522
            }
            """
        XCTAssertEqual(value.prettyText, expected)
        XCTAssertEqual(try decode(value.prettyText), value, "the pretty form is JSON and reads back as the same value")
        XCTAssertEqual(JSONValue.array([.array([])]).prettyText, "[\n  []\n]", "an array holding an array is one element per line")
        XCTAssertEqual(JSONValue.string("/").prettyText, #""/""#)
    }
}
