// GGMLType: the element types of GGUF tensors, their block layouts, and dequantisation to float32.
//
// A quantised type stores blocks of `blockSize` consecutive elements (along the first GGUF dimension, which is the
// last row-major one) in `blockBytes` bytes. The layouts read here, all little-endian:
//   Q8_0  (32 elements, 34 bytes): f16 d, 32 × int8 q            x = d·q
//   Q4_0  (32 elements, 18 bytes): f16 d, 16 bytes of nibbles    x = d·(q − 8)
//   Q4_1  (32 elements, 20 bytes): f16 d, f16 m, 16 bytes        x = d·q + m
// where byte j of the nibbles holds element j in its low four bits and element j + 16 in its high four bits. The
// K-quants group 256 elements in sub-blocks, each with its own 6- or 8-bit scale:
//   Q4_K (256 elements, 144 bytes): f16 d, f16 dmin, 12 bytes of eight 6-bit scales and mins, 128 bytes of nibbles;
//         sub-block s (32 elements) is x = (d·scale_s)·q − dmin·min_s; bytes 32c…32c+31 hold sub-block 2c in their
//         low nibbles and 2c + 1 in their high ones
//   Q6_K (256 elements, 210 bytes): 128 bytes of low nibbles, 64 bytes of high bit pairs, 16 int8 scales, f16 d;
//         x = (d·scale_{e/16})·(q − 32), q six bits (see `dequantizeQ6K`)

import Tensor

