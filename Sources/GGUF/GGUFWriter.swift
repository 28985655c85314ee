// GGUFWriter: GGUF v3 files with float32 tensors.

import Foundation
import Formats
import Tensor

/// Writes GGUF version 3 files: the metadata in the given order, then the tensor infos, then each tensor's data
/// as F32, aligned to `general.alignment` (32). A tensor's GGUF dimensions are its shape reversed (ggml order), as
/// `GGUFFile.tensor` reads them back.
public enum GGUFWriter {
    public static let alignment = 32

    /// Writes `metadata` and `tensors` to `url` (replacing it). Throws `FileFormatError` for a key or tensor name
    /// used twice, a tensor of rank 0 or above 4, or an I/O failure.
    public static func write(metadata: [(key: String, value: GGUFValue)], tensors: [(name: String, tensor: Tensor)],
                             to url: URL) throws {
        func fail(_ message: String) -> FileFormatError { FileFormatError(path: url.path, message: message) }
        var keys = Set<String>(), names = Set<String>()
        for (key, _) in metadata where !keys.insert(key).inserted { throw fail("metadata key \(key) given twice") }
        var out = Data()
        out.append(contentsOf: Array("GGUF".utf8))
        append(UInt32(3), to: &out)
        append(UInt64(tensors.count), to: &out)
        append(UInt64(metadata.count), to: &out)
        for (key, value) in metadata {
            append(string: key, to: &out)
            append(value.type.rawValue, to: &out)
            append(value, to: &out)
        }
        var offset = 0
        for (name, t) in tensors {
            guard names.insert(name).inserted else { throw fail("tensor \(name) given twice") }
            guard (1...GGUFFile.maxDimensions).contains(t.rank) else { throw fail("tensor \(name) has rank \(t.rank); expected 1…4") }
            append(string: name, to: &out)
            append(UInt32(t.rank), to: &out)
            for d in t.shape.reversed() { append(UInt64(d), to: &out) }
            append(GGMLType.f32.rawValue, to: &out)
            append(UInt64(offset), to: &out)
            offset += padded(t.count * 4)
        }
        out.append(contentsOf: [UInt8](repeating: 0, count: padded(out.count) - out.count))
        for (_, t) in tensors {
            t.scalars.withUnsafeBytes { out.append(contentsOf: $0) }  // little-endian hosts only, as the reader
            out.append(contentsOf: [UInt8](repeating: 0, count: padded(t.count * 4) - t.count * 4))
        }
        do { try out.write(to: url, options: .atomic) } catch {
            throw fail("cannot write the file: \(error.localizedDescription)")
        }
    }

    private static func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    private static func append<T: FixedWidthInteger>(_ x: T, to out: inout Data) {
        withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
    }

    private static func append(string s: String, to out: inout Data) {
        let bytes = Array(s.utf8)
        append(UInt64(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }

    private static func append(_ value: GGUFValue, to out: inout Data) {
        switch value {
        case .uint8(let x): append(x, to: &out)
        case .int8(let x): append(x, to: &out)
        case .uint16(let x): append(x, to: &out)
        case .int16(let x): append(x, to: &out)
        case .uint32(let x): append(x, to: &out)
        case .int32(let x): append(x, to: &out)
        case .uint64(let x): append(x, to: &out)
        case .int64(let x): append(x, to: &out)
        case .float32(let x): append(x.bitPattern, to: &out)
        case .float64(let x): append(x.bitPattern, to: &out)
        case .bool(let b): out.append(b ? 1 : 0)
        case .string(let s): append(string: s, to: &out)
        case .array(let type, let values):
            append(type.rawValue, to: &out)
            append(UInt64(values.count), to: &out)
            for v in values { append(v, to: &out) }
        }
    }
}
