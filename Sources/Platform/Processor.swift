#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the processor can run: its feature flags, whether this build's vectorised code may run on it, and which
/// family of matrix-product kernels the training and inference paths use (`KernelFamily.selected`).
///
/// This module is compiled without any instruction-set flags, so its checks run on every processor of the
/// architecture — before any code built for AVX2 or AVX-512 does.
public enum Processor {
    /// The processor's feature flags: the first `flags` line of /proc/cpuinfo on x86 Linux (avx2, fma, avx512f, …),
    /// its `Features` line on ARM Linux (asimd, …); empty where there is none (macOS).
    public static let flags: Set<String> = {
        for key in ["flags", "Features"] {
            if let value = cpuinfoField(key) {
                return Set(value.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init))
            }
        }
        return []
    }()

    /// The processor's model name (/proc/cpuinfo), or the architecture where there is none.
    public static let modelName: String = cpuinfoField("model name") ?? architecture

    public static var architecture: String {
        #if arch(x86_64)
        return "x86_64"
        #elseif arch(arm64)
        return "arm64"
        #else
        return "other"
        #endif
    }

    /// The features the x86-64-v3 level (Haswell) implies: what Linux x86-64 release builds compile the SIMD code
    /// of Tensor, BERT, Runtime, Training and CoFi for.
    public static let haswellFeatures: Set<String> = ["avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm"]

    /// The features the x86-64-v4 level (AVX-512) adds: what the AVX-512 kernels are compiled for in those builds.
    public static let avx512Features: Set<String> = haswellFeatures
        .union(["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"])

    /// Whether a processor with `flags` runs code built for the x86-64-v4 level (AVX-512).
    public static func canRunAVX512(flags: Set<String> = flags) -> Bool { avx512Features.isSubset(of: flags) }

    /// The processors this process may run on (`Cpus_allowed` of /proc/self/status: mpirun binds each rank to one
    /// core unless `--bind-to none`), where Linux says.
    public static func allowedProcessors() -> Int? {
        firstLine(of: "/proc/self/status") { text in
            guard text.hasPrefix("Cpus_allowed:") else { return nil }
            let count = text.dropFirst("Cpus_allowed:".count).reduce(0) { n, c in
                n + (c.hexDigitValue ?? 0).nonzeroBitCount
            }
            return count > 0 ? count : nil
        }
    }

    /// The features this build needs beyond the architecture's baseline (empty for debug builds, ARM and macOS).
    public static var buildFeatures: Set<String> {
        #if HASWELL_BUILD
        return haswellFeatures
        #else
        return []
        #endif
    }

    /// Nil when this build runs here; otherwise a message naming what the processor lacks and what to do.
    /// Checked where `flags` are known (Linux); elsewhere the build is the machine's own.
    public static func buildMismatch(flags: Set<String> = flags) -> String? {
        let missing = buildFeatures.subtracting(flags).sorted()
        guard !flags.isEmpty, !missing.isEmpty else { return nil }
        return "this build of cofi is compiled for x86-64 processors with AVX2 and FMA (the x86-64-v3 level, Intel "
            + "Haswell or AMD Excavator and later); this processor (\(modelName)) lacks \(missing.joined(separator: ", ")). "
            + "Use a debug build (swift build), which runs on any x86-64 processor, slowly"
    }

    /// The value of the first /proc/cpuinfo line whose key is `key`.
    static func cpuinfoField(_ key: String) -> String? {
        firstLine(of: "/proc/cpuinfo") { text in
            let parts = text.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].trimmingWhitespace() == key else { return nil }
            return parts[1].trimmingWhitespace()
        }
    }

    /// The first non-nil `match` of the lines of the text file at `path` (nil when it cannot be read).
    static func firstLine<T>(of path: String, _ match: (String) -> T?) -> T? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, f) > 0 {
            guard let line else { break }
            if let found = match(String(cString: line)) { return found }
        }
        return nil
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" || $0 == "\n" }).reversed())
    }
}

/// The matrix-product kernels the training and inference paths run on: PackedGEMM's tiles compiled for one
/// instruction set each (the modules `GEMMAVX512`, `GEMMAVX2`, `GEMMNEON`, `GEMMGeneric`), or the system BLAS.
public enum KernelFamily: String, CaseIterable, Sendable {
    /// 8 × 32 tiles of 16-lane vectors for the x86-64-v4 level (AVX-512 F/BW/CD/DQ/VL): Linux x86-64 builds, on
    /// processors that have it.
    case avx512
    /// 6 × 16 tiles of 8-lane vectors for the x86-64-v3 level (AVX2 + FMA): Linux x86-64 builds, on processors
    /// that have it.
    case avx2
    /// The same 6 × 16 tiles on arm64 (NEON is its baseline): arm64 builds (Linux aarch64, Apple Silicon).
    case neon
    /// Portable 4 × 16 tiles compiled with the build's own flags: everywhere.
    case generic
    /// The system BLAS (OpenBLAS, Accelerate) for every product.
    case blas

