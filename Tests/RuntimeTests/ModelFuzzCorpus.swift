import BERT
import Formats
import Foundation
import Tensor

/// The model fuzz corpus (issue 13): two small, valid model directories — a dense classifier and a compact one
/// with a `cofi` block — and a table of deterministic corruptions of them. `ModelFuzzTests` loads every case the
/// way the commands do and classifies the outcome.
///
/// Everything here is a pure function of the code: the fixtures are seeded random models written with the
/// project's own save code, and the cases are enumerated in a fixed order, so the parent test and the child
/// process that runs the cases (see `ModelFuzzTests`) build the same list and agree on case numbers.
enum ModelFuzz {
    /// What loading a case must give.
    enum Expect: String {
        /// The directory is inconsistent or broken: only a clean error is right; a load is a silent acceptance.
        case reject
        /// A harmless change (whitespace, an unused field): a clean error or a load equal to the original model
        /// (same parameters, same predictions and label names).
        case equivalent
        /// A change of label names only (id2label renamed or absent): a clean error or a load with the original
        /// parameters and probabilities; the names may differ.
        case sameNumbers
    }

    enum Fixture: String, CaseIterable {
        case dense, compact
    }

    /// One entry of a model directory: a file's bytes, or a directory where a file should be.
    enum Entry: Equatable {
        case file([UInt8])
        case directory
    }

    /// A model directory in memory. `root` false writes no directory at all; `rootFile` writes a file in its place.
    struct Files: Equatable {
        var entries: [String: Entry]
        var root = true
        var rootFile: [UInt8]?

        /// The bytes of `name` (which must be a file).
        func bytes(_ name: String) -> [UInt8] {
            guard case .file(let b)? = entries[name] else { preconditionFailure("\(name) is not a file") }
            return b
        }

        /// config.json as a JSON object (it must parse).
        var config: [String: JSONValue] {
            get { try! JSONDecoder().decode([String: JSONValue].self, from: Data(bytes("config.json"))) }
            set { entries["config.json"] = .file(Array(JSONValue.object(newValue).prettyText.utf8) + [0x0A]) }
        }

        /// The `cofi` block of config.json, as an object (the compact fixture has one).
        var cofi: [String: JSONValue] {
            get { config["cofi"]!.object! }
            set { config["cofi"] = .object(newValue) }
        }

        /// model.safetensors, parsed (it must be well-formed).
        var safetensors: RawSafetensors {
            get { try! RawSafetensors(bytes("model.safetensors")) }
            set { entries["model.safetensors"] = .file(newValue.bytes) }
        }

        /// Writes the directory at `url` (which must not exist).
        func write(to url: URL) throws {
            let fm = FileManager.default
            if let rootFile { try Self.write(rootFile, to: url); return }
            guard root else { return }
            try fm.createDirectory(at: url, withIntermediateDirectories: true)
            for (name, entry) in entries {
                let path = url.appendingPathComponent(name)
                switch entry {
                case .file(let b): try Self.write(b, to: path)
                case .directory: try fm.createDirectory(at: path, withIntermediateDirectories: true)
                }
            }
        }

