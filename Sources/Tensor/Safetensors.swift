// Safetensors: the checkpoint format of Hugging Face models, read through a memory map and written atomically.
//
// Layout of a file:
//   [0, 8)          u64 little-endian N, the header length
//   [8, 8 + N)      UTF-8 JSON object: name → {"dtype", "shape", "data_offsets": [begin, end]},
//                   plus an optional "__metadata__": {string: string}
//   [8 + N, size)   the data buffer; data_offsets are relative to its start, values little-endian, row-major
//
// Everything in the header is checked when the file is opened, so a lookup afterwards can only fail for a
// missing name or a dtype the caller did not expect. The tensors must cover the data buffer exactly, as the
// reference reader requires (its `validate`): ordered by offset, each begins where the one before ends, the first
// at 0 and the last at the end of the file — no gap, no overlap, no trailing byte. (Empty tensors occupy no bytes
// and may sit at any offset inside the buffer, where the reference reader wants them at a boundary.) Offsets need
// not be aligned: every read is a byte copy or an unaligned load.

#if canImport(Darwin)
import Darwin
#else
import Glibc
#endif
import Foundation
import Formats

/// The element types a safetensors header may name. The raw value is the header's spelling.
public enum SafetensorsDType: String, CaseIterable, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    /// Whether `SafetensorsFile.tensor(_:)` reads this type (the others are read by `integers(_:)`).
    public var isFloatingPoint: Bool {
        switch self {
        case .f32, .f16, .bf16, .f64: return true
        case .i64, .i32, .i16, .i8, .u8, .bool: return false
        }
    }
}

/// What the header says about one tensor.
public struct SafetensorsTensorInfo: Equatable, Sendable {
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// Byte range in the data buffer (relative to its start, as in the header's `data_offsets`).
    public let dataOffsets: Range<Int>

    /// Number of elements: the product of `shape` (1 for a rank-0 tensor).
    public var count: Int { shape.reduce(1, *) }
}

/// A safetensors file opened read-only through `mmap`. The header is parsed and validated in `init`; tensors
/// are copied out of the mapping on request, so a `Tensor` never refers to the file once returned.
///
/// Immutable after `init`, so it may be shared between threads.
public final class SafetensorsFile: @unchecked Sendable {
    /// Largest header accepted, as in the reference implementation (guards against a garbage length).
    public static let maxHeaderLength = 100_000_000

    public let url: URL
    /// The header's `__metadata__` (empty when absent).
    public let metadata: [String: String]

    private let entries: [String: SafetensorsTensorInfo]
    private let file: MappedFile
    /// Start of the data buffer inside the mapping.
    private let dataStart: UnsafeRawPointer

    /// Tensor names, sorted.
    public var names: [String] { entries.keys.sorted() }

    /// Maps the file at `url` and validates its header and every tensor entry; throws `FileFormatError` on
    /// any violation (short file, bad header length, non-JSON header, unknown dtype, bad shape, offsets out of
    /// range or inconsistent with shape × dtype, overlapping tensors, a gap between tensors or bytes after the
    /// last one, non-string metadata).
    public init(contentsOf url: URL) throws {
        self.url = url
        file = try MappedFile(url, minimumSize: 8, what: "the 8-byte header length")
        let header = try Self.parseHeader(file.bytes, path: url.path)
        metadata = header.metadata
        entries = header.entries
        dataStart = file.bytes.baseAddress! + 8 + header.length
    }

    /// Whether the file holds a tensor called `name`.
    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// The dtype, shape and byte range of tensor `name`; throws if there is none.
    public func info(_ name: String) throws -> SafetensorsTensorInfo {
        guard let info = entries[name] else {
            throw FileFormatError(path: url.path, key: name, message: "no tensor named '\(name)'")
        }
        return info
    }

