import Foundation

/// A split of a GLUE task, as the files of `glue_data/<Task>/` name them.
public enum GLUESplit: String, CaseIterable, Sendable {
    case train, dev, test
}

/// The GLUE tasks, read from the files exactly as GLUE's official download script lays them out
/// (`glue_data/CoLA/train.tsv`, …): tab-separated, quotes literal (`QUOTE_NONE`), UTF-8.
///
/// | task | train / dev columns (text A, text B, label) | test columns | labels (index order) |
/// |---|---|---|---|
/// | CoLA | no header; 4 columns: source, label, original-label marker, sentence | `index sentence` | 0 unacceptable, 1 acceptable |
/// | SST-2 | `sentence label` | `index sentence` | 0 negative, 1 positive |
/// | MRPC | `Quality #1 ID #2 ID #1 String #2 String` | `index #1 ID #2 ID #1 String #2 String` | 0 not_equivalent, 1 equivalent |
/// | STS-B | `index genre filename year old_index source1 source2 sentence1 sentence2 score` | without `score` | regression (0–5) |
/// | QQP | `id qid1 qid2 question1 question2 is_duplicate` | `id question1 question2` | 0 not_duplicate, 1 duplicate |
/// | MNLI | `index promptID pairID genre sentence1_binary_parse sentence2_binary_parse sentence1_parse sentence2_parse sentence1 sentence2 label1 [label2 … label5] gold_label` | the first 10 | entailment, neutral, contradiction |
/// | QNLI | `index question sentence label` | `index question sentence` | entailment, not_entailment |
/// | RTE, WNLI | `index sentence1 sentence2 label` | `index sentence1 sentence2` | RTE: entailment, not_entailment; WNLI: 0 not_entailment, 1 entailment |
///
/// Label orders are those of Hugging Face `datasets`' `glue` (so label ids agree with models fine-tuned there).
/// Files with a header are read by column name, after checking that the header has the task's columns; every row
/// must have as many fields as the header. CoLA's train and dev files are read by position. MNLI's dev and test
/// files are `dev_matched.tsv` / `test_matched.tsv` for `.mnli` and `dev_mismatched.tsv` / `test_mismatched.tsv`
/// for `.mnliMismatched` (both train on `train.tsv`). Test files carry no labels: their examples have `label == nil`.
public enum GLUETask: String, CaseIterable, Sendable {
    case cola, sst2, mrpc, stsb, qqp, mnli
    /// MNLI evaluated on its mismatched-genre dev set.
    case mnliMismatched = "mnli-mm"
    case qnli, rte, wnli

    /// Accepts the raw value and the common spellings: "SST-2", "sts-b", "mnli_mismatched", "MNLI-MM".
    public init?(name: String) {
        let key = name.lowercased().replacingOccurrences(of: "_", with: "-")
        switch key {
        case "cola": self = .cola
        case "sst2", "sst-2": self = .sst2
        case "mrpc": self = .mrpc
        case "stsb", "sts-b": self = .stsb
        case "qqp": self = .qqp
        case "mnli", "mnli-m", "mnli-matched": self = .mnli
        case "mnli-mm", "mnli-mismatched": self = .mnliMismatched
        case "qnli": self = .qnli
        case "rte": self = .rte
        case "wnli": self = .wnli
        default: return nil
        }
    }

    /// The task's folder inside `glue_data/`.
    public var directoryName: String {
        switch self {
        case .cola: return "CoLA"
        case .sst2: return "SST-2"
        case .mrpc: return "MRPC"
        case .stsb: return "STS-B"
        case .qqp: return "QQP"
        case .mnli, .mnliMismatched: return "MNLI"
        case .qnli: return "QNLI"
        case .rte: return "RTE"
        case .wnli: return "WNLI"
        }
    }

    /// The file of `split` inside the task folder.
    public func fileName(_ split: GLUESplit) -> String {
        switch (self, split) {
        case (.mnli, .dev): return "dev_matched.tsv"
        case (.mnli, .test): return "test_matched.tsv"
        case (.mnliMismatched, .dev): return "dev_mismatched.tsv"
        case (.mnliMismatched, .test): return "test_mismatched.tsv"
        default: return split.rawValue + ".tsv"
        }
    }