        /// Writes a scratch file without the fsync of `Data.write` (a tenth of the corpus's time).
        static func write(_ bytes: [UInt8], to url: URL) throws {
            guard let f = fopen(url.path, "wb") else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path]) }
            defer { fclose(f) }
            guard bytes.isEmpty || fwrite(bytes, 1, bytes.count, f) == bytes.count else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
            }
        }

        /// Whether `self` means the same as `other`: model.safetensors with the same header entries and data,
        /// config.json with the same JSON value, the other files byte for byte. (A corruption that re-encodes a
        /// file without changing it would test nothing.)
        func means(_ other: Files) -> Bool {
            guard root == other.root, rootFile == other.rootFile, entries.keys == other.entries.keys else { return false }
            for (name, entry) in entries {
                guard case .file(let a) = entry, case .file(let b)? = other.entries[name] else {
                    if entry != other.entries[name] { return false }
                    continue
                }
                if a == b { continue }
                switch name {
                case "model.safetensors":
                    guard let x = try? RawSafetensors(a), let y = try? RawSafetensors(b), x.header == y.header, x.data == y.data else { return false }
                case "config.json":
                    let decode = { (d: [UInt8]) in try? JSONDecoder().decode(JSONValue.self, from: Data(d)) }
                    guard let x = decode(a), x == decode(b) else { return false }
                default:
                    return false
                }
            }
            return true
        }
    }

    /// One corrupted directory.
    struct Case {
        /// The family, as the classification table groups cases ("truncate", "config", …).
        let family: String
        /// Unique, e.g. "dense/config-size/num_hidden_layers=1e9".
        let name: String
        let fixture: Fixture
        let expect: Expect
        /// File names of which an error's description must name at least one ("" stands for the directory).
        let blame: [String]
        let mutate: (inout Files) -> Void
    }

    // MARK: - Fixtures

    static let words = ["the", "a", "movie", "film", "was", "is", "good", "bad", "great", "dull", "plot", "very",
                        "not", "and", "but", "it", "fun", "##s", "##ly", "story"]
    static let vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words

    /// What every loaded case is run on: two texts and a pair (so that the token types matter).
    static let probes: [String] = ["the movie was very good", "a dull plot but fun"]
    static let probePair = ("it is great", "not bad and not dull")

    /// The dense sizes of both fixtures' config.json.
    static func config(layers: Int, labels: [String]) -> BertConfig {
        BertConfig(vocabSize: 40, hiddenSize: 16, numHiddenLayers: layers, numAttentionHeads: 2, intermediateSize: 24,
                   maxPositionEmbeddings: 16, typeVocabSize: 2,
                   id2label: Dictionary(uniqueKeysWithValues: labels.enumerated().map { ("\($0.offset)", $0.element) }),
                   label2id: Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($0.element, $0.offset) }),
                   modelType: "bert", architectures: ["BertForSequenceClassification"])
    }

    /// The compact fixture's kept hidden dims, heads and FFN units (original numbering), per layer.
    static let keptHidden = [0, 1, 2, 4, 5, 7, 8, 9, 11, 12, 14, 15]
    static let keptHeads: [[Int]] = [[0, 1], [1], []]
    static let keptUnits: [[Int]] = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 18, 20, 22], [], [2, 3, 5, 8, 13, 21, 22, 23]]

    /// A seeded random model of `shape` whose biases and LayerNorms are perturbed too (so a made-up bias shows).
    static func randomModel(config: BertConfig, shape: BertShape, task: TaskHeadKind, seed: UInt64) -> BertModel {
        let model = BertModel.randomlyInitialized(config: config, shape: shape, task: task, seed: seed)
        var rng = Xoshiro256(seed: seed &+ 1)
        for (name, p) in model.namedParameters {
            let isGain = name.hasSuffix("LayerNorm.weight")
            p.update { t in
                for i in 0..<t.count {
                    t.scalars[i] = isGain ? 1 + 0.2 * (rng.nextUniform() - 0.5) : t.scalars[i] * 5 + 0.1 * (rng.nextUniform() - 0.5)
                }
            }
        }
        return model
    }

    /// A fixture: the model as built in memory and its directory's files as `save` writes them.
    struct Base {
        let model: BertModel
        let files: Files
    }

    static func makeBase(_ fixture: Fixture) throws -> Base {
        let model: BertModel
        var cofi: [String: JSONValue]?
        switch fixture {
        case .dense:
            let c = config(layers: 2, labels: ["negative", "positive"])
            model = randomModel(config: c, shape: BertShape(config: c), task: .classification(labels: 2), seed: 1301)
        case .compact:
            let c = config(layers: 3, labels: ["contradiction", "entailment", "neutral"])
            let dense = BertShape(config: c)
            let units = keptUnits
            let shape = BertShape(vocabSize: c.vocabSize, hiddenSize: keptHidden.count, headDim: c.headDim,
                                  maxPositions: c.maxPositionEmbeddings, typeVocabSize: c.typeVocabSize,
                                  layers: zip(keptHeads, units).map { LayerShape(heads: $0.0.count, ffnWidth: $0.1.count) },
                                  poolerWidth: c.hiddenSize)
            model = randomModel(config: c, shape: shape, task: .classification(labels: 3), seed: 1302)
            let ints = { (xs: [Int]) in JSONValue.array(xs.map { .integer($0) }) }
            let prunable = shape.prunableParameters, original = dense.prunableParameters
            cofi = [
                "format_version": .integer(1), "original_hidden_size": .integer(c.hiddenSize),
                "original_num_attention_heads": .integer(c.numAttentionHeads),
                "original_intermediate_size": .integer(c.intermediateSize), "head_dim": .integer(c.headDim),
                "hidden_size": .integer(keptHidden.count), "kept_hidden_indices": ints(keptHidden),
                "layers": .array(zip(keptHeads, units).map { heads, kept in
                    .object(["num_heads": .integer(heads.count), "kept_heads": ints(heads),
                             "ffn_width": .integer(kept.count), "kept_ffn_units": ints(kept)])
                }),
                "encoder_parameters": .integer(shape.encoderParameters), "prunable_parameters": .integer(prunable),
                "original_prunable_parameters": .integer(original),
                "sparsity": .number(1 - Double(prunable) / Double(original)),
                "source": .object(["note": .string("fuzz fixture"), "target_sparsity": .number(0.5)]),
            ]
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cofi-fuzz-base-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try model.save(to: dir)
        var files = Files(entries: [:])
        for name in ["config.json", "model.safetensors"] {
            files.entries[name] = .file([UInt8](try Data(contentsOf: dir.appendingPathComponent(name))))
        }
        files.entries["vocab.txt"] = .file(Array((vocabulary.joined(separator: "\n") + "\n").utf8))
        files.entries["tokenizer_config.json"] = .file(Array(#"{"do_lower_case": true}"#.utf8))
        if let cofi { files.cofi = cofi }
        return Base(model: model, files: files)
    }

    // MARK: - The corpus

    /// Both fixtures.
    static func bases() throws -> [Fixture: Base] {
        try Dictionary(uniqueKeysWithValues: Fixture.allCases.map { ($0, try makeBase($0)) })
    }

    /// Every case, in a fixed order.
    static func corpus(_ bases: [Fixture: Base]) -> [Case] {
        var cases: [Case] = []
        for fixture in Fixture.allCases {
            let base = bases[fixture]!
            var add = Builder(fixture: fixture, cases: [])
            add.baselineAndFiles()
            add.truncations(base.files)
            add.header(base.files)
            add.offsets(base.files)
            add.headerShapes(base.files)
            add.tensors(base.files)
            add.config(base.files)
            add.configFile()
            add.labels()
            add.tokenizer()
            add.weights(base.files)
            if fixture == .compact { add.compactBlock() } else { add.denseWithCofiBlock() }
            cases += add.cases
        }
        return cases
    }

    /// Appends cases for one fixture.
    struct Builder {
        let fixture: Fixture
        var cases: [Case]

        mutating func add(_ family: String, _ name: String, _ expect: Expect, blame: [String],
                          _ mutate: @escaping (inout Files) -> Void) {
            cases.append(Case(family: family, name: "\(fixture.rawValue)/\(family)/\(name)", fixture: fixture,
                              expect: expect, blame: blame, mutate: mutate))
        }

        static let weights = ["model.safetensors"]
        static let configFile = ["config.json"]
        /// A contradiction between config.json and the tensors may be blamed on either.
        static let either = ["config.json", "model.safetensors"]
        static let tokenizerFiles = ["vocab.txt", "tokenizer_config.json", "tokenizer.json"]

        mutating func baselineAndFiles() {
            add("baseline", "unchanged", .equivalent, blame: []) { _ in }
            for name in ["config.json", "model.safetensors", "vocab.txt"] {
                let blame = name == "vocab.txt" ? Self.tokenizerFiles : [name]
                add("files", "\(name) missing", .reject, blame: blame) { $0.entries[name] = nil }
                add("files", "\(name) empty", .reject, blame: blame) { $0.entries[name] = .file([]) }
                add("files", "\(name) is a directory", .reject, blame: blame) { $0.entries[name] = .directory }
            }
            add("files", "tokenizer_config.json is a directory", .reject, blame: Self.tokenizerFiles) {
                $0.entries["tokenizer_config.json"] = .directory
            }
            add("files", "no directory", .reject, blame: [""]) { $0.root = false }
            add("files", "a file instead of the directory", .reject, blame: [""]) { $0.rootFile = Array("{}".utf8) }
        }

        /// Cuts model.safetensors at every structural offset: in the length prefix, inside the header, at each
        /// tensor's start and one byte into every third tensor, and one byte short of the end.
        mutating func truncations(_ base: Files) {
            let st = base.safetensors
            let n = st.headerBytes.count
            var offsets: Set<Int> = [0, 1, 4, 7, 8, 9, 8 + n / 2, 8 + n - 1, 8 + n, st.bytes.count - 1]
            for (k, t) in st.entries.enumerated() {
                offsets.insert(st.dataStart + t.begin)
                if k % 6 == 0 { offsets.insert(st.dataStart + t.begin + 1) }
            }
            for cut in offsets.sorted() where cut < st.bytes.count {
                add("truncate", "at byte \(cut) of \(st.bytes.count)", .reject, blame: Self.weights) {
                    $0.entries["model.safetensors"] = .file(Array(st.bytes[0..<cut]))
                }
            }
        }

        /// The length prefix and the header's JSON.
        mutating func header(_ base: Files) {
            let st = base.safetensors
            let n = UInt64(st.headerBytes.count)
            let lengths: [(String, UInt64)] = [("0", 0), ("1", 1), ("n-1", n - 1), ("n+1", n + 1), ("file size", UInt64(st.bytes.count)),
                                               ("2^62", 1 << 62), ("UInt64.max", .max), ("2^31", 1 << 31)]
            for (what, value) in lengths {
                add("header", "length prefix \(what)", .reject, blame: Self.weights) { files in
                    var b = st.bytes
                    withUnsafeBytes(of: value.littleEndian) { for i in 0..<8 { b[i] = $0[i] } }
                    files.entries["model.safetensors"] = .file(b)
                }
            }
            func replacingHeader(_ text: String) -> (inout Files) -> Void {
                { $0.entries["model.safetensors"] = .file(RawSafetensors.encode(headerText: text, data: st.data)) }
            }
            let json = String(decoding: st.headerBytes, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            add("header", "not JSON", .reject, blame: Self.weights, replacingHeader("not json" + String(repeating: " ", count: json.count - 8)))
            add("header", "JSON array", .reject, blame: Self.weights, replacingHeader("[" + json.dropFirst().dropLast() + "]"))
            add("header", "empty object", .reject, blame: Self.weights, replacingHeader("{}"))
            add("header", "unterminated", .reject, blame: Self.weights, replacingHeader(String(json.dropLast())))
            add("header", "trailing garbage", .reject, blame: Self.weights, replacingHeader(json + "x"))
            add("header", "invalid UTF-8", .reject, blame: Self.weights) { files in
                var h = Array(json.utf8)
                h[h.firstIndex(of: UInt8(ascii: "\""))! + 1] = 0xFF
                files.entries["model.safetensors"] = .file(RawSafetensors.encode(headerBytes: h, data: st.data))
            }
            add("header", "metadata not strings", .reject, blame: Self.weights) { files in
                var s = files.safetensors
                s.header["__metadata__"] = .object(["format": .integer(1)])
                files.safetensors = s
            }
            add("header", "metadata an array", .reject, blame: Self.weights) { files in
                var s = files.safetensors
                s.header["__metadata__"] = .array([])
                files.safetensors = s
            }
            add("header", "entry not an object", .reject, blame: Self.weights) { files in
                var s = files.safetensors
                s.header[s.entries[0].name] = .string("F32")
                files.safetensors = s
            }
            add("header", "metadata removed", .equivalent, blame: Self.weights) { files in
                var s = files.safetensors
                s.header["__metadata__"] = nil
                files.safetensors = s
            }
            add("header", "no padding to 8 bytes", .equivalent, blame: Self.weights) { files in
                files.entries["model.safetensors"] = .file(RawSafetensors.encode(headerBytes: Array(json.utf8), data: st.data))
            }
            add("header", "extra spaces", .equivalent, blame: Self.weights, replacingHeader(json + String(repeating: " ", count: 64)))
        }

        /// The tensors whose header entries the per-tensor cases corrupt: the first and last in the file, one in the
        /// middle and the classifier's weight.
        static func chosen(_ st: RawSafetensors) -> [String] {
            let names = st.entries.map(\.name)
            var picked = [names[0], names[names.count / 2], names[names.count - 1]]
            if let c = names.first(where: { $0 == "classifier.weight" }), !picked.contains(c) { picked.append(c) }
            return picked
        }

        /// `data_offsets` and the data region.
        mutating func offsets(_ base: Files) {
            let st = base.safetensors
            for name in Self.chosen(st) {
                let t = st.entries.first { $0.name == name }!
                let size = t.end - t.begin
                let variants: [(String, [JSONValue])] = [
                    ("reversed", [.integer(t.end), .integer(t.begin)]),
                    ("shifted +1", [.integer(t.begin + 1), .integer(t.end + 1)]),
                    ("shifted -4", [.integer(max(0, t.begin - 4)), .integer(max(0, t.begin - 4) + size)]),
                    ("end +4", [.integer(t.begin), .integer(t.end + 4)]),
                    ("beyond the file", [.integer(st.data.count), .integer(st.data.count + size)]),
                    ("huge", [.integer(1 << 62), .integer((1 << 62) + size)]),
                    ("negative", [.integer(-size), .integer(0)]),
                    ("one offset", [.integer(t.begin)]),
                    ("strings", [.string("\(t.begin)"), .string("\(t.end)")]),
                    ("overlapping the first tensor", [.integer(0), .integer(size)]),
                ]
                for (what, value) in variants
                where !(what == "overlapping the first tensor" && t.begin == 0) && !(what == "shifted -4" && t.begin < 4) {
                    add("offsets", "\(name) \(what)", .reject, blame: Self.weights) { files in
                        var s = files.safetensors
                        s.setEntry(name, "data_offsets", .array(value))
                        files.safetensors = s
                    }
                }
            }
            for count in [1, 4, 4096] {
                add("offsets", "\(count) bytes appended to the data", .reject, blame: Self.weights) { files in
                    files.entries["model.safetensors"] = .file(st.bytes + [UInt8](repeating: 0x41, count: count))
                }
            }
            add("offsets", "data shifted by one byte", .reject, blame: Self.weights) { files in
                files.entries["model.safetensors"] = .file(RawSafetensors.encode(headerBytes: st.headerBytes, data: [0] + st.data))
            }
            add("offsets", "a gap between two tensors", .reject, blame: Self.weights) { files in
                var s = files.safetensors
                let last = s.entries[s.entries.count - 1]
                s.setEntry(last.name, "data_offsets", .array([.integer(last.begin + 4), .integer(last.end + 4)]))
                s.data += [0, 0, 0, 0]
                files.safetensors = s
            }
        }

        /// dtype and shape in the header, the data left as it is.
        mutating func headerShapes(_ base: Files) {
            let st = base.safetensors
            for name in Self.chosen(st) {
                let t = st.entries.first { $0.name == name }!
                var variants: [(String, String, JSONValue)] = [
                    ("dtype F16", "dtype", .string("F16")), ("dtype I32", "dtype", .string("I32")),
                    ("dtype BOGUS", "dtype", .string("BOGUS")), ("dtype F64", "dtype", .string("F64")),
                    ("dtype 4", "dtype", .integer(4)),
                    ("shape negative", "shape", .array(t.shape.map { .integer(-$0) })),
                    ("shape huge", "shape", .array([.integer(1 << 40)] + t.shape.dropFirst().map { .integer($0) })),
                    ("shape overflowing", "shape", .array([.integer(1 << 32), .integer(1 << 32), .integer(1 << 32)])),
                    ("shape of strings", "shape", .array(t.shape.map { .string("\($0)") })),
                    ("shape flattened", "shape", .array([.integer(t.shape.reduce(1, *))])),
                    ("shape with a 1 prepended", "shape", .array([.integer(1)] + t.shape.map { .integer($0) })),
                ]
                if t.shape.count == 2 {
                    variants.append(("shape transposed", "shape", .array(t.shape.reversed().map { .integer($0) })))
                }
                for (what, key, value) in variants
                where !(what == "shape transposed" && t.shape[0] == t.shape[1]) && !(what == "shape flattened" && t.shape.count == 1) {
                    // A transposed matrix keeps the header consistent; it contradicts the config (or its `cofi`
                    // block), so an error may name either file.
                    let blame = what == "shape transposed" ? Self.either : Self.weights
                    add("header-shape", "\(name) \(what)", .reject, blame: blame) { files in
                        var s = files.safetensors
                        s.setEntry(name, key, value)
                        files.safetensors = s
                    }
                }
                add("header-shape", "\(name) dtype missing", .reject, blame: Self.weights) { files in
                    var s = files.safetensors
                    s.setEntry(name, "dtype", nil)
                    files.safetensors = s
                }
            }
        }

        /// Removals, renames, additions and consistent shape changes (the file rewritten with valid offsets).
        mutating func tensors(_ base: Files) {
            let st = base.safetensors
            for t in st.entries {
                add("tensor-removed", t.name, .reject, blame: Self.either) { files in
                    var s = files.safetensors
                    s.remove(t.name)
                    files.safetensors = s
                }
            }
            // A whole sublayer or layer removed: a dense checkpoint must not be taken as a pruned one.
            let layers = Set(st.entries.compactMap { RawSafetensors.layerIndex($0.name) }).sorted()
            for l in [layers.first!, layers.last!] {
                for (what, part) in [("attention", ".attention."), ("FFN", ".intermediate."), ("whole layer", "")] {
                    func inPart(_ name: String) -> Bool {
                        guard RawSafetensors.layerIndex(name) == l else { return false }
                        let ffn = name.contains(".intermediate.") || (name.contains(".output.") && !name.contains(".attention."))
                        return part.isEmpty || (part == ".attention." ? name.contains(part) : ffn)
                    }
                    // The compact fixture's last layer has no attention left to remove.
                    guard st.entries.contains(where: { inPart($0.name) }) else { continue }
                    add("tensor-removed", "layer \(l) \(what)", .reject, blame: Self.either) { files in
                        var s = files.safetensors
                        for e in s.entries where inPart(e.name) { s.remove(e.name) }
                        files.safetensors = s
                    }
                }
            }
            add("tensor-removed", "the whole head", .reject, blame: Self.either) { files in
                var s = files.safetensors
                s.remove("classifier.weight")
                s.remove("classifier.bias")
                files.safetensors = s
            }
            add("tensor-removed", "the pooler", .reject, blame: Self.either) { files in
                var s = files.safetensors
                s.remove("bert.pooler.dense.weight")
                s.remove("bert.pooler.dense.bias")
                files.safetensors = s
            }
            add("tensor-renamed", "without the bert. prefix", .equivalent, blame: Self.either) { files in
                var s = files.safetensors
                for e in s.entries where e.name.hasPrefix("bert.") { s.rename(e.name, String(e.name.dropFirst(5))) }
                files.safetensors = s
            }
            add("tensor-renamed", "word embeddings misspelt", .reject, blame: Self.either) { files in
                var s = files.safetensors
                s.rename("bert.embeddings.word_embeddings.weight", "bert.embeddings.word_embedding.weight")
                files.safetensors = s
            }
            add("tensor-renamed", "a layer's query as layer 9", .reject, blame: Self.either) { files in
                var s = files.safetensors
                let q = s.entries.first { $0.name.hasSuffix("attention.self.query.weight") }!.name
                s.rename(q, q.replacingOccurrences(of: "layer.\(RawSafetensors.layerIndex(q)!).", with: "layer.9."))
                files.safetensors = s
            }
            add("tensor-added", "an unknown tensor", .equivalent, blame: Self.either) { files in
                var s = files.safetensors
                s.append("unused.extra.weight", shape: [3], bytes: [UInt8](repeating: 0, count: 12))
                files.safetensors = s
            }
            add("tensor-added", "a layer beyond num_hidden_layers", .reject, blame: Self.either) { files in
                var s = files.safetensors
                for e in s.entries where RawSafetensors.layerIndex(e.name) == layers.last! {
                    s.append(e.name.replacingOccurrences(of: "layer.\(layers.last!).", with: "layer.\(layers.count)."),
                             shape: e.shape, bytes: s.tensorBytes(e.name))
                }
                files.safetensors = s
            }
            // An unexpected tensor is a warning at most (issue 13); the model computes what it did.
            add("tensor-added", "a span head besides the classifier", .equivalent, blame: Self.either) { files in
                var s = files.safetensors
                let hidden = s.entries.first { $0.name == "bert.embeddings.word_embeddings.weight" }!.shape[1]
                s.append("qa_outputs.weight", shape: [2, hidden], bytes: [UInt8](repeating: 0, count: 8 * hidden))
                s.append("qa_outputs.bias", shape: [2], bytes: [UInt8](repeating: 0, count: 8))
                files.safetensors = s
            }
            // Shapes changed together with their data, so the file itself is well-formed.
            add("tensor-shape", "classifier cut to one row", .reject, blame: Self.either) { files in
                var s = files.safetensors
                s.keepRows("classifier.weight", 1)
                s.keepRows("classifier.bias", 1)
                files.safetensors = s
            }
            add("tensor-shape", "classifier with an extra row", .reject, blame: Self.either) { files in
                var s = files.safetensors
                s.addRow("classifier.weight")
                s.addRow("classifier.bias")
                files.safetensors = s
            }
            for (what, name) in [("word embeddings", "bert.embeddings.word_embeddings.weight"),
                                 ("position embeddings", "bert.embeddings.position_embeddings.weight"),
                                 ("token type embeddings", "bert.embeddings.token_type_embeddings.weight")] {
                add("tensor-shape", "\(what) one row short", .reject, blame: Self.either) { files in
                    var s = files.safetensors
                    s.keepRows(name, s.entries.first { $0.name == name }!.shape[0] - 1)
                    files.safetensors = s
                }
                add("tensor-shape", "\(what) one row more", .reject, blame: Self.either) { files in
                    var s = files.safetensors
                    s.addRow(name)
                    files.safetensors = s
                }
            }
            let l0 = layers.first!
            add("tensor-shape", "layer \(l0) FFN one unit short", .reject, blame: Self.either) { files in
                var s = files.safetensors
                let p = "bert.encoder.layer.\(l0)."
                guard let w = s.entries.first(where: { $0.name == p + "intermediate.dense.weight" }) else { return }
                s.keepRows(p + "intermediate.dense.weight", w.shape[0] - 1)
                s.keepRows(p + "intermediate.dense.bias", w.shape[0] - 1)
                s.keepColumns(p + "output.dense.weight", w.shape[0] - 1)
                files.safetensors = s
            }
            add("tensor-shape", "layer \(l0) one head short", .reject, blame: Self.either) { files in
                var s = files.safetensors
                let p = "bert.encoder.layer.\(l0).attention."
                let q = s.entries.first { $0.name == p + "self.query.weight" }!
                let keep = q.shape[0] - 8
                for part in ["query", "key", "value"] {
                    s.keepRows(p + "self.\(part).weight", keep)
                    s.keepRows(p + "self.\(part).bias", keep)
                }
                s.keepColumns(p + "output.dense.weight", keep)
                files.safetensors = s
            }
            add("tensor-shape", "layer \(l0) query one row short", .reject, blame: Self.either) { files in
                var s = files.safetensors
                let name = "bert.encoder.layer.\(l0).attention.self.query.weight"
                s.keepRows(name, s.entries.first { $0.name == name }!.shape[0] - 1)
                files.safetensors = s
            }
            add("tensor-shape", "embedding LayerNorm one short", .reject, blame: Self.either) { files in
                var s = files.safetensors
                let name = "bert.embeddings.LayerNorm.weight"
                s.keepRows(name, s.entries.first { $0.name == name }!.shape[0] - 1)
                files.safetensors = s
            }
            add("tensor-shape", "pooler one row short", .reject, blame: Self.either) { files in
                var s = files.safetensors
                s.keepRows("bert.pooler.dense.weight", s.entries.first { $0.name == "bert.pooler.dense.weight" }!.shape[0] - 1)
                s.keepRows("bert.pooler.dense.bias", s.entries.first { $0.name == "bert.pooler.dense.bias" }!.shape[0] - 1)
                files.safetensors = s
            }
        }

        /// config.json's fields: missing, wrong type, zero, negative, huge, contradicting the tensors.
        mutating func config(_ base: Files) {
            let config = base.config
            let sizes = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                         "max_position_embeddings", "type_vocab_size"]
            // A size's every change contradicts the tensors (or, for the compact model, its `cofi` block).
            for key in sizes {
                let v = config[key]!.integer!
                var values: [(String, JSONValue)] = [
                    ("0", .integer(0)), ("-1", .integer(-1)), ("+1", .integer(v + 1)), ("-1 of it", .integer(v - 1)),
                    ("2^62", .integer(1 << 62)), ("1e9", .integer(1_000_000_000)), ("2.5", .number(2.5)),
                    ("a string", .string("\(v)")), ("null", .null),
                ]
                if key == "num_hidden_layers" { values += [("2^31", .integer(1 << 31)), ("1e9 as a float", .number(1e9))] }
                if fixture == .compact { values = values.filter { ["0", "+1", "2^62", "1e9", "a string"].contains($0.0) } }
                // Fewer heads that still divide the hidden width give the same tensor shapes: a different but valid
                // model (transformers loads it too), which no check of the files can tell from the original.
                if key == "num_attention_heads", v > 1, config["hidden_size"]!.integer! % (v - 1) == 0 {
                    values.removeAll { $0.0 == "-1 of it" }
                }
                // A null or missing size takes its default: type_vocab_size 2 (as both fixtures have),
                // max_position_embeddings 512.
                let absent: Expect = key == "type_vocab_size" ? .equivalent : .reject
                for (what, value) in values {
                    add("config-size", "\(key)=\(what)", what == "null" ? absent : .reject, blame: Self.either) { files in
                        files.config[key] = value
                    }
                }
                add("config-size", "\(key) missing", absent, blame: Self.either) { files in files.config[key] = nil }
            }
            // Fields that do not change what a model computes: any value is a clean error or an equivalent load.
            let harmless: [(String, [(String, JSONValue?)])] = [
                ("hidden_dropout_prob", [("0.5", .number(0.5)), ("missing", nil), ("-1", .number(-1)), ("1.5", .number(1.5)), ("a string", .string("x"))]),
                ("attention_probs_dropout_prob", [("0", .integer(0)), ("missing", nil), ("1", .integer(1)), ("null", .null)]),
                ("classifier_dropout", [("0.2", .number(0.2)), ("null", .null), ("2", .integer(2)), ("a string", .string("x"))]),
                ("initializer_range", [("0.5", .number(0.5)), ("missing", nil), ("-1", .number(-1)), ("1e999 as a string", .string("1e999"))]),
                ("pad_token_id", [("1", .integer(1)), ("missing", nil), ("-1", .integer(-1)), ("vocab_size", .integer(40)), ("2^62", .integer(1 << 62))]),
                ("architectures", [("missing", nil), ("empty", .array([])), ("a string", .string("BertModel")), ("unknown", .array([.string("Nope")]))]),
                ("problem_type", [("single_label", .string("single_label_classification")), ("a number", .integer(3))]),
                ("transformers_version", [("4.40.0", .string("4.40.0")), ("an object", .object([:]))]),
                ("model_type", [("missing", nil)]),
                ("hidden_act", [("missing", nil)]),
                ("layer_norm_eps", [("missing", nil)]),
                ("position_embedding_type", [("missing", nil)]),
                ("unknown_key", [("a nested object", .object(["a": .array([.null, .bool(false)])]))]),
            ]
            for (key, values) in harmless {
                for (what, value) in values {
                    add("config-other", "\(key)=\(what)", .equivalent, blame: Self.configFile) { files in files.config[key] = value }
                }
            }
            // Values the model cannot run with, or that change what it computes without the tensors knowing.
            let wrong: [(String, [(String, JSONValue)])] = [
                ("hidden_act", [("relu", .string("relu")), ("gelu_new", .string("gelu_new")), ("a number", .integer(1)), ("empty", .string(""))]),
                ("position_embedding_type", [("relative_key", .string("relative_key")), ("null", .null)]),
                ("model_type", [("roberta", .string("roberta")), ("a number", .integer(1))]),
                ("layer_norm_eps", [("0", .integer(0)), ("-1e-12", .number(-1e-12)), ("a string", .string("1e-12")),
                                    ("1e999 as a string", .string("1e999")), ("1e300", .number(1e300))]),
                ("num_labels", [("0", .integer(0)), ("1", .integer(1)), ("+1", .integer(base.config["num_labels"]!.integer! + 1)),
                                ("2^62", .integer(1 << 62)), ("a string", .string("2")), ("-1", .integer(-1))]),
            ]
            for (key, values) in wrong {
                for (what, value) in values {
                    add("config-other", "\(key)=\(what)", .reject, blame: Self.either) { files in files.config[key] = value }
                }
            }
        }

        /// config.json as a whole.
        mutating func configFile() {
            func text(_ f: @escaping (String) -> String) -> (inout Files) -> Void {
                { files in files.entries["config.json"] = .file(Array(f(String(decoding: files.bytes("config.json"), as: UTF8.self)).utf8)) }
            }
            add("config-file", "not JSON", .reject, blame: Self.configFile, text { _ in "vocab_size = 40\n" })
            add("config-file", "truncated", .reject, blame: Self.configFile, text { String($0.prefix($0.count / 2)) })
            add("config-file", "a JSON array", .reject, blame: Self.configFile, text { "[" + $0 + "]" })
            add("config-file", "trailing garbage", .reject, blame: Self.configFile, text { $0 + "}" })
            add("config-file", "binary junk", .reject, blame: Self.configFile) { files in
                var rng = Xoshiro256(seed: 77)
                files.entries["config.json"] = .file((0..<512).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            }
            // JSON in UTF-16 with a byte order mark is still the same JSON (RFC 8259 wants UTF-8; Foundation reads both).
            add("config-file", "UTF-16", .equivalent, blame: Self.configFile) { files in
                let s = String(decoding: files.bytes("config.json"), as: UTF8.self)
                files.entries["config.json"] = .file([0xFF, 0xFE] + s.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })
            }
            add("config-file", "minified", .equivalent, blame: Self.configFile) { files in
                files.entries["config.json"] = .file(Array(JSONValue.object(files.config).text.utf8))
            }
            add("config-file", "CRLF and tabs", .equivalent, blame: Self.configFile,
                text { $0.replacingOccurrences(of: "\n", with: "\r\n").replacingOccurrences(of: "  ", with: "\t") })
            add("config-file", "a byte order mark", .equivalent, blame: Self.configFile, text { "\u{FEFF}" + $0 })
            add("config-file", "duplicate key with the same value", .equivalent, blame: Self.configFile,
                text { "{\n  \"hidden_size\": 16," + $0.dropFirst() })
            add("config-file", "duplicate key with another value", .reject, blame: Self.configFile,
                text { "{\n  \"num_hidden_layers\": 1," + $0.dropFirst() })
        }

        /// id2label and label2id.
        mutating func labels() {
            add("labels", "id2label duplicate names", .reject, blame: Self.configFile) { files in
                var m = files.config["id2label"]!.object!
                m["1"] = m["0"]
                files.config["id2label"] = .object(m)
            }
            add("labels", "id2label duplicate names and label2id to match", .reject, blame: Self.configFile) { files in
                var m = files.config["id2label"]!.object!
                m["1"] = m["0"]
                files.config["id2label"] = .object(m)
                files.config["label2id"] = .object([m["0"]!.string!: .integer(0)])
            }
            add("labels", "id2label with a gap", .reject, blame: Self.configFile) { files in
                var m = files.config["id2label"]!.object!
                m["7"] = m["1"]
                m["1"] = nil
                files.config["id2label"] = .object(m)
            }
            add("labels", "id2label numbers", .reject, blame: Self.configFile) { files in
                let m = files.config["id2label"]!.object!
                files.config["id2label"] = .object(m.mapValues { _ in .integer(1) })
            }
            add("labels", "id2label an array", .reject, blame: Self.configFile) { files in
                let m = files.config["id2label"]!.object!
                files.config["id2label"] = .array((0..<m.count).map { m["\($0)"]! })
            }
            add("labels", "id2label empty", .reject, blame: Self.configFile) { $0.config["id2label"] = .object([:]) }
            add("labels", "id2label keys 1-based", .reject, blame: Self.configFile) { files in
                let m = files.config["id2label"]!.object!
                files.config["id2label"] = .object(Dictionary(uniqueKeysWithValues: m.map { ("\(Int($0.key)! + 1)", $0.value) }))
            }
            add("labels", "id2label keys zero-padded", .reject, blame: Self.configFile) { files in
                let m = files.config["id2label"]!.object!
                files.config["id2label"] = .object(Dictionary(uniqueKeysWithValues: m.map { ("0" + $0.key, $0.value) }))
            }
            add("labels", "id2label one entry more, num_labels to match", .reject, blame: Self.either) { files in
                var m = files.config["id2label"]!.object!
                m["\(m.count)"] = .string("extra")
                files.config["id2label"] = .object(m)
                files.config["num_labels"] = .integer(m.count)
                var l = files.config["label2id"]!.object!
                l["extra"] = .integer(m.count - 1)
                files.config["label2id"] = .object(l)
            }
            add("labels", "label2id contradicting id2label", .reject, blame: Self.configFile) { files in
                let m = files.config["id2label"]!.object!
                files.config["label2id"] = .object(Dictionary(uniqueKeysWithValues: m.map { ($0.value.string!, .integer(m.count - 1 - Int($0.key)!)) }))
            }
            add("labels", "label2id with strings", .reject, blame: Self.configFile) { files in
                let m = files.config["id2label"]!.object!
                files.config["label2id"] = .object(Dictionary(uniqueKeysWithValues: m.map { ($0.value.string!, .string($0.key)) }))
            }
            add("labels", "label2id missing", .equivalent, blame: Self.configFile) { $0.config["label2id"] = nil }
            add("labels", "id2label and label2id missing", .sameNumbers, blame: Self.configFile) { files in
                files.config["id2label"] = nil
                files.config["label2id"] = nil
            }
            add("labels", "labels renamed consistently", .sameNumbers, blame: Self.configFile) { files in
                let m = files.config["id2label"]!.object!
                files.config["id2label"] = .object(m.mapValues { .string("class " + $0.string!) })
                files.config["label2id"] = .object(Dictionary(uniqueKeysWithValues: m.map { ("class " + $0.value.string!, .integer(Int($0.key)!)) }))
            }
        }

        /// vocab.txt and tokenizer_config.json.
        mutating func tokenizer() {
            let blame = Self.tokenizerFiles
            func vocab(_ lines: [String]) -> (inout Files) -> Void {
                { $0.entries["vocab.txt"] = .file(Array((lines.joined(separator: "\n") + "\n").utf8)) }
            }
            add("tokenizer", "vocab.txt binary junk", .reject, blame: blame) { files in
                var rng = Xoshiro256(seed: 78)
                files.entries["vocab.txt"] = .file((0..<300).map { _ in UInt8(truncatingIfNeeded: rng.next() | 0x80) })
            }
            add("tokenizer", "vocab.txt Latin-1", .reject, blame: blame) { files in
                files.entries["vocab.txt"] = .file(files.bytes("vocab.txt") + [0x63, 0x61, 0x66, 0xE9, 0x0A])
            }
            add("tokenizer", "vocab.txt duplicate token", .reject, blame: blame, vocab(vocabulary + ["movie"]))
            add("tokenizer", "vocab.txt more tokens than word embeddings", .reject, blame: blame,
                vocab(vocabulary + (0..<30).map { "extra\($0)" }))
            add("tokenizer", "vocab.txt without [CLS]", .reject, blame: blame, vocab(vocabulary.filter { $0 != "[CLS]" }))
            add("tokenizer", "vocab.txt without [UNK]", .reject, blame: blame, vocab(vocabulary.filter { $0 != "[UNK]" }))
            add("tokenizer", "vocab.txt only blank lines", .reject, blame: blame) { $0.entries["vocab.txt"] = .file(Array("\n\n\n".utf8)) }
            add("tokenizer", "vocab.txt with CRLF", .equivalent, blame: blame) { files in
                files.entries["vocab.txt"] = .file(Array((vocabulary.joined(separator: "\r\n") + "\r\n").utf8))
            }
            add("tokenizer", "tokenizer_config.json not JSON", .reject, blame: blame) {
                $0.entries["tokenizer_config.json"] = .file(Array("do_lower_case: true".utf8))
            }
            add("tokenizer", "tokenizer_config.json do_lower_case a string", .reject, blame: blame) {
                $0.entries["tokenizer_config.json"] = .file(Array(#"{"do_lower_case": "yes"}"#.utf8))
            }
            add("tokenizer", "tokenizer_config.json missing", .equivalent, blame: blame) { $0.entries["tokenizer_config.json"] = nil }
            add("tokenizer", "tokenizer.json garbled", .reject, blame: blame) {
                $0.entries["tokenizer.json"] = .file(Array(#"{"model": {"type": "WordPiece", "vocab": [1, 2"#.utf8))
            }
            add("tokenizer", "tokenizer.json of another kind", .reject, blame: blame) {
                $0.entries["tokenizer.json"] = .file(Array(#"{"model": {"type": "BPE", "vocab": {}, "merges": []}}"#.utf8))
            }
        }

        /// Non-finite weights.
        mutating func weights(_ base: Files) {
            let st = base.safetensors
            // The first tensor in the file, the head, a LayerNorm, and the [PAD] row of the word embeddings (which a
            // prediction never reads, so only a check at load can see it).
            let targets = [st.entries[0].name, "classifier.weight",
                           st.entries.first { $0.name.hasSuffix("attention.output.LayerNorm.weight") }!.name,
                           "bert.embeddings.word_embeddings.weight"]
            for name in targets {
                for (what, bits) in [("NaN", Float.nan.bitPattern), ("-inf", (-Float.infinity).bitPattern)] {
                    add("weights", "\(name) holds \(what)", .reject, blame: Self.weights) { files in
                        var s = files.safetensors
                        s.setScalar(name, index: 0, bits: bits)
                        files.safetensors = s
                    }
                }
            }
        }

        /// The compact model's `cofi` block.
        mutating func compactBlock() {
            func cofi(_ what: String, _ expect: Expect = .reject, _ f: @escaping (inout [String: JSONValue]) -> Void) {
                add("compact", what, expect, blame: Self.configFile) { files in
                    var c = files.cofi
                    f(&c)
                    files.cofi = c
                }
            }
            func block(_ what: String, _ value: JSONValue?) {
                add("compact", what, .reject, blame: Self.configFile) { $0.config["cofi"] = value }
            }
            block("block removed", nil)
            block("block a string", .string("cofi"))
            block("block null", .null)
            block("block an array", .array([]))
            block("block empty", .object([:]))
            for key in ["format_version", "original_hidden_size", "original_num_attention_heads", "original_intermediate_size",
                        "head_dim", "hidden_size", "kept_hidden_indices", "layers", "encoder_parameters",
                        "prunable_parameters", "original_prunable_parameters", "sparsity"] {
                cofi("\(key) missing") { $0[key] = nil }
                cofi("\(key) a string") { $0[key] = .string("1") }
                if key != "kept_hidden_indices" && key != "layers" {
                    cofi("\(key) +1") { c in
                        if let i = c[key]?.integer { c[key] = .integer(i + 1) } else if case .number(let d)? = c[key] { c[key] = .number(d + 0.01) }
                    }
                    cofi("\(key) negative") { c in c[key] = .integer(-1) }
                    cofi("\(key) huge") { c in c[key] = .integer(1 << 62) }
                }
            }
            cofi("source a string", .equivalent) { $0["source"] = .string("x") }
            cofi("source removed", .equivalent) { $0["source"] = nil }
            cofi("source note changed", .equivalent) { $0["source"] = .object(["note": .string("another")]) }
            cofi("sparsity NaN as a string") { $0["sparsity"] = .string("NaN") }
            func indices(_ what: String, _ f: @escaping ([Int]) -> [Int]) {
                cofi("kept_hidden_indices \(what)") { c in
                    c["kept_hidden_indices"] = .array(f(c["kept_hidden_indices"]!.array!.map { $0.integer! }).map { .integer($0) })
                }
            }
            indices("one dropped") { Array($0.dropLast()) }
            indices("one added") { $0 + [3] }
            indices("a duplicate") { var a = $0; a[1] = a[0]; return a }
            indices("unsorted") { var a = $0; a.swapAt(0, 1); return a }
            indices("out of range") { var a = $0; a[a.count - 1] = 16; return a }
            indices("negative") { var a = $0; a[0] = -1; return a }
            indices("empty") { _ in [] }
            cofi("kept_hidden_indices strings") { c in c["kept_hidden_indices"] = .array(c["kept_hidden_indices"]!.array!.map { .string($0.text) }) }
            func layers(_ what: String, _ expect: Expect = .reject, _ f: @escaping (inout [JSONValue]) -> Void) {
                cofi("layers \(what)", expect) { c in
                    var a = c["layers"]!.array!
                    f(&a)
                    c["layers"] = .array(a)
                }
            }
            layers("one dropped") { $0.removeLast() }
            layers("one added") { $0.append($0[0]) }
            layers("swapped") { $0.swapAt(0, 2) }
            layers("an entry a number") { $0[0] = .integer(1) }
            layers("empty") { $0 = [] }
            for l in 0..<ModelFuzz.keptHeads.count {
                func layer(_ what: String, _ expect: Expect = .reject, _ f: @escaping (inout [String: JSONValue]) -> Void) {
                    layers("[\(l)] \(what)", expect) { a in
                        var o = a[l].object!
                        f(&o)
                        a[l] = .object(o)
                    }
                }
                func list(_ key: String, _ what: String, _ f: @escaping ([Int]) -> [Int]) {
                    layer("\(key) \(what)") { o in o[key] = .array(f(o[key]!.array!.map { $0.integer! }).map { .integer($0) }) }
                }
                let heads = ModelFuzz.keptHeads[l]
                for key in ["num_heads", "ffn_width"] {
                    layer("\(key) +1") { o in o[key] = .integer(o[key]!.integer! + 1) }
                    layer("\(key) missing") { o in o[key] = nil }
                    layer("\(key) negative") { o in o[key] = .integer(-1) }
                }
                list("kept_heads", "out of range") { $0 + [2] }
                list("kept_heads", "negative") { [-1] + $0 }
                if heads.count >= 2 { list("kept_heads", "unsorted") { $0.reversed() } }
                if !heads.isEmpty { list("kept_heads", "a duplicate") { $0 + [$0.last!] } }
                if heads.count == 1 {
                    // Which head was kept is provenance only: the tensors compute the same either way.
                    layer("kept_heads another valid head", .equivalent) { o in o["kept_heads"] = .array([.integer(1 - heads[0])]) }
                }
                list("kept_ffn_units", "out of range") { $0 + [24] }
                list("kept_ffn_units", "huge") { $0 + [1 << 62] }
                if !ModelFuzz.keptUnits[l].isEmpty {
                    list("kept_ffn_units", "a duplicate") { $0 + [$0.last!] }
                    list("kept_ffn_units", "one dropped") { Array($0.dropLast()) }
                    list("kept_ffn_units", "unsorted") { $0.reversed() }
                }
                layer("kept_ffn_units missing") { o in o["kept_ffn_units"] = nil }
                layer("kept_heads null") { o in o["kept_heads"] = .null }
            }
            add("compact", "tensors of a head removed from layer 0", .reject, blame: Self.either) { files in
                var s = files.safetensors
                let p = "bert.encoder.layer.0.attention."
                for part in ["query", "key", "value"] {
                    s.keepRows(p + "self.\(part).weight", 8)
                    s.keepRows(p + "self.\(part).bias", 8)
                }
                s.keepColumns(p + "output.dense.weight", 8)
                files.safetensors = s
            }
            add("compact", "layer 1's attention removed (the block keeps a head)", .reject, blame: Self.either) { files in
                var s = files.safetensors
                for e in s.entries where e.name.hasPrefix("bert.encoder.layer.1.attention.") { s.remove(e.name) }
                files.safetensors = s
            }
        }

        /// The dense model with a `cofi` block: exact (everything kept) or contradicting the tensors.
        mutating func denseWithCofiBlock() {
            func block(_ files: Files, heads: [[Int]], units: [[Int]], hidden: [Int]) -> JSONValue {
                let c = try! JSONDecoder().decode(BertConfig.self, from: Data(files.bytes("config.json")))
                let shape = BertShape(config: c)
                let ints = { (xs: [Int]) in JSONValue.array(xs.map { .integer($0) }) }
                return .object([
                    "format_version": .integer(1), "original_hidden_size": .integer(c.hiddenSize),
                    "original_num_attention_heads": .integer(c.numAttentionHeads),
                    "original_intermediate_size": .integer(c.intermediateSize), "head_dim": .integer(c.headDim),
                    "hidden_size": .integer(hidden.count), "kept_hidden_indices": ints(hidden),
                    "layers": .array(zip(heads, units).map { .object(["num_heads": .integer($0.0.count), "kept_heads": ints($0.0),
                                                                      "ffn_width": .integer($0.1.count), "kept_ffn_units": ints($0.1)]) }),
                    "encoder_parameters": .integer(shape.encoderParameters),
                    "prunable_parameters": .integer(shape.prunableParameters),
                    "original_prunable_parameters": .integer(shape.prunableParameters), "sparsity": .integer(0),
                ])
            }
            let all = (heads: [[0, 1], [0, 1]], units: [Array(0..<24), Array(0..<24)], hidden: Array(0..<16))
            add("compact", "dense with an exact block", .equivalent, blame: Self.configFile) { files in
                files.config["cofi"] = block(files, heads: all.heads, units: all.units, hidden: all.hidden)
            }
            add("compact", "dense with a block that pruned a head", .reject, blame: Self.either) { files in
                files.config["cofi"] = block(files, heads: [[0], [0, 1]], units: all.units, hidden: all.hidden)
            }
            add("compact", "dense with a block that pruned FFN units", .reject, blame: Self.either) { files in
                files.config["cofi"] = block(files, heads: all.heads, units: [Array(0..<20), Array(0..<24)], hidden: all.hidden)
            }
            add("compact", "dense with a block that cut the hidden width", .reject, blame: Self.either) { files in
                files.config["cofi"] = block(files, heads: all.heads, units: all.units, hidden: Array(0..<12))
            }
        }
    }
}

/// A safetensors file taken apart without validation, for corrupting it: the header as a JSON object and the data
/// region as bytes.
struct RawSafetensors {
    var header: [String: JSONValue]
    var data: [UInt8]
    /// The original header bytes (padding included) and where the data starts in the original file.
    let headerBytes: [UInt8]
    let dataStart: Int

    struct Entry {
        let name: String
        let shape: [Int]
        let begin: Int
        let end: Int
    }

    struct Malformed: Error {}

    init(_ bytes: [UInt8]) throws {
        guard bytes.count >= 8 else { throw Malformed() }
        let length = bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard length <= UInt64(bytes.count - 8) else { throw Malformed() }
        let n = Int(length)
        headerBytes = Array(bytes[8..<8 + n])
        dataStart = 8 + n
        header = try JSONDecoder().decode([String: JSONValue].self, from: Data(headerBytes))
        data = Array(bytes[(8 + n)...])
    }

    /// The tensor entries in file order (by begin offset).
    var entries: [Entry] {
        header.compactMap { name, value -> Entry? in
            guard name != "__metadata__", let o = value.object, let offsets = o["data_offsets"]?.array,
                  let shape = o["shape"]?.array else { return nil }
            return Entry(name: name, shape: shape.map { $0.integer! }, begin: offsets[0].integer!, end: offsets[1].integer!)
        }.sorted { ($0.begin, $0.name) < ($1.begin, $1.name) }
    }

    /// The file, header padded with spaces to a multiple of 8 bytes as the reference writer does.
    var bytes: [UInt8] { Self.encode(headerText: JSONValue.object(header).text, data: data) }

    static func encode(headerText: String, data: [UInt8]) -> [UInt8] {
        var h = Array(headerText.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        return encode(headerBytes: h, data: data)
    }

    static func encode(headerBytes h: [UInt8], data: [UInt8]) -> [UInt8] {
        var out = withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) }
        out += h
        out += data
        return out
    }

    /// The encoder layer a tensor belongs to, if any.
    static func layerIndex(_ name: String) -> Int? {
        guard let r = name.range(of: "encoder.layer.") else { return nil }
        return Int(name[r.upperBound...].prefix { $0.isNumber })
    }

    mutating func setEntry(_ name: String, _ key: String, _ value: JSONValue?) {
        var o = header[name]!.object!
        o[key] = value
        header[name] = .object(o)
    }

    func tensorBytes(_ name: String) -> [UInt8] {
        let e = entries.first { $0.name == name }!
        return Array(data[e.begin..<e.end])
    }

    /// Rewrites the data region from `tensors` (name, shape, bytes), in this order, with fresh offsets.
    private mutating func rebuild(_ tensors: [(String, [Int], [UInt8])]) {
        var newData: [UInt8] = []
        var newHeader = header.filter { $0.key == "__metadata__" }
        for (name, shape, bytes) in tensors {
            newHeader[name] = .object(["dtype": .string("F32"), "shape": .array(shape.map { .integer($0) }),
                                       "data_offsets": .array([.integer(newData.count), .integer(newData.count + bytes.count)])])
            newData += bytes
        }
        header = newHeader
        data = newData
    }

    private var all: [(String, [Int], [UInt8])] { entries.map { ($0.name, $0.shape, Array(data[$0.begin..<$0.end])) } }

    mutating func remove(_ name: String) { rebuild(all.filter { $0.0 != name }) }

    mutating func rename(_ old: String, _ new: String) { rebuild(all.map { ($0.0 == old ? new : $0.0, $0.1, $0.2) }) }

    mutating func append(_ name: String, shape: [Int], bytes: [UInt8]) { rebuild(all + [(name, shape, bytes)]) }

    /// Keeps the first `rows` rows (the first axis) of a tensor.
    mutating func keepRows(_ name: String, _ rows: Int) {
        rebuild(all.map { n, shape, bytes in
            guard n == name else { return (n, shape, bytes) }
            let row = 4 * shape.dropFirst().reduce(1, *)
            return (n, [rows] + shape.dropFirst(), Array(bytes[0..<rows * row]))
        })
    }

    /// Repeats the last row of a tensor.
    mutating func addRow(_ name: String) {
        rebuild(all.map { n, shape, bytes in
            guard n == name else { return (n, shape, bytes) }
            let row = 4 * shape.dropFirst().reduce(1, *)
            return (n, [shape[0] + 1] + shape.dropFirst(), bytes + bytes[(bytes.count - row)...])
        })
    }

    /// Keeps the first `columns` columns of a rank-2 tensor.
    mutating func keepColumns(_ name: String, _ columns: Int) {
        rebuild(all.map { n, shape, bytes in
            guard n == name else { return (n, shape, bytes) }
            var out: [UInt8] = []
            for r in 0..<shape[0] { out += bytes[(r * shape[1] * 4)..<((r * shape[1] + columns) * 4)] }
            return (n, [shape[0], columns], out)
        })
    }

    /// Overwrites one F32 element.
    mutating func setScalar(_ name: String, index: Int, bits: UInt32) {
        let e = entries.first { $0.name == name }!
        for i in 0..<4 { data[e.begin + 4 * index + i] = UInt8(truncatingIfNeeded: bits >> (8 * UInt32(i))) }
    }
}
