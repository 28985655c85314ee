// GGUFFile: llama.cpp's model file format, read through a memory map with every offset and size checked.
//
// Layout (little-endian; versions 2 and 3 are laid out alike, version 1's 32-bit counts are not read):
//   magic "GGUF", u32 version, u64 tensor count, u64 metadata count
//   metadata entries: string key, u32 value type, value
//       string = u64 byte length + UTF-8 bytes; array = u32 element type + u64 count + the elements
//   tensor infos: string name, u32 dimension count n (1…4), n × u64 dimensions (ggml order: the first is the
//       fastest-varying), u32 ggml type, u64 offset relative to the data section
//   padding to the alignment (`general.alignment`, a u32 power of two; 32 when absent), then the data section
//
// Nothing is allocated from a count or a length before the bytes left in the file are shown to hold it, so a
// truncated or hostile file is an error naming the file, the entry and what was expected — never a crash, a hang or
// a huge allocation.

import Foundation
import Formats
import Tensor

/// What the header says about one tensor.
public struct GGUFTensorInfo: Equatable, Sendable {
    public let name: String
    /// The dimensions in GGUF (ggml) order: `dimensions[0]` varies fastest.
    public let dimensions: [Int]
    public let type: GGMLType
    /// Byte offset from the start of the data section.
    public let offset: Int
    /// Bytes the tensor occupies.
    public let byteCount: Int

    /// The row-major shape of the dequantised `Tensor`: the dimensions reversed (`token_embd.weight`'s
    /// [576, 49152] is [49152, 576], one row per token).
    public var shape: [Int] { dimensions.reversed() }
    /// Number of elements.
    public var count: Int { dimensions.reduce(1, *) }
}

/// A GGUF file opened read-only through `mmap` (`Tensor.MappedFile`): the header, the metadata and the tensor infos are parsed and checked
/// in `init`; tensors are dequantised out of the mapping on request, so a `Tensor` never refers to the file.
///
/// Immutable after `init`, so it may be shared between threads.
public final class GGUFFile: @unchecked Sendable {
    /// Deepest nesting of arrays accepted (the format allows arrays of arrays; real files use one level).
    public static let maxArrayDepth = 8
    /// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
    public static let maxDimensions = 4

    public let url: URL
    /// 2 or 3.
    public let version: Int
    /// The metadata in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    /// The tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    /// The data alignment in bytes.
    public let alignment: Int
    /// Where the data section starts, in bytes from the start of the file.
    public let dataOffset: Int

    private let metadataIndex: [String: Int]
    private let tensorIndex: [String: Int]
    private let file: MappedFile
    /// The start of the data section inside the mapping.
    private var data: UnsafeRawPointer { file.bytes.baseAddress! + dataOffset }

    /// Maps the file at `url` and checks its header, every metadata entry and every tensor info (known value and
    /// element types, lengths and counts within the file, unique keys and names, dimensions that are whole blocks,
    /// data aligned and inside the file); throws `FileFormatError` naming the file, the key or tensor, and what was
    /// expected.
    public init(contentsOf url: URL) throws {
        self.url = url
        file = try MappedFile(url, minimumSize: 24, what: "a GGUF header (24 bytes)")
        var reader = GGUFReader(bytes: file.bytes, path: url.path)
        let header = try reader.readHeader()
        version = header.version
        metadata = header.metadata
        tensors = header.tensors
        alignment = header.alignment
        dataOffset = header.dataOffset
        metadataIndex = header.metadataIndex
        tensorIndex = header.tensorIndex
    }

    /// The metadata value under `key`, if any.
    public subscript(key: String) -> GGUFValue? {
        metadataIndex[key].map { metadata[$0].value }
    }

    /// The info of tensor `name`; throws if there is none.
    public func info(_ name: String) throws -> GGUFTensorInfo {
        guard let i = tensorIndex[name] else {
            throw FileFormatError(path: url.path, key: name, message: "no tensor named '\(name)'")
        }
        return tensors[i]
    }

    /// Tensor `name` dequantised to float32 in its row-major shape (`GGUFTensorInfo.shape`); throws for a missing
    /// name or a type this reader does not dequantise (it names the type and those it does).
    public func tensor(_ name: String) throws -> Tensor {
        let info = try info(name)
        guard info.type.isDequantizable else {
            let known = GGMLType.allCases.filter(\.isDequantizable).map(\.name).joined(separator: ", ")
            throw FileFormatError(path: url.path, key: name,
                                  message: "tensor '\(name)' is \(info.type.name), which this reader does not dequantize (it reads \(known))")
        }
        let src = UnsafeRawBufferPointer(start: data + info.offset, count: info.byteCount)
        return Tensor(shape: info.shape) { dst in info.type.dequantize(src, into: dst) }
    }

