import Formats
import Foundation
import XCTest
@testable import Tensor

final class SafetensorsTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("SafetensorsTests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: - Helpers

    /// Writes `8-byte length ‖ header ‖ data` by hand, as another implementation would, and returns its URL.
    private func rawFile(_ name: String = "model.safetensors", header: String, data: [UInt8] = [],
                         headerLength: UInt64? = nil) throws -> URL {
        let headerBytes = Array(header.utf8)
        var bytes = withUnsafeBytes(of: (headerLength ?? UInt64(headerBytes.count)).littleEndian) { Array($0) }
        bytes += headerBytes + data
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// Opens `url` expecting failure; returns the error's description after checking it names the file.
    private func openError(_ url: URL, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try SafetensorsFile(contentsOf: url)
            XCTFail("opened a corrupt file without error", file: file, line: line)
            return ""
        } catch let error as FileFormatError {
            XCTAssertTrue(error.description.contains(url.lastPathComponent),
                          "'\(error)' does not name the file", file: file, line: line)
            return error.description
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
            return ""
        }
    }

    private func assertContains(_ text: String, _ parts: String..., file: StaticString = #filePath, line: UInt = #line) {
        for part in parts {
            XCTAssertTrue(text.contains(part), "'\(text)' does not contain '\(part)'", file: file, line: line)
        }
    }

    private func bytes<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

    // MARK: - Round trip

    func testRoundTrip() throws {
        let url = directory.appendingPathComponent("round.safetensors")
        let weight = Tensor(shape: [2, 3], scalars: [1, -2.5, 3e-8, .infinity, -0.0, 7])
        let scalar = Tensor(scalar: 42.5)
        let empty = Tensor(shape: [0, 4], scalars: [])
        let ids: (shape: [Int], values: [Int]) = ([2, 2], [0, -1, Int(Int64.max), Int(Int64.min)])
        let metadata = ["format": "pt", "note": "quote \" backslash \\ newline \n tab \t é"]
        try SafetensorsWriter.write(["b.weight": weight, "a.scalar": scalar, "c.empty": empty],
                                    integers: ["position_ids": ids, "no_ids": ([0], [])],
                                    metadata: metadata, to: url)

        let file = try SafetensorsFile(contentsOf: url)
        XCTAssertEqual(file.names, ["a.scalar", "b.weight", "c.empty", "no_ids", "position_ids"])
        XCTAssertEqual(file.metadata, metadata)
        XCTAssertEqual(try file.tensor("b.weight"), weight)
        XCTAssertEqual(try file.tensor("b.weight").scalars[4].sign, .minus)
        XCTAssertEqual(try file.tensor("a.scalar"), scalar)
        XCTAssertEqual(try file.tensor("a.scalar").shape, [])
        XCTAssertEqual(try file.tensor("c.empty"), empty)
        XCTAssertEqual(try file.integers("position_ids").shape, ids.shape)
        XCTAssertEqual(try file.integers("position_ids").values, ids.values)
        XCTAssertEqual(try file.integers("no_ids").values, [])
        XCTAssertEqual(try file.info("b.weight").dtype, .f32)
        XCTAssertEqual(try file.info("position_ids").dtype, .i64)
        XCTAssertTrue(file.contains("b.weight"))
        XCTAssertFalse(file.contains("nope"))

        // Layout: header padded to a multiple of 8, tensors contiguous in name order.
        let raw = try [UInt8](Data(contentsOf: url))
        let n = raw.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        XCTAssertEqual(n % 8, 0)
        XCTAssertEqual(raw.count, 8 + n + 4 + 24 + 0 + 0 + 32)
        XCTAssertEqual(try file.info("a.scalar").dataOffsets, 0..<4)
        XCTAssertEqual(try file.info("b.weight").dataOffsets, 4..<28)
        XCTAssertEqual(try file.info("position_ids").dataOffsets, 28..<60)

        // Overwriting replaces the file and leaves no temporary behind.
        try SafetensorsWriter.write(["x": Tensor(scalar: 1)], to: url)
        XCTAssertEqual(try SafetensorsFile(contentsOf: url).names, ["x"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["round.safetensors"])
    }

    func testWriterRejectsBadInput() throws {
        let url = directory.appendingPathComponent("bad.safetensors")
        XCTAssertThrowsError(try SafetensorsWriter.write(["a": Tensor(scalar: 1)], integers: ["a": ([], [1])], to: url)) {
            assertContains("\($0)", "bad.safetensors", "'a'")
        }
        XCTAssertThrowsError(try SafetensorsWriter.write([:], integers: ["ids": ([3], [1, 2])], to: url)) {
            assertContains("\($0)", "bad.safetensors", "'ids'", "[3]", "2 values")
        }
        XCTAssertThrowsError(try SafetensorsWriter.write(["__metadata__": Tensor(scalar: 1)], to: url)) {
            assertContains("\($0)", "bad.safetensors", "__metadata__")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
    }

    // MARK: - Dtypes from hand-built files

    func testFloat16Conversion() throws {
        // bits → expected Float
        let cases: [(UInt16, Float)] = [
            (0x0000, 0), (0x8000, -0.0), (0x3C00, 1), (0xC000, -2), (0x3555, 0.333251953125),
            (0x7BFF, 65504),                       // largest normal
            (0x0400, 0x1p-14),                     // smallest normal
            (0x0001, 0x1p-24),                     // smallest subnormal
            (0x03FF, 1023 * 0x1p-24),              // largest subnormal
            (0x8001, -0x1p-24),
            (0x7C00, .infinity), (0xFC00, -.infinity),
        ]
        let bits = cases.map(\.0) + [0x7E00, 0xFD01]   // + quiet NaN, negative NaN with payload
        let url = try rawFile(header: #"{"h":{"dtype":"F16","shape":[\#(bits.count)],"data_offsets":[0,\#(2 * bits.count)]}}"#,
                              data: bytes(bits.map(\.littleEndian)))
        let values = try SafetensorsFile(contentsOf: url).tensor("h").scalars
        for (i, (b, expected)) in cases.enumerated() {
            XCTAssertEqual(values[i].bitPattern, expected.bitPattern, "F16 0x\(String(b, radix: 16))")
        }
        XCTAssertTrue(values[cases.count].isNaN)
        XCTAssertTrue(values[cases.count + 1].isNaN)
        XCTAssertEqual(values[cases.count + 1].sign, .minus)
        XCTAssertEqual(values[0].sign, .plus)
        XCTAssertEqual(values[1].sign, .minus)
        // Every finite half agrees with the exact value sign · 2^(e−15) · (1 + m/1024) (or m · 2^−24 if e = 0).
        for h in UInt16(0)...UInt16.max {
            let e = Int(h >> 10) & 0x1F, m = Double(h & 0x3FF)
            guard e != 0x1F else { continue }
            let magnitude = e == 0 ? m * 0x1p-24 : (1 + m / 1024) * pow(2, Double(e - 15))
            let expected = Float(h & 0x8000 == 0 ? magnitude : -magnitude)
            XCTAssertEqual(floatFromHalfBits(h).bitPattern, expected.bitPattern, "F16 0x\(String(h, radix: 16))")
        }
    }

    func testBFloat16AndFloat64Conversion() throws {
        let bf: [UInt16] = [0x3F80, 0xC040, 0x8000, 0x0001, 0x7F80, 0xFF80, 0x3EAB]
        let f64: [Double] = [1.5, -0.0, 1e300, 0.1]
        let header = #"{"bf":{"dtype":"BF16","shape":[7],"data_offsets":[0,14]},"#
            + #""d":{"dtype":"F64","shape":[2,2],"data_offsets":[14,46]}}"#
        let url = try rawFile(header: header, data: bytes(bf.map(\.littleEndian)) + bytes(f64.map { $0.bitPattern.littleEndian }))
        let file = try SafetensorsFile(contentsOf: url)
        let b = try file.tensor("bf").scalars
        XCTAssertEqual(b[0], 1)
        XCTAssertEqual(b[1], -3)
        XCTAssertEqual(b[2].bitPattern, (-0.0 as Float).bitPattern)
        XCTAssertEqual(b[3], Float(bitPattern: 0x0001_0000))   // subnormal
        XCTAssertEqual(b[3], 0x1p-133)
        XCTAssertEqual(b[4], .infinity)
        XCTAssertEqual(b[5], -.infinity)
        XCTAssertEqual(b[6], 0.333984375)
        let d = try file.tensor("d")   // starts at byte 14 of the data buffer: unaligned for F64
        XCTAssertEqual(d.shape, [2, 2])
        XCTAssertEqual(d.scalars[0], 1.5)
        XCTAssertEqual(d.scalars[1].bitPattern, (-0.0 as Float).bitPattern)
        XCTAssertEqual(d.scalars[2], .infinity)
        XCTAssertEqual(d.scalars[3], Float(0.1))
    }

    func testUnalignedAndIntegerDtypes() throws {
        let f32: [Float] = [1, 2, 3]
        let i32: [Int32] = [-7, Int32.max]
        let i16: [Int16] = [-300, 300]
        let i8: [Int8] = [-128, 127]
        let u8: [UInt8] = [0, 255]
        let flags: [UInt8] = [0, 1, 2]
        // Data laid out at odd offsets: u8 [0,2), f32 [2,14), i32 [14,22), i16 [22,26), i8 [26,28), BOOL [28,31)
        let header = """
            {"u":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},
             "f":{"dtype":"F32","shape":[3],"data_offsets":[2,14]},
             "i32":{"dtype":"I32","shape":[2,1],"data_offsets":[14,22]},
             "i16":{"dtype":"I16","shape":[2],"data_offsets":[22,26]},
             "i8":{"dtype":"I8","shape":[2],"data_offsets":[26,28]},
             "b":{"dtype":"BOOL","shape":[3],"data_offsets":[28,31]}}
            """
        let data = u8 + bytes(f32.map { $0.bitPattern.littleEndian }) + bytes(i32.map(\.littleEndian))
            + bytes(i16.map(\.littleEndian)) + bytes(i8) + flags
        let file = try SafetensorsFile(contentsOf: try rawFile(header: header, data: data))
        XCTAssertEqual(try file.tensor("f").scalars, f32)
        XCTAssertEqual(try file.integers("u").values, [0, 255])
        XCTAssertEqual(try file.integers("i32").shape, [2, 1])
        XCTAssertEqual(try file.integers("i32").values, [-7, Int(Int32.max)])
        XCTAssertEqual(try file.integers("i16").values, [-300, 300])
        XCTAssertEqual(try file.integers("i8").values, [-128, 127])
        XCTAssertEqual(try file.integers("b").values, [0, 1, 1])
        XCTAssertThrowsError(try file.integers("f")) {
            assertContains("\($0)", "model.safetensors", "'f'", "F32", "expected an integer tensor")
        }
    }

    // MARK: - Corruption and lookup errors

    private let goodHeader = #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#
    private let goodData = [UInt8](repeating: 0, count: 16)

    func testTruncatedFiles() throws {
        assertContains(openError(directory.appendingPathComponent("missing.safetensors")), "cannot open")
        let tiny = directory.appendingPathComponent("model.safetensors")
        try Data([1, 2, 3, 4, 5]).write(to: tiny)
        assertContains(openError(tiny), "file is 5 bytes, too short for the 8-byte header length")

        // Cut in the data: the tensor's end offset now lies past the buffer.
        let cut = try rawFile(header: goodHeader, data: Array(goodData.prefix(10)))
        assertContains(openError(cut), "'w'", "data_offsets [0, 16]", "10 bytes")
    }

    func testHeaderLengthBeyondFile() throws {
        let url = try rawFile(header: goodHeader, data: goodData, headerLength: 123_456)
        let size = 8 + goodHeader.utf8.count + 16
        assertContains(openError(url), "header length 123456 exceeds the file size \(size)")
        let huge = try rawFile(header: goodHeader, data: goodData, headerLength: UInt64.max)
        assertContains(openError(huge), "header length \(UInt64.max) exceeds the file size")
    }

    func testHeaderNotJSON() throws {
        assertContains(openError(try rawFile(header: "{not json", data: goodData)), "header is not valid JSON")
        assertContains(openError(try rawFile(header: "", data: [])), "header is not valid JSON")
        assertContains(openError(try rawFile(header: "[1, 2]")), "header is an array, expected a JSON object")
        let badUTF8 = directory.appendingPathComponent("model.safetensors")
        try Data(withUnsafeBytes(of: UInt64(4).littleEndian) { Array($0) } + [0x22, 0xFF, 0xFE, 0x22]).write(to: badUTF8)
        assertContains(openError(badUTF8), "header is not valid UTF-8")
        assertContains(openError(try rawFile(header: #"{"w":[1]}"#)), "tensor 'w'", "entry is an array")
        assertContains(openError(try rawFile(header: #"{"__metadata__":{"k":1}}"#)), "__metadata__", "'k'", "expected a string")
        assertContains(openError(try rawFile(header: #"{"__metadata__":"x"}"#)), "__metadata__", "expected an object")
    }

    func testBadDtypeAndShape() throws {
        assertContains(openError(try rawFile(header: #"{"w":{"dtype":"F8","shape":[2,2],"data_offsets":[0,16]}}"#, data: goodData)),
                       "tensor 'w'", "unknown dtype 'F8'")
        assertContains(openError(try rawFile(header: #"{"w":{"shape":[2,2],"data_offsets":[0,16]}}"#, data: goodData)),
                       "tensor 'w'", "no 'dtype'")
        assertContains(openError(try rawFile(header: #"{"w":{"dtype":"F32","shape":[2,-2],"data_offsets":[0,16]}}"#, data: goodData)),
                       "tensor 'w'", "shape [2, -2]", "non-negative integers")
        assertContains(openError(try rawFile(header: #"{"w":{"dtype":"F32","shape":[2,2.5],"data_offsets":[0,16]}}"#, data: goodData)),
                       "tensor 'w'", "shape [2, 2.5]", "non-negative integers")
        assertContains(openError(try rawFile(header: #"{"w":{"dtype":"F32","shape":"2x2","data_offsets":[0,16]}}"#, data: goodData)),
                       "tensor 'w'", "'shape' is a string")
        assertContains(openError(try rawFile(header: #"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#, data: goodData)),
                       "tensor 'w'", "too large")
    }

    func testBadOffsets() throws {
        assertContains(openError(try rawFile(header: #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,32]}}"#, data: goodData)),
                       "tensor 'w'", "data_offsets [0, 32]", "beyond the data buffer of 16 bytes")
        assertContains(openError(try rawFile(header: #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[16,0]}}"#, data: goodData)),
                       "tensor 'w'", "data_offsets [16, 0]", "begin ≤ end")
        assertContains(openError(try rawFile(header: #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[-4,12]}}"#, data: goodData)),
                       "tensor 'w'", "data_offsets [-4, 12]")
        assertContains(openError(try rawFile(header: #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0]}}"#, data: goodData)),
                       "tensor 'w'", "data_offsets [0]")
        assertContains(openError(try rawFile(header: #"{"w":{"dtype":"F32","shape":[2,2]}}"#, data: goodData)),
                       "tensor 'w'", "no 'data_offsets'")
    }

    func testSizeMismatch() throws {
        let header = #"{"encoder.layer.0.attention.self.query.weight":{"dtype":"F32","shape":[4,8],"data_offsets":[0,100]}}"#
        let url = try rawFile(header: header, data: [UInt8](repeating: 0, count: 128))
        assertContains(openError(url), "model.safetensors: tensor 'encoder.layer.0.attention.self.query.weight' "
            + "has data_offsets [0, 100] but shape [4, 8] of F32 needs 128 bytes")
    }

    func testOverlappingTensors() throws {
        let header = #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#
        assertContains(openError(try rawFile(header: header, data: goodData)), "'a' [0, 16]", "'b' [8, 16]", "overlap")
        // Empty tensors occupy no bytes and may sit anywhere within the buffer.
        let ok = #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"e":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}}"#
        XCTAssertEqual(try SafetensorsFile(contentsOf: try rawFile(header: ok, data: goodData)).tensor("e").shape, [0])
    }

    /// The tensors must cover the data buffer exactly, as the reference reader requires: a buffer longer than its
    /// tensors, or shifted by a byte, used to load (and read garbage); each is an error naming the offsets.
    func testDataBufferMustBeExactlyCovered() throws {
        let two = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#
        XCTAssertEqual(try SafetensorsFile(contentsOf: try rawFile(header: two, data: goodData)).names, ["a", "b"])
        // Trailing bytes.
        assertContains(openError(try rawFile(header: goodHeader, data: goodData + [0])),
                       "data buffer is 17 bytes", "cover [0, 16)", "1 trailing byte at data offset 16", "'w' [0, 16]")
        assertContains(openError(try rawFile(header: #"{}"#, data: [1, 2, 3])), "data buffer is 3 bytes", "cover [0, 0)")
        // Shifted by one byte: the data starts one byte late, so byte 0 belongs to no tensor.
        let shifted = #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[1,17]}}"#
        assertContains(openError(try rawFile(header: shifted, data: [0] + goodData)),
                       "tensor 'w' has data_offsets [1, 17]", "bytes [0, 1) at the start of the data buffer belong to no tensor")
        // A gap between two tensors.
        let gap = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}"#
        assertContains(openError(try rawFile(header: gap, data: goodData + [0, 0, 0, 0])),
                       "tensor 'b' has data_offsets [12, 20]", "bytes [8, 12) after 'a', which ends at 8")
    }

    func testLookupErrors() throws {
        let header = #"{"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}"#
        let file = try SafetensorsFile(contentsOf: try rawFile(header: header, data: goodData))
        XCTAssertThrowsError(try file.tensor("classifier.weight")) {
            assertContains("\($0)", "model.safetensors: no tensor named 'classifier.weight'")
            XCTAssertEqual(($0 as? FileFormatError)?.key, "classifier.weight")
        }
        XCTAssertThrowsError(try file.info("classifier.weight")) { assertContains("\($0)", "'classifier.weight'") }
        XCTAssertThrowsError(try file.tensor("ids")) {
            assertContains("\($0)", "model.safetensors: tensor 'ids' is I64, expected a floating-point tensor")
        }
        XCTAssertEqual(try file.integers("ids").values, [0, 0])
    }
}