    /// Tensor `name` as Float: F32 is copied, F16 / BF16 / F64 are converted (F64 rounds to nearest).
    /// Throws for a missing name or an integer dtype.
    public func tensor(_ name: String) throws -> Tensor {
        let info = try info(name)
        guard info.dtype.isFloatingPoint else {
            throw FileFormatError(path: url.path, key: name,
                                  message: "tensor '\(name)' is \(info.dtype.rawValue), expected a floating-point tensor (F32, F16, BF16 or F64)")
        }
        let src = bytes(of: info)
        let n = info.count
        return Tensor(shape: info.shape) { dst in
            switch info.dtype {
            case .f32:
                #if _endian(little)
                if n > 0 { memcpy(dst.baseAddress!, src.baseAddress!, n * 4) }
                #else
                for i in 0..<n { dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                #endif
            case .f16:
                for i in 0..<n { dst[i] = floatFromHalfBits(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            case .bf16:
                for i in 0..<n { dst[i] = floatFromBFloat16Bits(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            case .f64:
                for i in 0..<n { dst[i] = Float(Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
            case .i64, .i32, .i16, .i8, .u8, .bool:
                preconditionFailure("unreachable: integer dtype passed the floating-point check")
            }
        }
    }

    /// Integer tensor `name` (I64, I32, I16, I8, U8 or BOOL, the last as 0 / 1) with its shape, values row-major.
    /// Throws for a missing name or a floating-point dtype.
    public func integers(_ name: String) throws -> (shape: [Int], values: [Int]) {
        let info = try info(name)
        guard !info.dtype.isFloatingPoint else {
            throw FileFormatError(path: url.path, key: name,
                                  message: "tensor '\(name)' is \(info.dtype.rawValue), expected an integer tensor (I64, I32, I16, I8, U8 or BOOL)")
        }
        let src = bytes(of: info)
        let n = info.count
        let values = [Int](unsafeUninitializedCapacity: n) { dst, initialized in
            switch info.dtype {
            case .i64: for i in 0..<n { dst[i] = Int(Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
            case .i32: for i in 0..<n { dst[i] = Int(Int32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
            case .i16: for i in 0..<n { dst[i] = Int(Int16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
            case .i8: for i in 0..<n { dst[i] = Int(src.load(fromByteOffset: i, as: Int8.self)) }
            case .u8: for i in 0..<n { dst[i] = Int(src[i]) }
            case .bool: for i in 0..<n { dst[i] = src[i] == 0 ? 0 : 1 }
            case .f32, .f16, .bf16, .f64: preconditionFailure("unreachable: float dtype passed the integer check")
            }
            initialized = n
        }
        return (info.shape, values)
    }

    // MARK: - Private

    private func bytes(of info: SafetensorsTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: dataStart + info.dataOffsets.lowerBound, count: info.dataOffsets.count)
    }

    /// Parses and checks the length prefix, the header JSON and every entry of a whole mapped `file`.
    private static func parseHeader(_ file: UnsafeRawBufferPointer, path: String) throws
        -> (length: Int, metadata: [String: String], entries: [String: SafetensorsTensorInfo]) {
        func fail(_ key: String?, _ message: String) -> FileFormatError {
            FileFormatError(path: path, key: key, message: message)
        }
        let size = file.count
        let headerLength = UInt64(littleEndian: file.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(size - 8) else {
            throw fail(nil, "header length \(headerLength) exceeds the file size \(size) "
                + "(at most \(size - 8) bytes follow the 8-byte length)")
        }
        guard headerLength <= UInt64(maxHeaderLength) else {
            throw fail(nil, "header length \(headerLength) exceeds the limit of \(maxHeaderLength) bytes")
        }
        let n = Int(headerLength)
        let dataLength = size - 8 - n

        let headerData = Data(UnsafeRawBufferPointer(rebasing: file[8..<(8 + n)]))
        guard String(data: headerData, encoding: .utf8) != nil else { throw fail(nil, "header is not valid UTF-8") }
        let header: JSONValue
        do {
            header = try JSONDecoder().decode(JSONValue.self, from: headerData)
        } catch {
            throw fail(nil, "header is not valid JSON: \(jsonFailure(headerData, error))")
        }
        guard case .object(let object) = header else {
            throw fail(nil, "header is \(header.kind), expected a JSON object of tensor entries")
        }

        var metadata: [String: String] = [:]
        var entries: [String: SafetensorsTensorInfo] = [:]
        for (name, value) in object {
            if name == "__metadata__" {
                guard case .object(let fields) = value else {
                    throw fail(name, "header key '__metadata__' is \(value.kind), expected an object of strings")
                }
                for (key, field) in fields {
                    guard case .string(let s) = field else {
                        throw fail(name, "header key '__metadata__': value of '\(key)' is \(field.kind), expected a string")
                    }
                    metadata[key] = s
                }
                continue
            }
            entries[name] = try parseEntry(name, value, dataLength: dataLength, fail: fail)
        }

        // Non-empty byte ranges, ordered by start, must tile the data buffer: no overlap, no gap, nothing after the
        // last. (Empty tensors occupy no bytes.)
        let ranges = entries.filter { !$0.value.dataOffsets.isEmpty }
            .sorted { ($0.value.dataOffsets.lowerBound, $0.key) < ($1.value.dataOffsets.lowerBound, $1.key) }
        var covered = 0
        var previous: (name: String, range: Range<Int>)?
        for (name, info) in ranges {
            let r = info.dataOffsets
            if let previous, r.lowerBound < covered {
                throw fail(name, "tensors '\(previous.name)' [\(previous.range.lowerBound), \(previous.range.upperBound)] and "
                    + "'\(name)' [\(r.lowerBound), \(r.upperBound)] overlap")
            }
            guard r.lowerBound == covered else {
                let after = previous.map { "after '\($0.name)', which ends at \($0.range.upperBound)" } ?? "at the start of the data buffer"
                throw fail(name, "tensor '\(name)' has data_offsets [\(r.lowerBound), \(r.upperBound)]: bytes [\(covered), "
                    + "\(r.lowerBound)) \(after) belong to no tensor (expected the tensors to cover the data buffer without gaps)")
            }
            covered = r.upperBound
            previous = (name, r)
        }
        guard covered == dataLength else {
            let last = previous.map { ", after '\($0.name)' [\($0.range.lowerBound), \($0.range.upperBound)]" } ?? ""
            throw fail(nil, "the data buffer is \(dataLength) bytes but its tensors cover [0, \(covered)): "
                + "\(dataLength - covered) trailing byte\(dataLength - covered == 1 ? "" : "s") at data offset \(covered)\(last) "
                + "belong to no tensor (expected the tensors to cover the data buffer exactly)")
        }
        return (n, metadata, entries)
    }

    private static func parseEntry(_ name: String, _ value: JSONValue, dataLength: Int,
                                   fail: (String?, String) -> FileFormatError) throws -> SafetensorsTensorInfo {
        guard case .object(let fields) = value else {
            throw fail(name, "tensor '\(name)': entry is \(value.kind), expected an object with dtype, shape and data_offsets")
        }
        guard let dtypeValue = fields["dtype"] else { throw fail(name, "tensor '\(name)' has no 'dtype'") }
        guard case .string(let dtypeName) = dtypeValue else {
            throw fail(name, "tensor '\(name)': 'dtype' is \(dtypeValue.kind), expected a string")
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            let known = SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            throw fail(name, "tensor '\(name)' has unknown dtype '\(dtypeName)' (expected one of \(known))")
        }

        guard let shapeValue = fields["shape"] else { throw fail(name, "tensor '\(name)' has no 'shape'") }
        guard case .array(let dims) = shapeValue else {
            throw fail(name, "tensor '\(name)': 'shape' is \(shapeValue.kind), expected an array of non-negative integers")
        }
        var shape: [Int] = []
        for dim in dims {
            guard case .integer(let d) = dim, d >= 0 else {
                throw fail(name, "tensor '\(name)' has shape \(shapeValue.text): expected non-negative integers, found \(dim.text)")
            }
            shape.append(d)
        }

        guard let offsetsValue = fields["data_offsets"] else { throw fail(name, "tensor '\(name)' has no 'data_offsets'") }
        guard case .array(let pair) = offsetsValue, pair.count == 2,
              case .integer(let begin) = pair[0], case .integer(let end) = pair[1], begin >= 0, begin <= end else {
            throw fail(name, "tensor '\(name)' has data_offsets \(offsetsValue.text): expected [begin, end] with 0 ≤ begin ≤ end")
        }
        guard end <= dataLength else {
            throw fail(name, "tensor '\(name)' has data_offsets [\(begin), \(end)] beyond the data buffer of \(dataLength) bytes")
        }

        var bytes = dtype.byteSize
        for d in shape {
            let (product, overflow) = bytes.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw fail(name, "tensor '\(name)' has shape \(shape) of \(dtype.rawValue), too large to address")
            }
            bytes = product
        }
        guard end - begin == bytes else {
            throw fail(name, "tensor '\(name)' has data_offsets [\(begin), \(end)] but shape \(shape) of "
                + "\(dtype.rawValue) needs \(bytes) bytes")
        }
        return SafetensorsTensorInfo(dtype: dtype, shape: shape, dataOffsets: begin..<end)
    }

    /// Why `data` is not JSON. JSONDecoder says only "not valid JSON"; JSONSerialization also says where.
    private static func jsonFailure(_ data: Data, _ error: Error) -> String {
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            if let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String { return detail }
        }
        if case DecodingError.dataCorrupted(let context) = error { return context.debugDescription }
        return String(describing: error)
    }
}

// MARK: - Number formats

/// IEEE 754 half (binary16) bits → Float, exactly. Done by hand rather than through `Float16`, which is missing
/// on macOS x86-64. Subnormals, ±0, ±inf and NaN payloads are preserved.
@inlinable
public func floatFromHalfBits(_ h: UInt16) -> Float {
    let sign = UInt32(h >> 15) << 31
    let exponent = UInt32(h >> 10) & 0x1F
    let mantissa = UInt32(h) & 0x3FF
    switch exponent {
    case 0:
        // Zero or subnormal: mantissa × 2^-24, exact in Float.
        let magnitude = Float(mantissa) * 0x1p-24
        return sign == 0 ? magnitude : -magnitude
    case 0x1F:
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    default:
        return Float(bitPattern: sign | ((exponent + 127 - 15) << 23) | (mantissa << 13))
    }
}

/// bfloat16 bits → Float: bfloat16 is the top half of a float32.
@inlinable
public func floatFromBFloat16Bits(_ b: UInt16) -> Float {
    Float(bitPattern: UInt32(b) << 16)
}

// MARK: - Writer

/// Writes safetensors files: float tensors as F32, integer tensors as I64, names sorted and laid out contiguously
/// in that order, the header padded with spaces to a multiple of 8 bytes (so the data buffer is 8-aligned).
public enum SafetensorsWriter {
    /// Writes `tensors` (F32), `integers` (I64) and `metadata` to `url`, atomically: the bytes go to a
    /// temporary file in the same directory, which is flushed and then renamed over `url`.
    /// Throws `FileFormatError` for a name used twice or named `__metadata__`, an integer entry whose value
    /// count disagrees with its shape, or an I/O failure (the temporary file is removed).
    public static func write(_ tensors: [String: Tensor],
                             integers: [String: (shape: [Int], values: [Int])] = [:],
                             metadata: [String: String] = [:],
                             to url: URL) throws {
        let path = url.path
        func fail(_ key: String?, _ message: String) -> FileFormatError {
            FileFormatError(path: path, key: key, message: message)
        }

        for name in integers.keys where tensors[name] != nil {
            throw fail(name, "tensor '\(name)' is given both as a float tensor and as an integer tensor")
        }
        for (name, entry) in integers {
            guard entry.shape.allSatisfy({ $0 >= 0 }) else {
                throw fail(name, "integer tensor '\(name)' has shape \(entry.shape): expected non-negative dimensions")
            }
            guard entry.shape.reduce(1, *) == entry.values.count else {
                throw fail(name, "integer tensor '\(name)' has shape \(entry.shape) (\(entry.shape.reduce(1, *)) values) "
                    + "but \(entry.values.count) values")
            }
        }
        let names = (Array(tensors.keys) + Array(integers.keys)).sorted()
        if names.contains("__metadata__") {
            throw fail("__metadata__", "'__metadata__' is reserved for the metadata and cannot name a tensor")
        }

        // Header: {"__metadata__":{…},"name":{"dtype":…,"shape":[…],"data_offsets":[b,e]},…}
        var entriesJSON: [String] = []
        if !metadata.isEmpty {
            let fields = metadata.keys.sorted().map { "\(JSON.quote($0)):\(JSON.quote(metadata[$0]!))" }
            entriesJSON.append("\"__metadata__\":{\(fields.joined(separator: ","))}")
        }
        var offset = 0
        for name in names {
            let (dtype, shape, count) = tensors[name].map { ("F32", $0.shape, $0.count * 4) }
                ?? integers[name].map { ("I64", $0.shape, $0.values.count * 8) }!
            let shapeJSON = shape.map(String.init).joined(separator: ",")
            entriesJSON.append("\(JSON.quote(name)):{\"dtype\":\"\(dtype)\",\"shape\":[\(shapeJSON)],"
                + "\"data_offsets\":[\(offset),\(offset + count)]}")
            offset += count
        }
        var header = Array("{\(entriesJSON.joined(separator: ","))}".utf8)
        header += [UInt8](repeating: UInt8(ascii: " "), count: (8 - header.count % 8) % 8)

        let directory = url.deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
        let fd = temporary.withUnsafeFileSystemRepresentation { name -> Int32 in
            guard let name else { return -1 }
            return open(name, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        }
        guard fd >= 0 else {
            throw fail(nil, "cannot create temporary file \(temporary.path): \(lastErrorText())")
        }
        var closed = false
        var renamed = false
        defer {
            if !closed { close(fd) }
            if !renamed { _ = temporary.withUnsafeFileSystemRepresentation { $0.map { unlink($0) } } }
        }

        func put(_ bytes: UnsafeRawBufferPointer, _ what: String) throws {
            var done = 0
            while done < bytes.count {
                let n = posixWrite(fd, bytes.baseAddress! + done, bytes.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw fail(nil, "cannot write \(what) to \(temporary.path): \(lastErrorText())")
                }
                done += n
            }
        }

        var lengthPrefix = UInt64(header.count).littleEndian
        try withUnsafeBytes(of: &lengthPrefix) { try put($0, "the header length") }
        try header.withUnsafeBytes { try put($0, "the header") }
        for name in names {
            if let tensor = tensors[name] {
                #if _endian(little)
                try tensor.scalars.withUnsafeBytes { try put($0, "tensor '\(name)'") }
                #else
                let le = tensor.scalars.map { $0.bitPattern.littleEndian }
                try le.withUnsafeBytes { try put($0, "tensor '\(name)'") }
                #endif
            } else {
                let le = integers[name]!.values.map { Int64($0).littleEndian }
                try le.withUnsafeBytes { try put($0, "tensor '\(name)'") }
            }
        }

        guard fsync(fd) == 0 else {
            throw fail(nil, "cannot flush \(temporary.path): \(lastErrorText())")
        }
        closed = true
        guard close(fd) == 0 else {
            throw fail(nil, "cannot close \(temporary.path): \(lastErrorText())")
        }
        let status = temporary.withUnsafeFileSystemRepresentation { from in
            url.withUnsafeFileSystemRepresentation { to in
                guard let from, let to else { return Int32(-1) }
                return rename(from, to)
            }
        }
        guard status == 0 else {
            throw fail(nil, "cannot rename \(temporary.path) over the destination: \(lastErrorText())")
        }
        renamed = true
    }
}

/// POSIX `write`, spelled so it does not collide with `SafetensorsWriter.write`.
@inline(__always)
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Darwin)
    return Darwin.write(fd, buffer, count)
    #else
    return Glibc.write(fd, buffer, count)
    #endif
}

/// `strerror(errno)` as a String.
private func lastErrorText() -> String { String(cString: strerror(errno)) }