    /// Rows `rows` of tensor `name` (row-major rows: one per index of its last GGUF dimension), dequantised, as a
    /// [rows.count, row length] tensor: one token's embedding without dequantising the whole table.
    public func rows(_ rows: [Int], of name: String) throws -> Tensor {
        let info = try info(name)
        let rowLength = info.dimensions[0]
        let rowCount = info.count / max(rowLength, 1)
        guard info.type.isDequantizable else { return try tensor(name) }  // throws the type's error
        for r in rows where !(0..<rowCount).contains(r) {
            throw FileFormatError(path: url.path, key: name, message: "row \(r) is outside tensor '\(name)''s \(rowCount) rows")
        }
        let rowBytes = info.type.byteCount(elements: rowLength)!  // a whole number of blocks: checked on open
        return Tensor(shape: [rows.count, rowLength]) { dst in
            for (k, r) in rows.enumerated() {
                let src = UnsafeRawBufferPointer(start: data + info.offset + r * rowBytes, count: rowBytes)
                info.type.dequantize(src, into: UnsafeMutableBufferPointer(rebasing: dst[(k * rowLength)..<((k + 1) * rowLength)]))
            }
        }
    }
}

/// A cursor over the mapped bytes that reads the header; every read checks the bytes left.
struct GGUFReader {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var position = 0

    struct Header {
        var version: Int
        var metadata: [(key: String, value: GGUFValue)]
        var metadataIndex: [String: Int]
        var tensors: [GGUFTensorInfo]
        var tensorIndex: [String: Int]
        var alignment: Int
        var dataOffset: Int
    }

    init(bytes: UnsafeRawBufferPointer, path: String) {
        self.bytes = bytes
        self.path = path
    }

    var remaining: Int { bytes.count - position }

    func error(_ key: String?, _ message: String) -> FileFormatError {
        FileFormatError(path: path, key: key, message: message)
    }