    /// Classification with the official label names, or regression for STS-B.
    public var kind: LabelKind {
        switch self {
        case .cola: return .classification(names: ["unacceptable", "acceptable"])
        case .sst2: return .classification(names: ["negative", "positive"])
        case .mrpc: return .classification(names: ["not_equivalent", "equivalent"])
        case .stsb: return .regression
        case .qqp: return .classification(names: ["not_duplicate", "duplicate"])
        case .mnli, .mnliMismatched: return .classification(names: ["entailment", "neutral", "contradiction"])
        case .qnli, .rte: return .classification(names: ["entailment", "not_entailment"])
        case .wnli: return .classification(names: ["not_entailment", "entailment"])
        }
    }

    /// The label values as written in the files, in label-index order (nil for STS-B's scores).
    public var fileLabels: [String]? {
        switch self {
        case .cola, .sst2, .mrpc, .qqp, .wnli: return ["0", "1"]
        case .stsb: return nil
        case .mnli, .mnliMismatched, .qnli, .rte: return kind.labelNames
        }
    }

    /// CoLA: Matthews; STS-B: Pearson and Spearman (primary: their mean, "corr"); MRPC and QQP: accuracy and F1
    /// (primary: accuracy); the others: accuracy. See `MetricSpec`.
    public var metrics: MetricSpec {
        switch self {
        case .cola: return .matthews
        case .stsb: return .pearsonSpearman
        case .mrpc, .qqp: return .accuracyAndF1
        case .sst2, .mnli, .mnliMismatched, .qnli, .rte, .wnli: return .accuracy
        }
    }

    /// Reads `split` from a task folder (`glue_data/SST-2`) or from `glue_data` itself.
    public func read(_ split: GLUESplit, from directory: URL, options: ReadOptions = ReadOptions()) throws -> TaskDataset {
        let direct = directory.appendingPathComponent(fileName(split))
        let nested = directory.appendingPathComponent(directoryName).appendingPathComponent(fileName(split))
        let fm = FileManager.default
        guard let file = [direct, nested].first(where: { fm.fileExists(atPath: $0.path) }) else {
            throw DataError(file: direct.path, message: "no such file (nor \(nested.path)); expected GLUE's " +
                            "\(directoryName)/\(fileName(split)) as laid out by the official download script")
        }
        return try read(file: file, split: split, options: options)
    }

    /// Reads one file in the layout of `split` (train and dev share a layout; test has no labels).
    public func read(file: URL, split: GLUESplit, options: ReadOptions = ReadOptions()) throws -> TaskDataset {
        let bytes = try DataIO.readBytes(file)
        return try parse(bytes, name: file.path, split: split, options: options)
    }

    /// Parses a whole file's bytes in the layout of `split`; `name` is used in errors and `SourceLocation`s.
    public func parse(_ bytes: [UInt8], name: String, split: GLUESplit,
                      options: ReadOptions = ReadOptions()) throws -> TaskDataset {
        let table = try DelimitedFile.parse(bytes, name: name, format: .glueTSV)
        let layout = self.layout(split)
        let displayName = "GLUE \(directoryName) \(split.rawValue)"
        guard let first = table.records.first else {
            let what = layout.header.map { "the header [" + $0.joined(separator: "\\t") + "]" } ?? "CoLA's 4-column rows"
            throw DataError(file: name, message: "empty file; expected \(what)")
        }
        var policy = BadRowPolicy(options)
        var examples: [TextExample] = []
        examples.reserveCapacity(table.records.count)

        if let expected = layout.header {
            let required = [layout.textA, layout.textB, layout.label].compactMap { $0 }
            let columns = try HeaderColumns(header: first, file: name, required: required, expected: expected,
                                            context: displayName)
            let a = columns.position(layout.textA)
            let b = layout.textB.map(columns.position)
            let l = layout.label.map(columns.position)
            for record in table.records.dropFirst() {
                if let error = columns.checkWidth(record) {
                    try policy.reject(error)
                    continue
                }
                var label: Label?
                if let l {
                    do {
                        label = try parseLabel(record.fields[l], file: name, line: record.line, column: columns.label(l))
                    } catch let error as DataError {
                        try policy.reject(error)
                        continue
                    }
                }
                examples.append(TextExample(textA: record.fields[a], textB: b.map { record.fields[$0] }, label: label,
                                            source: SourceLocation(file: name, line: record.line)))
            }
        } else {
            // CoLA train/dev: source, label, original-label marker, sentence — no header.
            for record in table.records {
                if let error = record.error {
                    try policy.reject(error)
                    continue
                }
                guard record.fields.count == 4 else {
                    let found = record.fields.isEmpty ? "an empty line" : "\(record.fields.count) fields"
                    try policy.reject(DataError(
                        file: name, line: record.line,
                        message: "expected CoLA's 4 tab-separated columns (source, label, original-label marker, " +
                            "sentence) with no header; found \(found)"))
                    continue
                }
                do {
                    let label = try parseLabel(record.fields[1], file: name, line: record.line, column: "2 (label)")
                    examples.append(TextExample(textA: record.fields[3], label: label,
                                                source: SourceLocation(file: name, line: record.line)))
                } catch let error as DataError {
                    try policy.reject(error)
                }
            }
        }
        if examples.isEmpty && policy.skipped.count == 0 {
            throw DataError(file: name, message: "no examples: the file has a header but no rows")
        }
        return TaskDataset(name: rawValue, examples: examples, kind: kind, metrics: metrics, skipped: policy.skipped)
    }

