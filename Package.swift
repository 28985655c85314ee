// swift-tools-version:6.1
// cofi — CoFi structured pruning for BERT-family models, in Swift.
// Layers (each imports only the ones above it, each named in its dependencies; no re-exports):
// Formats (JSON values and strings, file-format errors), Platform (processor features, kernel family), CBLAS/Accelerate
// and PackedGEMM (packed products; its kernels: GEMMAVX512, GEMMAVX2, GEMMNEON, GEMMGeneric, each compiling GEMMTiles/Tiles.swift) → Tensor →
// BERT → Tasks → Runtime (inference, model directories, benchmarks) → Serving (HTTP), BERT → ONNXExport (ONNX
// graphs, with SwiftProtobuf), and Tasks → Training → CoFi; Formats → Charts (SVG figures) → Runtime, CoFi;
// Tensor → GGUF (llama.cpp's model files) → Tasks, cofi; Tensor → Llama (decoder LMs, beside BERT) → cofi-bench;
// Llama, GGUF, Tasks → Generation (decoder LMs opened from GGUF or HF, converted, perplexity, text generation) → cofi;
// all → cofi (CLI), cofi-bench. TestSupport (tests only) → Tensor, Generation. With the MPI trait only: CMPI (Open MPI's C API)
// → Cluster (the MPI process group) → cofi.
import PackageDescription

// Instruction-set flags are per architecture: the manifest is compiled for the machine that builds, so these
// apply to native builds. On Linux x86-64, release builds compile the SIMD code of Tensor, BERT, Runtime, Training
// and CoFi for the x86-64-v3 level (Haswell: AVX2 + FMA), the binary's minimum; `Platform` (compiled without flags)
// stops with a message on a processor below it. The matrix-product kernels are one module per instruction set,
// compiled with that set's flags in every configuration, and chosen at run time (`Platform.KernelFamily`):
// GEMMAVX512 for x86-64-v4, GEMMAVX2 for x86-64-v3, GEMMGeneric with the build's own flags. ARM and macOS builds
// use no such flags: arm64's baseline is NEON (GEMMNEON), and elsewhere the generic family runs.
#if arch(x86_64)
let simdFlags: [SwiftSetting] = [
    .unsafeFlags(["-Xcc", "-mavx2", "-Xcc", "-mfma", "-target-cpu", "haswell"], .when(platforms: [.linux], configuration: .release)),
]
let avx512Flags: [SwiftSetting] = [
    .unsafeFlags(["-Xcc", "-march=x86-64-v4"], .when(platforms: [.linux])),
]
let avx2Flags: [SwiftSetting] = [
    .unsafeFlags(["-Xcc", "-march=x86-64-v3"], .when(platforms: [.linux])),
]
/// What `Platform` must know of the flags above (it is compiled without them).
let platformDefines: [SwiftSetting] = [
    .define("HASWELL_BUILD", .when(platforms: [.linux], configuration: .release)),
    .define("AVX512_KERNELS", .when(platforms: [.linux])),
    .define("AVX2_KERNELS", .when(platforms: [.linux])),
    .define("OPTIMIZED", .when(configuration: .release)),
]
#else
let simdFlags: [SwiftSetting] = []
let avx512Flags: [SwiftSetting] = []
let avx2Flags: [SwiftSetting] = []
let platformDefines: [SwiftSetting] = [.define("OPTIMIZED", .when(configuration: .release))]
#endif