    /// `n` bytes at the cursor, which moves past them; `what` names them in the error of a file that ends first.
    mutating func take(_ n: Int, _ what: @autoclosure () -> String, key: String?) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= remaining else {
            throw error(key, "file ends at byte \(bytes.count) inside \(what()) (needs \(n) bytes at offset \(position)): truncated?")
        }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
    }

    mutating func integer<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String, key: String?) throws -> T {
        T(littleEndian: try take(MemoryLayout<T>.size, what(), key: key).loadUnaligned(as: T.self))
    }

    /// A u64 count or length that must fit in the bytes left, each item taking at least `minimumItemBytes`.
    mutating func count(_ what: @autoclosure () -> String, key: String?, minimumItemBytes: Int) throws -> Int {
        let at = position
        let n = try integer(UInt64.self, what(), key: key)
        guard n <= UInt64(remaining / max(minimumItemBytes, 1)) else {
            throw error(key, "\(what()) at offset \(at) is \(n), more than the \(remaining) bytes left in the file can hold")
        }
        return Int(n)
    }

    mutating func string(_ what: @autoclosure () -> String, key: String?) throws -> String {
        let n = try count("the length of \(what())", key: key, minimumItemBytes: 1)
        let at = position
        let raw = try take(n, what(), key: key)
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw error(key, "\(what()) at offset \(at) is not valid UTF-8")
        }
        return s
    }

    mutating func valueType(_ what: @autoclosure () -> String, key: String?) throws -> GGUFValueType {
        let at = position
        let code = try integer(UInt32.self, what(), key: key)
        guard let type = GGUFValueType(rawValue: code) else {
            throw error(key, "\(what()) at offset \(at) is \(code), expected a GGUF value type 0…12")
        }
        return type
    }

    mutating func value(_ type: GGUFValueType, key: String, depth: Int = 0) throws -> GGUFValue {
        let what = "the value of '\(key)'"
        switch type {
        case .uint8: return .uint8(try integer(UInt8.self, what, key: key))
        case .int8: return .int8(try integer(Int8.self, what, key: key))
        case .uint16: return .uint16(try integer(UInt16.self, what, key: key))
        case .int16: return .int16(try integer(Int16.self, what, key: key))
        case .uint32: return .uint32(try integer(UInt32.self, what, key: key))
        case .int32: return .int32(try integer(Int32.self, what, key: key))
        case .uint64: return .uint64(try integer(UInt64.self, what, key: key))
        case .int64: return .int64(try integer(Int64.self, what, key: key))
        case .float32: return .float32(Float(bitPattern: try integer(UInt32.self, what, key: key)))
        case .float64: return .float64(Double(bitPattern: try integer(UInt64.self, what, key: key)))
        case .bool:
            let at = position
            let b = try integer(UInt8.self, what, key: key)
            guard b <= 1 else { throw error(key, "\(what) at offset \(at) is \(b), expected a bool (0 or 1)") }
            return .bool(b == 1)
        case .string: return .string(try string(what, key: key))
        case .array:
            guard depth < GGUFFile.maxArrayDepth else {
                throw error(key, "'\(key)' nests arrays more than \(GGUFFile.maxArrayDepth) deep")
            }
            let elementType = try valueType("the element type of '\(key)'", key: key)
            let n = try count("the element count of '\(key)'", key: key, minimumItemBytes: elementType.minimumByteSize)
            var elements: [GGUFValue] = []
            elements.reserveCapacity(n)
            for _ in 0..<n { elements.append(try value(elementType, key: key, depth: depth + 1)) }
            return .array(elementType, elements)
        }
    }

    mutating func readHeader() throws -> Header {
        let magic = try take(4, "the magic", key: nil)
        guard Array(magic) == Array("GGUF".utf8) else {
            throw error(nil, "not a GGUF file: it starts with bytes \(magic.map { String(format: "%02x", $0) }.joined(separator: " ")), expected \"GGUF\"")
        }
        let version = try integer(UInt32.self, "the version", key: nil)
        guard version == 2 || version == 3 else {
            let hint = version == 1 ? " (version 1, with 32-bit counts, is not read)"
                : version.byteSwapped <= 3 ? " (a big-endian file, which is not read)" : ""
            throw error("version", "GGUF version \(version), expected 2 or 3\(hint)")
        }
        // Each metadata entry takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info 8 + 4 + 8 + 4 + 8.
        let tensorCount = try count("the tensor count", key: nil, minimumItemBytes: 32)
        let metadataCount = try count("the metadata count", key: nil, minimumItemBytes: 13)
        var metadata: [(key: String, value: GGUFValue)] = []
        var metadataIndex: [String: Int] = [:]
        for i in 0..<metadataCount {
            let key = try string("the key of metadata entry \(i)", key: nil)
            guard metadataIndex[key] == nil else { throw error(key, "metadata key '\(key)' appears twice") }
            let type = try valueType("the value type of '\(key)'", key: key)
            metadataIndex[key] = metadata.count
            metadata.append((key, try value(type, key: key)))
        }
        var alignment = 32
        if let i = metadataIndex["general.alignment"] {
            guard case .uint32(let a) = metadata[i].value, a > 0, a & (a - 1) == 0 else {
                throw error("general.alignment", "general.alignment is \(metadata[i].value.summary()) (\(metadata[i].value.type.name)), expected a UINT32 power of two")
            }
            alignment = Int(a)
        }
        var tensors: [GGUFTensorInfo] = []
        var tensorIndex: [String: Int] = [:]
        var ends: [Int] = []
        for i in 0..<tensorCount {
            let name = try string("the name of tensor \(i)", key: nil)
            guard tensorIndex[name] == nil else { throw error(name, "tensor name '\(name)' appears twice") }
            let rank = try integer(UInt32.self, "the dimension count of '\(name)'", key: name)
            guard (1...UInt32(GGUFFile.maxDimensions)).contains(rank) else {
                throw error(name, "tensor '\(name)' has \(rank) dimensions, expected 1…\(GGUFFile.maxDimensions)")
            }
            var dimensions: [Int] = []
            var elements = 1
            for d in 0..<Int(rank) {
                let n = try integer(UInt64.self, "dimension \(d) of '\(name)'", key: name)
                guard n <= UInt64(Int32.max), case let (product, false) = elements.multipliedReportingOverflow(by: Int(n)),
                      product <= Int(Int32.max) * 16 else {
                    throw error(name, "tensor '\(name)' dimension \(d) is \(n): the tensor is too large to be real")
                }
                elements = product
                dimensions.append(Int(n))
            }
            let at = position
            let code = try integer(UInt32.self, "the type of '\(name)'", key: name)
            guard let type = GGMLType(rawValue: code) else {
                throw error(name, "tensor '\(name)' has type code \(code) at offset \(at), which is not a known GGML type")
            }
            guard dimensions[0] % type.blockSize == 0, let byteCount = type.byteCount(elements: elements) else {
                throw error(name, "tensor '\(name)' is \(type.name) with dimensions \(dimensions): the first dimension must be a multiple of its block size \(type.blockSize)")
            }
            let offset = try integer(UInt64.self, "the offset of '\(name)'", key: name)
            guard offset % UInt64(alignment) == 0, offset <= UInt64(bytes.count) else {
                throw error(name, "tensor '\(name)' has data offset \(offset), expected a multiple of the alignment \(alignment) inside the file")
            }
            tensorIndex[name] = tensors.count
            tensors.append(GGUFTensorInfo(name: name, dimensions: dimensions, type: type, offset: Int(offset), byteCount: byteCount))
            ends.append(Int(offset) + byteCount)
        }
        let dataOffset = (position + alignment - 1) / alignment * alignment
        for (t, end) in zip(tensors, ends) where dataOffset + end > bytes.count {
            throw error(t.name, "tensor '\(t.name)' (\(t.type.name), \(t.byteCount) bytes at data offset \(t.offset)) ends at byte \(dataOffset + end), past the end of the \(bytes.count)-byte file: truncated?")
        }
        return Header(version: Int(version), metadata: metadata, metadataIndex: metadataIndex, tensors: tensors,
                      tensorIndex: tensorIndex, alignment: alignment, dataOffset: dataOffset)
    }
}