    /// The family the products use and why: `COFI_KERNELS` when set (it must name a family this build and
    /// processor can run; `cofi` refuses to start otherwise, naming them), else the best one available. Read once.
    public static let selected: KernelSelection = {
        do { return try choose(environment: getenv("COFI_KERNELS").map { String(cString: $0) }) } catch {
            return KernelSelection(family: .blas, reason: "\(error)", forced: false, error: "\(error)")
        }
    }()

    /// The families this build can run on this processor, best first.
    public static let available: [KernelFamily] = allCases.filter { unavailability($0) == nil }

    /// Why a family is not available here (nil when it is).
    public static func unavailability(_ family: KernelFamily, flags: Set<String> = Processor.flags) -> String? {
        func missing(_ features: Set<String>) -> String? {
            let absent = features.subtracting(flags).sorted()
            return absent.isEmpty ? nil : "the processor lacks \(absent.joined(separator: ", "))"
        }
        switch family {
        case .avx512:
            #if AVX512_KERNELS
            return missing(Processor.avx512Features)
            #else
            return "this build's AVX-512 kernels are not compiled for AVX-512 (Linux x86-64 builds are)"
            #endif
        case .avx2:
            #if AVX2_KERNELS
            return missing(Processor.haswellFeatures)
            #else
            return "this build's AVX2 kernels are not compiled for AVX2 (Linux x86-64 builds are)"
            #endif
        case .neon:
            #if arch(arm64)
            return nil
            #else
            return "NEON is arm64's; this is \(Processor.architecture)"
            #endif
        case .generic, .blas:
            return nil
        }
    }

    /// The family for a `COFI_KERNELS` value (nil or empty: the best available).
    public static func choose(environment value: String?) throws -> KernelSelection {
        guard let value, !value.isEmpty else {
            let best = available[0]
            let why: String
            switch best {
            case .avx512: why = "the widest this processor runs (AVX-512)"
            case .avx2: why = "the widest this processor runs (AVX2 + FMA; AVX-512: \(unavailability(.avx512) ?? ""))"
            case .neon: why = "arm64's vector unit (NEON)"
            case .generic, .blas: why = "no family for this processor's vector unit, so the portable one"
            }
            return KernelSelection(family: best, reason: why, forced: false, error: nil)
        }
        guard let family = KernelFamily(rawValue: value.lowercased()) else {
            throw KernelFamilyError(message: "COFI_KERNELS is '\(value)'; expected one of "
                + allCases.map(\.rawValue).joined(separator: ", ") + " (this build and processor run "
                + available.map(\.rawValue).joined(separator: ", ") + ")")
        }
        guard available.contains(family) else { throw KernelFamilyError(unavailable: family) }
        return KernelSelection(family: family, reason: "COFI_KERNELS=\(value)", forced: true, error: nil)
    }

    /// Whether the products run on PackedGEMM (any family but BLAS).
    public var usesPackedGEMM: Bool { self != .blas }
}

/// The kernel family a process runs, and why.
public struct KernelSelection: Sendable {
    public let family: KernelFamily
    /// "the best this processor runs (AVX-512)", "COFI_KERNELS=blas", …
    public let reason: String
    /// Whether `COFI_KERNELS` named it.
    public let forced: Bool
    /// A `COFI_KERNELS` value that could not be honoured (then `family` is BLAS, and `cofi` refuses to start).
    public let error: String?

    public init(family: KernelFamily, reason: String, forced: Bool, error: String?) {
        self.family = family
        self.reason = reason
        self.forced = forced
        self.error = error
    }

    /// Whether the training path's large products run on PackedGEMM: with any packed family in optimised builds,
    /// and in debug builds only when `COFI_KERNELS` asks (unoptimised kernels are slower than BLAS).
    public var packsTrainingProducts: Bool {
        #if OPTIMIZED
        return family.usesPackedGEMM
        #else
        return family.usesPackedGEMM && forced
        #endif
    }
}

/// A kernel family that cannot run here.
public struct KernelFamilyError: Error, CustomStringConvertible {
    public let description: String
    init(message: String) { description = message }
    init(unavailable family: KernelFamily) {
        description = "COFI_KERNELS=\(family.rawValue) cannot run here: "
            + (KernelFamily.unavailability(family) ?? "unavailable") + "; available: "
            + KernelFamily.available.map(\.rawValue).joined(separator: ", ")
    }
}
