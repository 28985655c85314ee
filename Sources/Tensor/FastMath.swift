import Foundation

/// Vectorised transcendental functions on 8 lanes (AVX2 on x86-64 release builds), each with a scalar twin in
/// `FastMath.Reference` from the C library used as its test oracle.
public enum FastMath {
    public typealias V = SIMD8<Float>

    /// e^x, Cephes-style range reduction and degree-6 polynomial; relative error ≲ 2 ulp. Inputs below −87.3
    /// give exactly 0 (as a masked attention score should), above 88.7 give +∞ clamped to Float.greatestFinite.
    @inline(__always)
    public static func exp(_ x0: V) -> V {
        var x1 = x0
        x1.replace(with: V(repeating: -87.33654), where: x0 .< -87.33654)
        x1.replace(with: V(repeating: 88.72283), where: x0 .> 88.72283)
        let fx = (x1 * 1.44269504088896341 + 0.5).rounded(.down)
        var x = x1 - fx * 0.693359375
        x = x + fx * 2.12194440e-4
        let z = x * x
        var y = V(repeating: 1.9875691500e-4)
        y = y * x + 1.3981999507e-3
        y = y * x + 8.3334519073e-3
        y = y * x + 4.1665795894e-2
        y = y * x + 1.6666665459e-1
        y = y * x + 5.0000001201e-1
        y = y * z + x + 1
        // fx is a whole number in [−127, 128]: adding 1.5·2²³ puts it in the low mantissa bits, which is an exact
        // float → int conversion without the slow generic SIMD conversion.
        let n = unsafeBitCast(fx + 12_582_912, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127
        let pow2 = unsafeBitCast(n &<< 23, to: V.self)
        var r = y * pow2
        r.replace(with: 0, where: x0 .< -87.33654)
        return r
    }

    /// erf(x) by the rational approximation used in Eigen (clamped to [−4, 4]); absolute error ≲ 2e-7.
    @inline(__always)
    public static func erf(_ x0: V) -> V {
        var x = x0
        x.replace(with: V(repeating: -4), where: x0 .< -4)
        x.replace(with: V(repeating: 4), where: x0 .> 4)
        let x2 = x * x
        var p = V(repeating: -2.72614225801306e-10)
        p = p * x2 + 2.77068142495902e-08
        p = p * x2 - 2.10102402082508e-06
        p = p * x2 - 5.69250639462346e-05
        p = p * x2 - 7.34990630326855e-04
        p = p * x2 - 2.95459980854025e-03
        p = p * x2 - 1.60960333262415e-02
        p = p * x
        var q = V(repeating: -1.45660718464996e-05)
        q = q * x2 - 2.13374055278905e-04
        q = q * x2 - 1.68282697438203e-03
        q = q * x2 - 7.37332916720468e-03
        q = q * x2 - 1.42647390514189e-02
        return p / q
    }

    /// Softmax of one row of `n` values in place, 8 lanes at a time throughout (max, exp, sum, scale); the
    /// training path's `Kernels.softmaxRow` does the max, sum and scale one value at a time.
    @inline(__always)
    public static func softmax(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        var vmax = V(repeating: -.infinity)
        while i + 8 <= n {
            // (The stdlib's generic pointwiseMax is not inlined here; a compare and blend is one instruction each.)
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
            vmax.replace(with: v, where: v .> vmax)
            i += 8
        }
        var mx = vmax.max()
        while i < n { mx = max(mx, x[i]); i += 1 }
        let m = V(repeating: mx)
        var vsum = V()
        i = 0
        while i + 8 <= n {
            let e = exp(UnsafeRawPointer(x + i).loadUnaligned(as: V.self) - m)
            UnsafeMutableRawPointer(x + i).storeBytes(of: e, as: V.self)
            vsum += e
            i += 8
        }
        if i < n {
            var v = V(repeating: -.infinity)
            for j in 0..<(n - i) { v[j] = x[i + j] }
            let e = exp(v - m)  // exp(−∞) lanes are exactly 0
            for j in 0..<(n - i) { x[i + j] = e[j] }
            vsum += e
        }
        let inv = V(repeating: 1 / vsum.sum())
        i = 0
        while i + 8 <= n {
            UnsafeMutableRawPointer(x + i).storeBytes(of: UnsafeRawPointer(x + i).loadUnaligned(as: V.self) * inv,
                                                      as: V.self)
            i += 8
        }
        while i < n { x[i] *= inv[0]; i += 1 }
    }

    /// Applies `f` to `count` floats from `src` into `dst` (which may alias `src`), 8 lanes at a time; the tail
    /// goes through a zero-padded vector so every element takes the same code path.
    @inline(__always)
    public static func map(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ count: Int,
                           _ f: (V) -> V) {
        var i = 0
        while i + 8 <= count {
            let v = UnsafeRawPointer(src + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: f(v), as: V.self)
            i += 8
        }
        if i < count {
            var v = V()
            for j in 0..<(count - i) { v[j] = src[i + j] }
            let r = f(v)
            for j in 0..<(count - i) { dst[i + j] = r[j] }
        }
    }

    /// Scalar twins from the C library: the oracles of the vector versions.
    public enum Reference {
        public static func exp(_ x: Float) -> Float { Foundation.exp(x) }
        public static func erf(_ x: Float) -> Float { Foundation.erf(x) }
    }
}
