// GGUFValue: one metadata value of a GGUF file, as the file types it.

/// The value types a GGUF metadata entry may have; the raw value is the file's `gguf_type` code.
public enum GGUFValueType: UInt32, CaseIterable, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7, string = 8,
         array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// The spelling the format's specification uses (`UINT32`, `ARRAY`, …), for messages and `cofi inspect`.
    public var name: String { String(describing: self).uppercased() }

    /// The fewest bytes one value of this type occupies in the file: what bounds an array's count before anything
    /// is allocated for it (a string is its 8-byte length at least, an array its type and count).
    var minimumByteSize: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64, .string: return 8
        case .array: return 12
        }
    }
}

/// One metadata value, typed as the file stores it (an array keeps its element type, so an empty array is typed).
public enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    case array(GGUFValueType, [GGUFValue])

    /// The value's type code.
    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .uint64: return .uint64
        case .int64: return .int64
        case .float32: return .float32
        case .float64: return .float64
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        }
    }

    /// An integer of any width as `Int`; nil for other types and for a UInt64 beyond `Int.max`.
    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// A float32 or float64 as `Double`; nil otherwise.
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return nil
        }
    }

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The elements of an array; nil otherwise.
    public var array: [GGUFValue]? {
        if case .array(_, let elements) = self { return elements }
        return nil
    }

    /// A short rendering for summaries: scalars as written, strings quoted and cut at `limit` characters, arrays as
    /// their element type and count with the first few elements.
    public func summary(limit: Int = 60) -> String {
        func cut(_ s: String) -> String {
            let escaped = s.unicodeScalars.map { $0.value < 0x20 ? $0.escaped(asASCII: true) : String($0) }.joined()
            return escaped.count > limit ? "\"\(escaped.prefix(limit))…\"" : "\"\(escaped)\""
        }
        switch self {
        case .uint8(let v): return "\(v)"
        case .int8(let v): return "\(v)"
        case .uint16(let v): return "\(v)"
        case .int16(let v): return "\(v)"
        case .uint32(let v): return "\(v)"
        case .int32(let v): return "\(v)"
        case .uint64(let v): return "\(v)"
        case .int64(let v): return "\(v)"
        case .float32(let v): return "\(v)"
        case .float64(let v): return "\(v)"
        case .bool(let v): return "\(v)"
        case .string(let s): return cut(s)
        case .array(let type, let elements):
            let shown = elements.prefix(4).map { $0.summary(limit: 20) }.joined(separator: ", ")
            return "[\(type.name) × \(elements.count)] [\(shown)\(elements.count > 4 ? ", …" : "")]"
        }
    }
}