/// A GGML tensor element type; the raw value is the file's `ggml_type` code. Every type of the current format is
/// known (so `cofi inspect` can size any file's tensors); `isDequantizable` says which ones `GGUFFile.tensor` reads.
public enum GGMLType: UInt32, CaseIterable, Sendable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq2_XXS = 16, iq2_XS = 17, iq3_XXS = 18, iq1_S = 19, iq4_NL = 20, iq3_S = 21, iq2_S = 22, iq4_XS = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_M = 29, bf16 = 30
    case tq1_0 = 34, tq2_0 = 35, mxfp4 = 39

    /// The name llama.cpp and the `gguf` package print (`F32`, `Q4_1`, `Q6_K`, …).
    public var name: String { String(describing: self).uppercased() }

    /// Elements per block (1 for the plain types).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16, .f64, .i8, .i16, .i32, .i64: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_NL, .mxfp4: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K, .iq2_XXS, .iq2_XS, .iq3_XXS, .iq1_S, .iq3_S, .iq2_S, .iq4_XS,
             .iq1_M, .tq1_0, .tq2_0: return 256
        }
    }

    /// Bytes per block (ggml's `type_size`).
    public var blockBytes: Int {
        switch self {
        case .i8: return 1
        case .f16, .bf16, .i16: return 2
        case .f32, .i32: return 4
        case .f64, .i64: return 8
        case .q4_0: return 18
        case .q4_1: return 20
        case .q5_0: return 22
        case .q5_1: return 24
        case .q8_0: return 34
        case .q8_1: return 36
        case .iq4_NL: return 18
        case .mxfp4: return 17
        case .q2_K: return 84
        case .q3_K: return 110
        case .q4_K: return 144
        case .q5_K: return 176
        case .q6_K: return 210
        case .q8_K: return 292
        case .iq2_XXS: return 66
        case .iq2_XS: return 74
        case .iq3_XXS: return 98
        case .iq1_S: return 50
        case .iq3_S: return 110
        case .iq2_S: return 82
        case .iq4_XS: return 136
        case .iq1_M: return 56
        case .tq1_0: return 54
        case .tq2_0: return 66
        }
    }

    /// Whether `GGUFFile.tensor` dequantises this type to float32.
    public var isDequantizable: Bool {
        switch self {
        case .f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q4_K, .q6_K: return true
        default: return false
        }
    }

    /// Bytes that `count` elements occupy; nil when `count` is not a whole number of blocks or the size overflows.
    public func byteCount(elements count: Int) -> Int? {
        guard count >= 0, count % blockSize == 0 else { return nil }
        let (bytes, overflow) = (count / blockSize).multipliedReportingOverflow(by: blockBytes)
        return overflow ? nil : bytes
    }

    /// Writes the `dst.count` elements stored in `src` (exactly `byteCount(elements: dst.count)` bytes) as float32.
    /// The type must be dequantisable (`isDequantizable`); the caller checked the sizes.
    func dequantize(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>) {
        func half(_ offset: Int) -> Float {
            floatFromHalfBits(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
        }
        let blocks = dst.count / blockSize
        switch self {
        case .f32:
            for i in 0..<dst.count {
                dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        case .f16:
            for i in 0..<dst.count { dst[i] = half(2 * i) }
        case .bf16:
            for i in 0..<dst.count {
                dst[i] = floatFromBFloat16Bits(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .q8_0:
            for b in 0..<blocks {
                let base = b * 34, d = half(base)
                for j in 0..<32 { dst[32 * b + j] = d * Float(Int8(bitPattern: src[base + 2 + j])) }
            }
        case .q4_0:
            for b in 0..<blocks {
                let base = b * 18, d = half(base)
                for j in 0..<16 {
                    let q = src[base + 2 + j]
                    dst[32 * b + j] = d * Float(Int(q & 0x0F) - 8)
                    dst[32 * b + j + 16] = d * Float(Int(q >> 4) - 8)
                }
            }
        case .q4_1:
            for b in 0..<blocks {
                let base = b * 20, d = half(base), m = half(base + 2)
                for j in 0..<16 {
                    let q = src[base + 4 + j]
                    dst[32 * b + j] = d * Float(q & 0x0F) + m
                    dst[32 * b + j + 16] = d * Float(q >> 4) + m
                }
            }
        case .q4_K:
            for b in 0..<blocks { Self.dequantizeQ4K(src, block: b, into: dst) }
        case .q6_K:
            for b in 0..<blocks { Self.dequantizeQ6K(src, block: b, into: dst) }
        default:
            preconditionFailure("GGMLType.dequantize: \(name) is not dequantisable; GGUFFile.tensor checks first")
        }
    }

    /// One Q4_K block. The 6-bit scale and min of sub-block j: for j < 4 the low six bits of bytes j and j + 4;
    /// for j ≥ 4 the low (scale) or high (min) nibble of byte j + 4 with the top two bits of byte j − 4 (scale)
    /// or j (min) above it.
    static func dequantizeQ4K(_ src: UnsafeRawBufferPointer, block b: Int, into dst: UnsafeMutableBufferPointer<Float>) {
        let base = b * 144
        let d = floatFromHalfBits(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: base, as: UInt16.self)))
        let dmin = floatFromHalfBits(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: base + 2, as: UInt16.self)))
        func scales(_ i: Int) -> UInt8 { src[base + 4 + i] }
        for j in 0..<8 {
            let scale: UInt8, minimum: UInt8
            if j < 4 {
                scale = scales(j) & 63
                minimum = scales(j + 4) & 63
            } else {
                scale = (scales(j + 4) & 0x0F) | ((scales(j - 4) >> 6) << 4)
                minimum = (scales(j + 4) >> 4) | ((scales(j) >> 6) << 4)
            }
            let dj = d * Float(scale), mj = dmin * Float(minimum)
            let quants = base + 16 + 32 * (j / 2), shift: UInt8 = j % 2 == 0 ? 0 : 4
            for l in 0..<32 { dst[256 * b + 32 * j + l] = dj * Float((src[quants + l] >> shift) & 0x0F) - mj }
        }
    }

    /// One Q6_K block. In each half h of 128 elements, element e takes its low four bits from byte 64h + e % 64 of
    /// the low nibbles (the low nibble for e < 64, the high one above) and its top two bits from byte 32h + e % 32
    /// of the bit pairs (bits 2·(e / 32) and up).
    static func dequantizeQ6K(_ src: UnsafeRawBufferPointer, block b: Int, into dst: UnsafeMutableBufferPointer<Float>) {
        let base = b * 210
        let d = floatFromHalfBits(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: base + 208, as: UInt16.self)))
        for i in 0..<256 {
            let h = i / 128, e = i % 128
            let low = (src[base + 64 * h + e % 64] >> (e < 64 ? 0 : 4)) & 0x0F
            let high = (src[base + 128 + 32 * h + e % 32] >> (2 * (e / 32))) & 0x03
            let scale = Float(Int8(bitPattern: src[base + 192 + i / 16]))
            dst[256 * b + i] = (d * scale) * Float(Int(low | high << 4) - 32)
        }
    }
}
