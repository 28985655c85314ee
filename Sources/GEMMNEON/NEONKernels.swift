#if arch(arm64)

/// The NEON family (arm64 only; NEON is the architecture's baseline, so no flags): `Tiles.multiply8` — 6 × 16
/// tiles whose twelve 8-lane accumulators take 24 of the 32 q registers. On other architectures this module is
/// empty.
public enum NEONKernels {
    @inline(never)
    public static func multiply(_ a: UnsafePointer<Float>, rowStep: Int, depthStep: Int, m: Int, panels: UnsafePointer<Float>, k: Int,
                                n: Int, bias: UnsafePointer<Float>?, accumulate: Bool, continuing: Bool,
                                into c: UnsafeMutablePointer<Float>, ldc: Int) {
        Tiles.multiply8(a, rowStep: rowStep, depthStep: depthStep, m: m, panels: panels, k: k, n: n, bias: bias, accumulate: accumulate,
                        continuing: continuing, into: c, ldc: ldc)
    }

    /// This family's register-only peak (see `Tiles.fmaPeak`): 2 · 12 · lanes · iterations flops; `lanes` says how
    /// many.
    @inline(never)
    public static func fmaPeak(iterations: Int) -> (value: Float, lanes: Int) {
        (Tiles.fmaPeak(SIMD8<Float>.self, iterations: iterations), SIMD8<Float>.scalarCount)
    }
}
#endif
