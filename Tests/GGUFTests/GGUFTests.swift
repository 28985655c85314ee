import Formats
import Foundation
@testable import GGUF
import Tensor
import XCTest

/// The GGUF reader against files written by the `gguf` Python package (scripts/reference/make_gguf_golden.py):
/// metadata of every value type, tensors of every dequantised type equal to the package's own dequantisation, and
/// every kind of damaged file refused with an error naming what is wrong.
final class GGUFTests: XCTestCase {
    static func fixture(_ name: String) -> URL {
        Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil)!
    }

    func testMetadataOfEveryTypeInBothVersions() throws {
        for (name, version, alignment) in [("types_v3.gguf", 3, 64), ("types_v2.gguf", 2, 32)] {
            let file = try GGUFFile(contentsOf: Self.fixture(name))
            XCTAssertEqual(file.version, version, name)
            XCTAssertEqual(file.alignment, alignment, name)
            XCTAssertEqual(file.dataOffset % alignment, 0, name)
            XCTAssertEqual(file["general.architecture"], .string("test"))
            XCTAssertEqual(file["t.uint8"], .uint8(255))
            XCTAssertEqual(file["t.int8"], .int8(-128))
            XCTAssertEqual(file["t.uint16"], .uint16(65535))
            XCTAssertEqual(file["t.int16"], .int16(-32768))
            XCTAssertEqual(file["t.uint32"], .uint32(4_294_967_295))
            XCTAssertEqual(file["t.int32"], .int32(-2_147_483_648))
            XCTAssertEqual(file["t.uint64"], .uint64(UInt64.max))
            XCTAssertEqual(file["t.int64"], .int64(Int64.min))
            XCTAssertEqual(file["t.float32"], .float32(0.1))
            XCTAssertEqual(file["t.float64"], .float64(-2.5e-300))
            XCTAssertEqual(file["t.true"], .bool(true))
            XCTAssertEqual(file["t.false"], .bool(false))
            XCTAssertEqual(file["t.string"], .string("héllo, 世界 😀"))
            XCTAssertEqual(file["t.array.int32"], .array(.int32, [.int32(1), .int32(-2), .int32(3)]))
            XCTAssertEqual(file["t.array.float32"], .array(.float32, [.float32(0.5), .float32(-1.25)]))
            XCTAssertEqual(file["t.array.string"], .array(.string, [.string("a"), .string(""), .string("Ġthe")]))
            XCTAssertEqual(file["t.array.bool"], .array(.bool, [.bool(true), .bool(false)]))
            XCTAssertEqual(file["t.array.nested"], .array(.array, [.array(.string, [.string("x"), .string("y")]),
                                                                   .array(.string, [.string("z")])]))
            XCTAssertNil(file["absent"])
            XCTAssertEqual(file["t.uint64"]?.int, nil, "UInt64.max does not fit an Int")
            XCTAssertEqual(file["t.int16"]?.int, -32768)
            XCTAssertEqual(file.metadata.count, 20 - (version == 2 ? 1 : 0), "general.alignment only in v3")
        }
    }

    func testEveryTypeDequantizesAsTheGGUFPackageDoes() throws {
        let expected = try SafetensorsFile(contentsOf: Self.fixture("types_expected.safetensors"))
        for name in ["types_v3.gguf", "types_v2.gguf"] {
            let file = try GGUFFile(contentsOf: Self.fixture(name))
            XCTAssertEqual(file.tensors.map(\.name), ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q8_0.3d"])
            XCTAssertEqual(file.tensors.map(\.type), [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q8_0])
            XCTAssertEqual(try file.info("q8_0.3d").dimensions, [32, 3, 2])
            for info in file.tensors {
                let got = try file.tensor(info.name), want = try expected.tensor(info.name)
                XCTAssertEqual(got.shape, want.shape, info.name)
                let diff = got.maxAbsDifference(want)
                print("\(name) \(info.name) (\(info.type.name)): max |Δ| = \(diff) over \(got.scalars.count) values")
                XCTAssertEqual(diff, 0, "\(name) \(info.name)")
            }
            let rows = try file.rows([2, 0], of: "q4_1")
            let full = try expected.tensor("q4_1")
            XCTAssertEqual(rows.scalars, Array(full.scalars[128..<192]) + Array(full.scalars[0..<64]))
        }
    }

    /// Q4_K and Q6_K blocks of random bytes (finite scales), several blocks per row, as the package dequantises them.
    func testKQuantsDequantizeAsTheGGUFPackageDoes() throws {
        let file = try GGUFFile(contentsOf: Self.fixture("kquants.gguf"))
        let expected = try SafetensorsFile(contentsOf: Self.fixture("kquants_expected.safetensors"))
        XCTAssertEqual(file.tensors.map(\.type), [.q4_K, .q6_K])
        for info in file.tensors {
            let got = try file.tensor(info.name), want = try expected.tensor(info.name)
            XCTAssertEqual(got.shape, want.shape, info.name)
            let diff = got.maxAbsDifference(want)
            print("kquants.gguf \(info.name) (\(info.type.name)): max |Δ| = \(diff) over \(got.scalars.count) values")
            XCTAssertEqual(diff, 0, info.name)
        }
        XCTAssertEqual(try file.rows([1], of: "q6_k").scalars, Array(try expected.tensor("q6_k").scalars[512...]))
    }

    // MARK: - Damaged files

    /// The bytes of types_v3.gguf with `edit` applied, written to a temporary file, must fail to open with an error
    /// whose text contains every one of `expected`.
    func assertRefused(_ expected: [String], file: StaticString = #filePath, line: UInt = #line,
                       _ edit: (inout [UInt8]) -> Void) throws {
        var bytes = [UInt8](try Data(contentsOf: Self.fixture("types_v3.gguf")))
        edit(&bytes)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-gguf-\(UUID().uuidString).gguf")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        XCTAssertThrowsError(try GGUFFile(contentsOf: url), file: file, line: line) { error in
            guard let e = error as? FileFormatError else { return XCTFail("\(error) is not a FileFormatError", file: file, line: line) }
            XCTAssertEqual(e.path, url.path, file: file, line: line)
            for text in expected { XCTAssertTrue(e.description.contains(text), "\(e) lacks '\(text)'", file: file, line: line) }
        }
    }

    /// `bytes` in a new temporary file (removed when the test process ends: the OS temp directory).
    static func write(_ bytes: [UInt8]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-gguf-\(UUID().uuidString).gguf")
        try Data(bytes).write(to: url)
        return url
    }

    static func put<T: FixedWidthInteger>(_ value: T, at offset: Int, in bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(offset..<(offset + MemoryLayout<T>.size), with: $0) }
    }

    /// Offsets in types_v3.gguf: header 0–24; "general.architecture" (20 bytes) has its length at 24, type at 52 and
    /// the string "test" at 56 (length) / 64; "general.alignment" has its length at 68, type at 93, value at 97;
    /// then "t.uint8" (7 bytes): length 101, type 116.
    func testDamagedHeadersAreRefusedWithTheirReason() throws {
        try assertRefused(["not a GGUF file", "expected \"GGUF\""]) { $0[0] = UInt8(ascii: "X") }
        try assertRefused(["GGUF version 1", "version 1, with 32-bit counts"]) { Self.put(UInt32(1), at: 4, in: &$0) }
        try assertRefused(["big-endian"]) { Self.put(UInt32(3).byteSwapped, at: 4, in: &$0) }
        try assertRefused(["the tensor count", "more than the"]) { Self.put(UInt64(1) << 60, at: 8, in: &$0) }
        try assertRefused(["the metadata count", "more than the"]) { Self.put(UInt64.max, at: 16, in: &$0) }
        try assertRefused(["the length of the key of metadata entry 0", "more than the"]) { Self.put(UInt64(1) << 40, at: 24, in: &$0) }
        try assertRefused(["the value type of 'general.architecture'", "is 13, expected a GGUF value type"]) {
            Self.put(UInt32(13), at: 52, in: &$0)
        }
        try assertRefused(["the length of the value of 'general.architecture'", "more than the"]) {
            Self.put(UInt64(Int64.max), at: 56, in: &$0)
        }
        try assertRefused(["the value of 'general.architecture'", "not valid UTF-8"]) { $0[64] = 0xFF }
        try assertRefused(["general.alignment", "expected a UINT32 power of two"]) { Self.put(UInt32(48), at: 97, in: &$0) }
        try assertRefused(["general.alignment", "expected a UINT32 power of two"]) { Self.put(UInt32(5), at: 93, in: &$0) }
        try assertRefused(["metadata key 't.uint8' appears twice"]) {
            let at = Self.offset(ofValueOf: "t.int16", in: $0) - 4 - 7
            $0.replaceSubrange(at..<(at + 7), with: Array("t.uint8".utf8))  // the same length, an earlier key
        }
        try assertRefused(["is 2, expected a bool (0 or 1)"]) {
            let at = Self.offset(ofValueOf: "t.true", in: $0)
            $0[at] = 2
        }
    }

    /// Where the value of metadata `key` starts (after its key and type) in a file's bytes.
    static func offset(ofValueOf key: String, in bytes: [UInt8]) -> Int {
        let needle = Array(key.utf8)
        for i in 0..<(bytes.count - needle.count) where Array(bytes[i..<(i + needle.count)]) == needle {
            return i + needle.count + 4
        }
        fatalError("no key \(key)")
    }

    /// Where the tensor info of `name` starts (its name's length) in a file's bytes.
    static func offset(ofTensor name: String, in bytes: [UInt8]) -> Int {
        var prefix = [UInt8](repeating: 0, count: 8)
        Self.put(UInt64(name.utf8.count), at: 0, in: &prefix)
        let needle = prefix + Array(name.utf8)
        for i in 0..<(bytes.count - needle.count) where Array(bytes[i..<(i + needle.count)]) == needle { return i }
        fatalError("no tensor \(name)")
    }

    func testDamagedTensorInfosAreRefusedWithTheirReason() throws {
        // Tensor "f32": name length 8 bytes + "f32" + u32 rank (2) + 2 × u64 dims + u32 type + u64 offset.
        try assertRefused(["tensor 'f32' has 5 dimensions, expected 1…4"]) {
            Self.put(UInt32(5), at: Self.offset(ofTensor: "f32", in: $0) + 11, in: &$0)
        }
        try assertRefused(["tensor 'f32' dimension 1", "too large"]) {
            Self.put(UInt64(1) << 62, at: Self.offset(ofTensor: "f32", in: $0) + 23, in: &$0)
        }
        try assertRefused(["tensor 'f32' has type code 4", "not a known GGML type"]) {
            Self.put(UInt32(4), at: Self.offset(ofTensor: "f32", in: $0) + 31, in: &$0)
        }
        try assertRefused(["tensor 'q4_1' is Q4_1 with dimensions [48, 3]", "multiple of its block size 32"]) {
            Self.put(UInt64(48), at: Self.offset(ofTensor: "q4_1", in: $0) + 16, in: &$0)
        }
        try assertRefused(["tensor 'f32' has data offset 8", "multiple of the alignment 64"]) {
            Self.put(UInt64(8), at: Self.offset(ofTensor: "f32", in: $0) + 35, in: &$0)
        }
        // The data ends at byte 1996 (q8_0.3d: 204 bytes at data offset 704); the writer pads the file to 2048.
        try assertRefused(["tensor 'q8_0.3d'", "ends at byte 1996, past the end of the 1995-byte file", "truncated?"]) {
            $0.removeLast($0.count - 1995)
        }
        try assertRefused(["tensor name 'f16' appears twice"]) {
            let at = Self.offset(ofTensor: "f32", in: $0) + 8
            $0.replaceSubrange(at..<(at + 3), with: Array("f16".utf8))
        }
    }

    /// Every prefix of the file that ends before its last tensor's data does is refused, each with a
    /// FileFormatError (a read past the end would crash the test instead); the padding after it may go. The
    /// prefixes are read from memory by the header reader `GGUFFile` runs (writing 2,000 files takes seconds).
    func testEveryTruncationIsRefused() throws {
        let full = [UInt8](try Data(contentsOf: Self.fixture("types_v3.gguf")))
        let original = try GGUFFile(contentsOf: Self.fixture("types_v3.gguf"))
        let dataEnd = original.dataOffset + original.tensors.map { $0.offset + $0.byteCount }.max()!
        XCTAssertEqual(dataEnd, 1996)
        XCTAssertNoThrow(try GGUFFile(contentsOf: Self.write(Array(full[0..<dataEnd]))))
        let bytes = Array(full[0..<dataEnd])
        var refused = 0
        for length in 0..<bytes.count {
            bytes.withUnsafeBytes { all in
                var reader = GGUFReader(bytes: UnsafeRawBufferPointer(rebasing: all[0..<length]), path: "prefix")
                do {
                    _ = try reader.readHeader()
                    XCTFail("a \(length)-byte prefix of \(bytes.count) was read")
                } catch is FileFormatError { refused += 1 } catch { XCTFail("\(error)") }
            }
        }
        XCTAssertEqual(refused, bytes.count)
        XCTAssertThrowsError(try GGUFFile(contentsOf: Self.write(Array(full[0..<23])))) {
            XCTAssertTrue("\($0)".contains("file is 23 bytes, too short for a GGUF header"), "\($0)")
        }
    }

    func testTypeTheReaderDoesNotDequantizeIsNamed() throws {
        var bytes = [UInt8](try Data(contentsOf: Self.fixture("types_v3.gguf")))
        // F16 relabelled I16: the same 2 bytes an element, a type the reader sizes but does not dequantise.
        Self.put(UInt32(GGMLType.i16.rawValue), at: Self.offset(ofTensor: "f16", in: bytes) + 11 + 4 + 16, in: &bytes)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-gguf-\(UUID().uuidString).gguf")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let file = try GGUFFile(contentsOf: url)
        XCTAssertEqual(try file.info("f16").type, .i16)
        XCTAssertThrowsError(try file.tensor("f16")) { error in
            XCTAssertTrue("\(error)".contains("tensor 'f16' is I16, which this reader does not dequantize (it reads F32, F16, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, BF16)"), "\(error)")
        }
        XCTAssertThrowsError(try file.tensor("absent")) { XCTAssertTrue("\($0)".contains("no tensor named 'absent'"), "\($0)") }
        XCTAssertThrowsError(try file.rows([3], of: "q4_1")) { XCTAssertTrue("\($0)".contains("row 3 is outside"), "\($0)") }
    }

    func testSummaryListsMetadataAndTensors() throws {
        let text = try GGUFFile(contentsOf: Self.fixture("types_v3.gguf")).summary()
        XCTAssertTrue(text.contains("GGUF version 3, alignment 64, 20 metadata entries, 7 tensors"), text)
        XCTAssertTrue(text.contains("t.array.string"), text)
        XCTAssertTrue(text.contains("[STRING × 3] [\"a\", \"\", \"Ġthe\"]"), text)
        XCTAssertTrue(text.contains("2 Q8_0 ("), text)
        XCTAssertTrue(text.range(of: #"q4_1\s+Q4_1\s+\[64, 3\]\s+120\s+576\n"#, options: .regularExpression) != nil, text)
    }
}