let package = Package(
    name: "cofi",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cofi", targets: ["cofi"]),
        .executable(name: "cofi-bench", targets: ["cofi-bench"]),
        .library(name: "Formats", targets: ["Formats"]),
        .library(name: "Charts", targets: ["Charts"]),
        .library(name: "Tensor", targets: ["Tensor"]),
        .library(name: "BERT", targets: ["BERT"]),
        .library(name: "GGUF", targets: ["GGUF"]),
        .library(name: "Llama", targets: ["Llama"]),
        .library(name: "Generation", targets: ["Generation"]),
        .library(name: "Tasks", targets: ["Tasks"]),
        .library(name: "Runtime", targets: ["Runtime"]),
        .library(name: "Training", targets: ["Training"]),
        .library(name: "CoFi", targets: ["CoFi"]),
    ],
    // `--traits MPI`: data-parallel training under mpirun (needs Open MPI: Debian's libopenmpi-dev). Off by default,
    // so the default build needs no MPI.
    traits: [.trait(name: "MPI", description: "Data-parallel fine-tuning and pruning across processes over Open MPI")],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),  // LogHandler.log(event:)
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.24.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        // Without the trait, Cluster compiles to an empty module (its source is `#if MPI`) and CMPI is not used.
        .target(name: "Cluster", dependencies: [.target(name: "CMPI", condition: .when(traits: ["MPI"])), "Training"],
                exclude: ["README.md"]),
        .target(name: "Formats", exclude: ["README.md"]),
        .target(name: "Charts", dependencies: ["Formats"], exclude: ["README.md"]),
        .target(name: "Platform", exclude: ["README.md"], swiftSettings: platformDefines),
        // The kernels: one module per instruction set, each compiling Sources/GEMMTiles/Tiles.swift and Family.swift
        // (symbolic links in each) with its own flags and its tile's define, and the packing and dispatch over them.
        .target(name: "GEMMAVX512", exclude: ["README.md"], swiftSettings: avx512Flags + [.define("TILE_16")]),
        .target(name: "GEMMAVX2", exclude: ["README.md"], swiftSettings: avx2Flags + [.define("TILE_8")]),
        .target(name: "GEMMNEON", exclude: ["README.md"], swiftSettings: [.define("TILE_8"), .define("FAMILY_NEON")]),
        .target(name: "GEMMGeneric", exclude: ["README.md"], swiftSettings: simdFlags),
        .target(name: "PackedGEMM", dependencies: ["Platform", "GEMMAVX512", "GEMMAVX2", "GEMMNEON", "GEMMGeneric"],
                exclude: ["README.md"], swiftSettings: simdFlags),
        .target(
            name: "Tensor",
            dependencies: [.target(name: "CBLAS", condition: .when(platforms: [.linux])), "PackedGEMM", "Platform", "Formats"],
            exclude: ["README.md"],
            swiftSettings: simdFlags),
        .target(name: "BERT", dependencies: ["Tensor", "Formats"], exclude: ["README.md"], swiftSettings: simdFlags),
        // LLaMA-family decoder LMs: config, shapes, the training-path model and the KV-cache generator. Beside BERT,
        // not on it: the two model families share only the tensor engine.
        .target(name: "Llama", dependencies: ["Tensor", "PackedGEMM", "Formats"], exclude: ["README.md"], swiftSettings: simdFlags),
        .target(name: "GGUF", dependencies: ["Tensor", "Formats"], exclude: ["README.md"]),
        .target(name: "Tasks", dependencies: ["BERT", "GGUF", "Tensor", "Formats", .product(name: "Crypto", package: "swift-crypto"),
                                             .product(name: "ZIPFoundation", package: "ZIPFoundation")],
                exclude: ["README.md"]),
        // Decoder language models as a whole: a GGUF file or a HF directory opened into model + tokenizer, conversion
        // between the two, perplexity over sliding windows, streaming generation, the ChatML chat template.
        .target(name: "Generation", dependencies: ["Llama", "GGUF", "Tasks", "Tensor", "Formats"], exclude: ["README.md"]),
        // Sheared-LLaMA: decoder masks to a target shape, the Lagrangian per family, dynamic batch loading,
        // continued training; `cofi shear`.
        .target(name: "Shearing", dependencies: ["Llama", "Generation", "CoFi", "Training", "Tasks", "Tensor", "Formats"],
                exclude: ["README.md"]),
        .target(name: "Runtime", dependencies: ["Tasks", "BERT", "Tensor", "PackedGEMM", "Platform", "Formats", "Charts"], exclude: ["README.md"],
                swiftSettings: simdFlags),
        .target(name: "Serving", dependencies: ["Runtime", "Formats", .product(name: "Hummingbird", package: "hummingbird"),
                                                .product(name: "Crypto", package: "swift-crypto"),
                                                .product(name: "HummingbirdCore", package: "hummingbird"),
                                                .product(name: "Logging", package: "swift-log"),
                                                .product(name: "HTTPTypes", package: "swift-http-types"),
                                                .product(name: "NIOCore", package: "swift-nio"),
                                                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                                                .product(name: "CoreMetrics", package: "swift-metrics"),
                                                .product(name: "Prometheus", package: "swift-prometheus")],
                exclude: ["README.md"]),
        // The ONNX exporter: onnx.proto (ONNX 1.23's, opset 17 is within it) compiled once to onnx.pb.swift by
        // protoc + protoc-gen-swift 1.39.0 (the command is in Sources/ONNXExport/README.md) and committed, so a build
        // needs only the SwiftProtobuf runtime.
        .target(name: "ONNXExport", dependencies: ["BERT", "Tensor", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                exclude: ["README.md", "onnx.proto"]),
        .target(name: "Training", dependencies: ["Tasks", "BERT", "Tensor", "Formats", "Platform",
                                                 .product(name: "Crypto", package: "swift-crypto")], exclude: ["README.md"],
                swiftSettings: simdFlags),
        .target(name: "CoFi", dependencies: ["Training", "Tasks", "BERT", "Tensor", "Charts"], exclude: ["README.md"],
                swiftSettings: simdFlags),
        .executableTarget(
            name: "cofi",
            dependencies: ["Formats", "Charts", "Platform", "Tensor", "GGUF", "Llama", "Generation", "BERT", "Tasks", "Runtime", "Serving", "Training", "CoFi", "ONNXExport", "Shearing",
                           .target(name: "Cluster", condition: .when(traits: ["MPI"])),
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log")],
            exclude: ["README.md"]),
        .executableTarget(name: "cofi-bench", dependencies: ["BERT", "Llama", "Tensor", "Runtime", "PackedGEMM", "Platform", "Formats"],
                          exclude: ["README.md"], swiftSettings: simdFlags),
        // Helpers only tests use (the finite-difference gradient check); a plain target, not a product.
        .target(name: "TestSupport", dependencies: ["Tensor", "Llama", "Tasks", "Generation"], path: "Tests/TestSupport", exclude: ["README.md"]),
        .testTarget(name: "FormatsTests", dependencies: ["Formats"]),
        .testTarget(name: "ChartsTests", dependencies: ["Charts"]),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "PackedGEMM", "Platform", "Formats", "TestSupport"]),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF", "Tensor", "Formats"], resources: [.copy("Fixtures")]),
        .testTarget(name: "BERTTests", dependencies: ["BERT", "Tensor", "Formats"], resources: [.copy("Fixtures")]),
        .testTarget(name: "LlamaTests", dependencies: ["Llama", "Tensor", "Formats", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "ShearingTests", dependencies: ["Shearing", "Generation", "Llama", "CoFi", "Tasks", "Tensor", "TestSupport"]),
        .testTarget(name: "GenerationTests", dependencies: ["Generation", "Llama", "GGUF", "Tasks", "Tensor", "Formats", "TestSupport"]),
        .testTarget(name: "TasksTests", dependencies: ["Tasks", "GGUF", "BERT", "Tensor", "Formats", .product(name: "ZIPFoundation", package: "ZIPFoundation")],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "RuntimeTests", dependencies: ["Runtime", "Tasks", "BERT", "Tensor", "PackedGEMM", "Platform", "Formats", "Charts"]),
        .testTarget(name: "ServingTests", dependencies: ["Serving", "Runtime", "Tasks", "BERT", "Tensor",
                                                        .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Tasks", "BERT", "Tensor", "Formats", "Platform"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "CoFiTests", dependencies: ["CoFi", "Training", "Tasks", "BERT", "Tensor", "Charts", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "ONNXExportTests", dependencies: ["ONNXExport", "Runtime", "BERT", "Tensor",
                                                           .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .testTarget(name: "CLITests", dependencies: ["cofi", "Generation", "Llama", "TestSupport", "Runtime", "Training", "Tasks", "BERT", "Tensor"]),
    ],
    swiftLanguageModes: [.v5]
)
