#if !FAMILY_NEON || arch(arm64)
/// The entry point of one kernel family's module. This file, like `Tiles.swift`, is linked into every family
/// module; the module's define (Package.swift) picks its tile: `TILE_16` (GEMMAVX512: `Tiles.multiply16`), `TILE_8`
/// (GEMMAVX2, GEMMNEON: `Tiles.multiply8`), neither (GEMMGeneric: `Tiles.multiplyPortable`). `PackedGEMM` calls it
/// module-qualified (`GEMMAVX2.FamilyKernels.multiply`). GEMMNEON is empty except on arm64.
public enum FamilyKernels {
    /// See `Tiles`: C[m, n] for n outputs packed at `panels`, A read at a + r · rowStep + kk · depthStep.
    @inline(never)
    public static func multiply(_ a: UnsafePointer<Float>, rowStep: Int, depthStep: Int, m: Int,
                                panels: UnsafePointer<Float>, k: Int, n: Int, bias: UnsafePointer<Float>?,
                                accumulate: Bool, continuing: Bool, into c: UnsafeMutablePointer<Float>, ldc: Int) {
        #if TILE_16
        Tiles.multiply16(a, rowStep: rowStep, depthStep: depthStep, m: m, panels: panels, k: k, n: n, bias: bias,
                         accumulate: accumulate, continuing: continuing, into: c, ldc: ldc)
        #elseif TILE_8
        Tiles.multiply8(a, rowStep: rowStep, depthStep: depthStep, m: m, panels: panels, k: k, n: n, bias: bias,
                        accumulate: accumulate, continuing: continuing, into: c, ldc: ldc)
        #else
        Tiles.multiplyPortable(a, rowStep: rowStep, depthStep: depthStep, m: m, panels: panels, k: k, n: n, bias: bias,
                               accumulate: accumulate, continuing: continuing, into: c, ldc: ldc)
        #endif
    }

    /// This family's register-only peak (see `Tiles.fmaPeak`) in its own vectors: 2 · 12 · lanes · iterations
    /// flops; `lanes` says how many.
    @inline(never)
    public static func fmaPeak(iterations: Int) -> (value: Float, lanes: Int) {
        #if TILE_16
        (Tiles.fmaPeak(SIMD16<Float>.self, iterations: iterations), 16)
        #else
        (Tiles.fmaPeak(SIMD8<Float>.self, iterations: iterations), 8)
        #endif
    }
}
#endif
