/// The register tiles of the packed matrix product, as source that each kernel-family module compiles itself (this
/// file is a symbolic link in `GEMMAVX512`, `GEMMAVX2`, `GEMMNEON` and `GEMMGeneric`), so each tile's code is
/// generated with that module's instruction-set flags; `Family.swift` is the module's entry point.
///
/// The shared contract (see `PackedGEMM`): W is packed in column panels of 32 outputs, each k rows of 32 floats.
/// A is read in place: element (r, kk) at a + r · rowStep + kk · depthStep (rowStep = lda, depthStep = 1 for a
/// row-major A; rowStep = 1, depthStep = lda for the transpose of a row-major [k, m], which is then never copied).
/// C[r, j] = Σ_kk A[r, kk] · W[j, kk] (+ C when `accumulate`) (+ bias[j]). Every output is one fused multiply-add
/// chain over k in order from 0, then C, then the bias — in every tile shape — so every family gives the same bits,
/// and a row's result does not depend on the rows it ran with. With `continuing`, each chain starts from the value
/// already in C (a partial sum of earlier depth blocks, written by the same kernels) instead of 0, so a product
/// split along k gives the bits of the unsplit one; `accumulate` is not used with it.
enum Tiles {
    typealias V16 = SIMD16<Float>
    typealias V8 = SIMD8<Float>

    @inline(__always)
    static func load16(_ p: UnsafePointer<Float>) -> V16 { UnsafeRawPointer(p).loadUnaligned(as: V16.self) }

    @inline(__always)
    static func load8(_ p: UnsafePointer<Float>) -> V8 { UnsafeRawPointer(p).loadUnaligned(as: V8.self) }

    /// The first `outputs` (1…32) floats at `c` as two 16-lane vectors, zero past them: a partial chain to continue.
    @inline(__always)
    static func load16x2(_ c: UnsafeMutablePointer<Float>, outputs: Int) -> (V16, V16) {
        if outputs == 32 { return (load16(c), load16(c + 16)) }
        var x0 = V16(), x1 = V16()
        for j in 0..<outputs { if j < 16 { x0[j] = c[j] } else { x1[j - 16] = c[j] } }
        return (x0, x1)
    }

    /// The first `outputs` (1…16) floats at `c` as two 8-lane vectors, zero past them.
    @inline(__always)
    static func load8x2(_ c: UnsafeMutablePointer<Float>, outputs: Int) -> (V8, V8) {
        if outputs == 16 { return (load8(c), load8(c + 8)) }
        var x0 = V8(), x1 = V8()
        for j in 0..<outputs { if j < 8 { x0[j] = c[j] } else { x1[j - 8] = c[j] } }
        return (x0, x1)
    }

    // MARK: 16-lane vectors: an 8 × 32 tile in sixteen registers (AVX-512's 32 zmm)

    /// C[m, n] for n outputs packed at `panels`, with 16-lane vectors: 8 × 32 tiles (two vectors per row), and
    /// one row against up to four panels at once.
    @inline(__always)
    static func multiply16(_ a: UnsafePointer<Float>, rowStep: Int, depthStep: Int, m: Int, panels: UnsafePointer<Float>, k: Int,
                                  n: Int, bias: UnsafePointer<Float>?, accumulate: Bool, continuing: Bool,
                                  into c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m <= 0 { return }
        if m == 1 {
            var j = 0
            while j < n {
                let count = min(4, (n - j + 31) / 32)
                let lastOutputs = min(32, n - j - (count - 1) * 32)
                row16(a, depthStep: depthStep, b: panels + j * k, k: k, panels: count, c: c + j, lastOutputs: lastOutputs,
                      bias: bias.map { $0 + j }, accumulate: accumulate, continuing: continuing)
                j += count * 32
            }
            return
        }
        var j = 0
        while j < n {
            let b = panels + j * k, outputs = min(32, n - j)
            var r = 0
            while r < m {
                tile8x32(a + r * rowStep, rowStep: rowStep, depthStep: depthStep, rows: min(8, m - r), b: b, k: k, c: c + r * ldc + j, ldc: ldc,
                         outputs: outputs, bias: bias.map { $0 + j }, accumulate: accumulate, continuing: continuing)
                r += 8
            }
            j += 32
        }
    }