    private func parseLabel(_ raw: String, file: String, line: Int, column: String) throws -> Label {
        if let values = fileLabels {
            guard let k = values.firstIndex(of: raw) else {
                throw DataError(file: file, line: line, column: column,
                                message: "label \(DataIO.quoted(raw)) is not in the label set; expected one of " +
                                    values.joined(separator: ", "))
            }
            return .classification(k)
        }
        guard let v = Double(raw), v.isFinite else {
            throw DataError(file: file, line: line, column: column,
                            message: "expected a finite number (a similarity score), found \(DataIO.quoted(raw))")
        }
        return .regression(v)
    }

    /// Which columns hold what in a split's file. `header == nil` means CoLA's headerless train/dev layout.
    private struct Layout {
        var header: [String]?
        var textA: String
        var textB: String?
        var label: String?
    }

    private func layout(_ split: GLUESplit) -> Layout {
        let test = split == .test
        switch self {
        case .cola:
            return test ? Layout(header: ["index", "sentence"], textA: "sentence")
                        : Layout(header: nil, textA: "sentence", label: "label")
        case .sst2:
            return test ? Layout(header: ["index", "sentence"], textA: "sentence")
                        : Layout(header: ["sentence", "label"], textA: "sentence", label: "label")
        case .mrpc:
            let rest = ["#1 ID", "#2 ID", "#1 String", "#2 String"]
            return Layout(header: [test ? "index" : "Quality"] + rest, textA: "#1 String", textB: "#2 String",
                          label: test ? nil : "Quality")
        case .stsb:
            let common = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2"]
            return Layout(header: test ? common : common + ["score"], textA: "sentence1", textB: "sentence2",
                          label: test ? nil : "score")
        case .qqp:
            return test ? Layout(header: ["id", "question1", "question2"], textA: "question1", textB: "question2")
                        : Layout(header: ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                                 textA: "question1", textB: "question2", label: "is_duplicate")
        case .mnli, .mnliMismatched:
            let common = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                          "sentence1_parse", "sentence2_parse", "sentence1", "sentence2"]
            let labels: [String]
            switch split {
            case .train: labels = ["label1", "gold_label"]
            case .dev: labels = ["label1", "label2", "label3", "label4", "label5", "gold_label"]
            case .test: labels = []
            }
            return Layout(header: common + labels, textA: "sentence1", textB: "sentence2",
                          label: test ? nil : "gold_label")
        case .qnli:
            return Layout(header: ["index", "question", "sentence"] + (test ? [] : ["label"]), textA: "question",
                          textB: "sentence", label: test ? nil : "label")
        case .rte, .wnli:
            return Layout(header: ["index", "sentence1", "sentence2"] + (test ? [] : ["label"]), textA: "sentence1",
                          textB: "sentence2", label: test ? nil : "label")
        }
    }
}
