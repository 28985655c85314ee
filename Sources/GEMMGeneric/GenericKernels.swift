
/// The generic family: `Tiles.multiplyPortable` (4 × 16 tiles of 8-lane vectors, eight accumulators) compiled
/// with the build's own flags — what every other module of the build assumes (x86-64-v3 in Linux x86-64 builds,
/// the target's baseline elsewhere). Runs everywhere this build runs.
public enum GenericKernels {
    @inline(never)
    public static func multiply(_ a: UnsafePointer<Float>, rowStep: Int, depthStep: Int, m: Int, panels: UnsafePointer<Float>, k: Int,
                                n: Int, bias: UnsafePointer<Float>?, accumulate: Bool,
                                into c: UnsafeMutablePointer<Float>, ldc: Int) {
        Tiles.multiplyPortable(a, rowStep: rowStep, depthStep: depthStep, m: m, panels: panels, k: k, n: n, bias: bias, accumulate: accumulate,
                               into: c, ldc: ldc)
    }
}