    /// Stores `v0 | v1` (32 values, plus C when `accumulate`, plus the bias when given) to the first `outputs`
    /// floats at `c`.
    @inline(__always)
    static func store16(_ v0: V16, _ v1: V16, to c: UnsafeMutablePointer<Float>, outputs: Int,
                        bias: UnsafePointer<Float>?, accumulate: Bool) {
        var x0 = v0, x1 = v1
        if outputs == 32 {
            if accumulate { x0 += load16(c); x1 += load16(c + 16) }
            if let bias { x0 += load16(bias); x1 += load16(bias + 16) }
            UnsafeMutableRawPointer(c).storeBytes(of: x0, as: V16.self)
            UnsafeMutableRawPointer(c + 16).storeBytes(of: x1, as: V16.self)
            return
        }
        for j in 0..<outputs {
            var x = j < 16 ? x0[j] : x1[j - 16]
            if accumulate { x += c[j] }
            if let bias { x += bias[j] }
            c[j] = x
        }
    }

    /// One 8 × 32 tile (rows 1…8 valid; rows past them repeat the last and are not stored) over the whole of k.
    @inline(__always)
    static func tile8x32(_ a: UnsafePointer<Float>, rowStep: Int, depthStep: Int, rows: Int, b: UnsafePointer<Float>, k: Int,
                         c: UnsafeMutablePointer<Float>, ldc: Int, outputs: Int, bias: UnsafePointer<Float>?,
                         accumulate: Bool, continuing: Bool) {
        let last = rows - 1
        let a0 = a, a1 = a + min(1, last) * rowStep, a2 = a + min(2, last) * rowStep, a3 = a + min(3, last) * rowStep
        let a4 = a + min(4, last) * rowStep, a5 = a + min(5, last) * rowStep, a6 = a + min(6, last) * rowStep
        let a7 = a + min(7, last) * rowStep
        var c00 = V16(), c01 = V16(), c10 = V16(), c11 = V16(), c20 = V16(), c21 = V16(), c30 = V16(), c31 = V16()
        var c40 = V16(), c41 = V16(), c50 = V16(), c51 = V16(), c60 = V16(), c61 = V16(), c70 = V16(), c71 = V16()
        if continuing {
            (c00, c01) = load16x2(c, outputs: outputs); (c10, c11) = load16x2(c + min(1, last) * ldc, outputs: outputs)
            (c20, c21) = load16x2(c + min(2, last) * ldc, outputs: outputs)
            (c30, c31) = load16x2(c + min(3, last) * ldc, outputs: outputs)
            (c40, c41) = load16x2(c + min(4, last) * ldc, outputs: outputs)
            (c50, c51) = load16x2(c + min(5, last) * ldc, outputs: outputs)
            (c60, c61) = load16x2(c + min(6, last) * ldc, outputs: outputs)
            (c70, c71) = load16x2(c + min(7, last) * ldc, outputs: outputs)
        }
        var bp = b
        for kk in 0..<k {
            let o = kk &* depthStep, b0 = load16(bp), b1 = load16(bp + 16)
            var x = V16(repeating: a0[o]); c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
            x = V16(repeating: a1[o]); c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
            x = V16(repeating: a2[o]); c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
            x = V16(repeating: a3[o]); c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
            x = V16(repeating: a4[o]); c40 = c40.addingProduct(x, b0); c41 = c41.addingProduct(x, b1)
            x = V16(repeating: a5[o]); c50 = c50.addingProduct(x, b0); c51 = c51.addingProduct(x, b1)
            x = V16(repeating: a6[o]); c60 = c60.addingProduct(x, b0); c61 = c61.addingProduct(x, b1)
            x = V16(repeating: a7[o]); c70 = c70.addingProduct(x, b0); c71 = c71.addingProduct(x, b1)
            bp += 32
        }
        store16(c00, c01, to: c, outputs: outputs, bias: bias, accumulate: accumulate)
        if rows > 1 { store16(c10, c11, to: c + ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 2 { store16(c20, c21, to: c + 2 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 3 { store16(c30, c31, to: c + 3 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 4 { store16(c40, c41, to: c + 4 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 5 { store16(c50, c51, to: c + 5 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 6 { store16(c60, c61, to: c + 6 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 7 { store16(c70, c71, to: c + 7 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
    }

    /// One row against `count` (1…4) consecutive panels, the last with `lastOutputs` outputs: eight accumulators.
    @inline(__always)
    static func row16(_ a: UnsafePointer<Float>, depthStep: Int, b: UnsafePointer<Float>, k: Int, panels count: Int,
                      c: UnsafeMutablePointer<Float>, lastOutputs: Int, bias: UnsafePointer<Float>?, accumulate: Bool, continuing: Bool) {
        let stride = k * 32
        let p0 = b, p1 = b + min(1, count - 1) * stride, p2 = b + min(2, count - 1) * stride
        let p3 = b + min(3, count - 1) * stride
        var s0 = V16(), s1 = V16(), t0 = V16(), t1 = V16(), u0 = V16(), u1 = V16(), v0 = V16(), v1 = V16()
        if continuing {
            let last = count - 1
            (s0, s1) = load16x2(c, outputs: last == 0 ? lastOutputs : 32)
            if count > 1 { (t0, t1) = load16x2(c + 32, outputs: last == 1 ? lastOutputs : 32) }
            if count > 2 { (u0, u1) = load16x2(c + 64, outputs: last == 2 ? lastOutputs : 32) }
            if count > 3 { (v0, v1) = load16x2(c + 96, outputs: last == 3 ? lastOutputs : 32) }
        }
        for kk in 0..<k {
            let x = V16(repeating: a[kk * depthStep]), o = kk * 32
            s0 = s0.addingProduct(x, load16(p0 + o)); s1 = s1.addingProduct(x, load16(p0 + o + 16))
            t0 = t0.addingProduct(x, load16(p1 + o)); t1 = t1.addingProduct(x, load16(p1 + o + 16))
            u0 = u0.addingProduct(x, load16(p2 + o)); u1 = u1.addingProduct(x, load16(p2 + o + 16))
            v0 = v0.addingProduct(x, load16(p3 + o)); v1 = v1.addingProduct(x, load16(p3 + o + 16))
        }
        let last = count - 1
        store16(s0, s1, to: c, outputs: last == 0 ? lastOutputs : 32, bias: bias, accumulate: accumulate)
        if count > 1 {
            store16(t0, t1, to: c + 32, outputs: last == 1 ? lastOutputs : 32, bias: bias.map { $0 + 32 },
                    accumulate: accumulate)
        }
        if count > 2 {
            store16(u0, u1, to: c + 64, outputs: last == 2 ? lastOutputs : 32, bias: bias.map { $0 + 64 },
                    accumulate: accumulate)
        }
        if count > 3 {
            store16(v0, v1, to: c + 96, outputs: last == 3 ? lastOutputs : 32, bias: bias.map { $0 + 96 },
                    accumulate: accumulate)
        }
    }

    // MARK: 8-lane vectors: a 6 × 16 tile in twelve registers (AVX2's 16 ymm; 24 of NEON's 32 q registers)

    /// C[m, n] with 8-lane vectors: each 32-output panel runs as two halves of 16 (two vectors per row), in 6 × 16
    /// tiles whose twelve accumulators leave room for the two panel vectors and a broadcast in 16 registers; one
    /// row runs against up to three panels (twelve accumulators).
    @inline(__always)
    static func multiply8(_ a: UnsafePointer<Float>, rowStep: Int, depthStep: Int, m: Int, panels: UnsafePointer<Float>, k: Int,
                                 n: Int, bias: UnsafePointer<Float>?, accumulate: Bool, continuing: Bool,
                                 into c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m <= 0 { return }
        if m == 1 {
            var j = 0
            while j < n {
                let count = min(3, (n - j + 31) / 32)
                let lastOutputs = min(32, n - j - (count - 1) * 32)
                row8(a, depthStep: depthStep, b: panels + j * k, k: k, panels: count, c: c + j, lastOutputs: lastOutputs,
                     bias: bias.map { $0 + j }, accumulate: accumulate, continuing: continuing)
                j += count * 32
            }
            return
        }
        var j = 0
        while j < n {
            let b = panels + j * k, outputs = min(32, n - j)
            var r = 0
            while r < m {
                let rows = min(6, m - r)
                tile6x16(a + r * rowStep, rowStep: rowStep, depthStep: depthStep, rows: rows, b: b, k: k, c: c + r * ldc + j, ldc: ldc,
                         outputs: min(16, outputs), bias: bias.map { $0 + j }, accumulate: accumulate, continuing: continuing)
                if outputs > 16 {
                    tile6x16(a + r * rowStep, rowStep: rowStep, depthStep: depthStep, rows: rows, b: b + 16, k: k, c: c + r * ldc + j + 16, ldc: ldc,
                             outputs: outputs - 16, bias: bias.map { $0 + j + 16 }, accumulate: accumulate, continuing: continuing)
                }
                r += 6
            }
            j += 32
        }
    }

    /// Stores `v0 | v1` (16 values, plus C when `accumulate`, plus the bias) to the first `outputs` floats at `c`.
    @inline(__always)
    static func store8(_ v0: V8, _ v1: V8, to c: UnsafeMutablePointer<Float>, outputs: Int,
                       bias: UnsafePointer<Float>?, accumulate: Bool) {
        var x0 = v0, x1 = v1
        if outputs == 16 {
            if accumulate { x0 += load8(c); x1 += load8(c + 8) }
            if let bias { x0 += load8(bias); x1 += load8(bias + 8) }
            UnsafeMutableRawPointer(c).storeBytes(of: x0, as: V8.self)
            UnsafeMutableRawPointer(c + 8).storeBytes(of: x1, as: V8.self)
            return
        }
        for j in 0..<outputs {
            var x = j < 8 ? x0[j] : x1[j - 8]
            if accumulate { x += c[j] }
            if let bias { x += bias[j] }
            c[j] = x
        }
    }

    /// One 6 × 16 tile (rows 1…6 valid) of a half panel at `b` (stride 32 floats per k) over the whole of k.
    @inline(__always)
    static func tile6x16(_ a: UnsafePointer<Float>, rowStep: Int, depthStep: Int, rows: Int, b: UnsafePointer<Float>, k: Int,
                         c: UnsafeMutablePointer<Float>, ldc: Int, outputs: Int, bias: UnsafePointer<Float>?,
                         accumulate: Bool, continuing: Bool) {
        let last = rows - 1
        let a0 = a, a1 = a + min(1, last) * rowStep, a2 = a + min(2, last) * rowStep, a3 = a + min(3, last) * rowStep
        let a4 = a + min(4, last) * rowStep, a5 = a + min(5, last) * rowStep
        var c00 = V8(), c01 = V8(), c10 = V8(), c11 = V8(), c20 = V8(), c21 = V8()
        var c30 = V8(), c31 = V8(), c40 = V8(), c41 = V8(), c50 = V8(), c51 = V8()
        if continuing {
            (c00, c01) = load8x2(c, outputs: outputs); (c10, c11) = load8x2(c + min(1, last) * ldc, outputs: outputs)
            (c20, c21) = load8x2(c + min(2, last) * ldc, outputs: outputs)
            (c30, c31) = load8x2(c + min(3, last) * ldc, outputs: outputs)
            (c40, c41) = load8x2(c + min(4, last) * ldc, outputs: outputs)
            (c50, c51) = load8x2(c + min(5, last) * ldc, outputs: outputs)
        }
        var bp = b
        for kk in 0..<k {
            let o = kk &* depthStep, b0 = load8(bp), b1 = load8(bp + 8)
            var x = V8(repeating: a0[o]); c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
            x = V8(repeating: a1[o]); c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
            x = V8(repeating: a2[o]); c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
            x = V8(repeating: a3[o]); c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
            x = V8(repeating: a4[o]); c40 = c40.addingProduct(x, b0); c41 = c41.addingProduct(x, b1)
            x = V8(repeating: a5[o]); c50 = c50.addingProduct(x, b0); c51 = c51.addingProduct(x, b1)
            bp += 32
        }
        store8(c00, c01, to: c, outputs: outputs, bias: bias, accumulate: accumulate)
        if rows > 1 { store8(c10, c11, to: c + ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 2 { store8(c20, c21, to: c + 2 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 3 { store8(c30, c31, to: c + 3 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 4 { store8(c40, c41, to: c + 4 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 5 { store8(c50, c51, to: c + 5 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
    }

    /// One row against `count` (1…3) consecutive panels (four 8-lane vectors each), the last with `lastOutputs`.
    @inline(__always)
    static func row8(_ a: UnsafePointer<Float>, depthStep: Int, b: UnsafePointer<Float>, k: Int, panels count: Int,
                     c: UnsafeMutablePointer<Float>, lastOutputs: Int, bias: UnsafePointer<Float>?, accumulate: Bool, continuing: Bool) {
        let stride = k * 32
        let p0 = b, p1 = b + min(1, count - 1) * stride, p2 = b + min(2, count - 1) * stride
        var s0 = V8(), s1 = V8(), s2 = V8(), s3 = V8(), t0 = V8(), t1 = V8(), t2 = V8(), t3 = V8()
        var u0 = V8(), u1 = V8(), u2 = V8(), u3 = V8()
        if continuing {
            func load32(_ c: UnsafeMutablePointer<Float>, _ outputs: Int) -> (V8, V8, V8, V8) {
                let (x0, x1) = load8x2(c, outputs: min(16, outputs))
                let (x2, x3) = outputs > 16 ? load8x2(c + 16, outputs: outputs - 16) : (V8(), V8())
                return (x0, x1, x2, x3)
            }
            let last = count - 1
            (s0, s1, s2, s3) = load32(c, last == 0 ? lastOutputs : 32)
            if count > 1 { (t0, t1, t2, t3) = load32(c + 32, last == 1 ? lastOutputs : 32) }
            if count > 2 { (u0, u1, u2, u3) = load32(c + 64, last == 2 ? lastOutputs : 32) }
        }
        for kk in 0..<k {
            let x = V8(repeating: a[kk * depthStep]), o = kk * 32
            s0 = s0.addingProduct(x, load8(p0 + o)); s1 = s1.addingProduct(x, load8(p0 + o + 8))
            s2 = s2.addingProduct(x, load8(p0 + o + 16)); s3 = s3.addingProduct(x, load8(p0 + o + 24))
            t0 = t0.addingProduct(x, load8(p1 + o)); t1 = t1.addingProduct(x, load8(p1 + o + 8))
            t2 = t2.addingProduct(x, load8(p1 + o + 16)); t3 = t3.addingProduct(x, load8(p1 + o + 24))
            u0 = u0.addingProduct(x, load8(p2 + o)); u1 = u1.addingProduct(x, load8(p2 + o + 8))
            u2 = u2.addingProduct(x, load8(p2 + o + 16)); u3 = u3.addingProduct(x, load8(p2 + o + 24))
        }
        let last = count - 1
        store32(s0, s1, s2, s3, to: c, outputs: last == 0 ? lastOutputs : 32, bias: bias, accumulate: accumulate)
        if count > 1 {
            store32(t0, t1, t2, t3, to: c + 32, outputs: last == 1 ? lastOutputs : 32, bias: bias.map { $0 + 32 },
                    accumulate: accumulate)
        }
        if count > 2 {
            store32(u0, u1, u2, u3, to: c + 64, outputs: last == 2 ? lastOutputs : 32, bias: bias.map { $0 + 64 },
                    accumulate: accumulate)
        }
    }

    /// A panel's 32 values as four 8-lane vectors: two 16-value stores.
    @inline(__always)
    static func store32(_ v0: V8, _ v1: V8, _ v2: V8, _ v3: V8, to c: UnsafeMutablePointer<Float>, outputs: Int,
                        bias: UnsafePointer<Float>?, accumulate: Bool) {
        store8(v0, v1, to: c, outputs: min(16, outputs), bias: bias, accumulate: accumulate)
        if outputs > 16 { store8(v2, v3, to: c + 16, outputs: outputs - 16, bias: bias.map { $0 + 16 }, accumulate: accumulate) }
    }

    // MARK: Portable: a 4 × 16 tile of 8-lane vectors (eight accumulators), for targets without a family of their own

    /// C[m, n] with the portable shape: 4 × 16 tiles over each half panel, and one row against one panel at a time
    /// (four accumulators). Plain Swift SIMD with no assumption about the register file.
    @inline(__always)
    static func multiplyPortable(_ a: UnsafePointer<Float>, rowStep: Int, depthStep: Int, m: Int, panels: UnsafePointer<Float>,
                                        k: Int, n: Int, bias: UnsafePointer<Float>?, accumulate: Bool, continuing: Bool,
                                        into c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m <= 0 { return }
        var j = 0
        while j < n {
            let b = panels + j * k, outputs = min(32, n - j)
            if m == 1 {
                row8(a, depthStep: depthStep, b: b, k: k, panels: 1, c: c + j, lastOutputs: outputs, bias: bias.map { $0 + j },
                     accumulate: accumulate, continuing: continuing)
                j += 32
                continue
            }
            var r = 0
            while r < m {
                let rows = min(4, m - r)
                tile4x16(a + r * rowStep, rowStep: rowStep, depthStep: depthStep, rows: rows, b: b, k: k, c: c + r * ldc + j, ldc: ldc,
                         outputs: min(16, outputs), bias: bias.map { $0 + j }, accumulate: accumulate, continuing: continuing)
                if outputs > 16 {
                    tile4x16(a + r * rowStep, rowStep: rowStep, depthStep: depthStep, rows: rows, b: b + 16, k: k, c: c + r * ldc + j + 16, ldc: ldc,
                             outputs: outputs - 16, bias: bias.map { $0 + j + 16 }, accumulate: accumulate, continuing: continuing)
                }
                r += 4
            }
            j += 32
        }
    }

    /// One 4 × 16 tile (rows 1…4 valid) of a half panel over the whole of k.
    @inline(__always)
    static func tile4x16(_ a: UnsafePointer<Float>, rowStep: Int, depthStep: Int, rows: Int, b: UnsafePointer<Float>, k: Int,
                         c: UnsafeMutablePointer<Float>, ldc: Int, outputs: Int, bias: UnsafePointer<Float>?,
                         accumulate: Bool, continuing: Bool) {
        let last = rows - 1
        let a0 = a, a1 = a + min(1, last) * rowStep, a2 = a + min(2, last) * rowStep, a3 = a + min(3, last) * rowStep
        var c00 = V8(), c01 = V8(), c10 = V8(), c11 = V8(), c20 = V8(), c21 = V8(), c30 = V8(), c31 = V8()
        if continuing {
            (c00, c01) = load8x2(c, outputs: outputs); (c10, c11) = load8x2(c + min(1, last) * ldc, outputs: outputs)
            (c20, c21) = load8x2(c + min(2, last) * ldc, outputs: outputs)
            (c30, c31) = load8x2(c + min(3, last) * ldc, outputs: outputs)
        }
        var bp = b
        for kk in 0..<k {
            let o = kk &* depthStep, b0 = load8(bp), b1 = load8(bp + 8)
            var x = V8(repeating: a0[o]); c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
            x = V8(repeating: a1[o]); c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
            x = V8(repeating: a2[o]); c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
            x = V8(repeating: a3[o]); c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
            bp += 32
        }
        store8(c00, c01, to: c, outputs: outputs, bias: bias, accumulate: accumulate)
        if rows > 1 { store8(c10, c11, to: c + ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 2 { store8(c20, c21, to: c + 2 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
        if rows > 3 { store8(c30, c31, to: c + 3 * ldc, outputs: outputs, bias: bias, accumulate: accumulate) }
    }
}

extension Tiles {
    /// The processor's peak for this module's instruction set: `iterations` rounds of twelve independent fused
    /// multiply-add chains on registers (no memory traffic; twelve cover the latency of two FMA pipes and leave
    /// room for the operands in sixteen registers), in vectors of `V`. Returns a value that depends on every
    /// chain, so none is optimised away. Performs 2 · 12 · V.scalarCount · iterations floating-point operations.
    @inline(__always)
    static func fmaPeak<V: SIMD>(_: V.Type, iterations: Int) -> Float where V.Scalar == Float {
        let x = V(repeating: 0.999999), y = V(repeating: 1e-7)
        var c0 = V(repeating: 1), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0
        var c8 = c0, c9 = c0, c10 = c0, c11 = c0
        for _ in 0..<iterations {
            c0 = c0.addingProduct(x, y); c1 = c1.addingProduct(x, y); c2 = c2.addingProduct(x, y)
            c3 = c3.addingProduct(x, y); c4 = c4.addingProduct(x, y); c5 = c5.addingProduct(x, y)
            c6 = c6.addingProduct(x, y); c7 = c7.addingProduct(x, y); c8 = c8.addingProduct(x, y)
            c9 = c9.addingProduct(x, y); c10 = c10.addingProduct(x, y); c11 = c11.addingProduct(x, y)
        }
        let s = ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)) + ((c8 + c9) + (c10 + c11))
        return s.sum()
    }
}
