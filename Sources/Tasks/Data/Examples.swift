import Foundation

/// The gold label of one example.
public enum Label: Hashable, Sendable, CustomStringConvertible {
    /// Index into the task's label names.
    case classification(Int)
    /// A real-valued target (STS-B similarity, user regression).
    case regression(Double)

    /// The class index, or nil for a regression label.
    public var classIndex: Int? {
        if case .classification(let k) = self { return k }
        return nil
    }

    /// The numeric value: the class index as a Double, or the regression target.
    public var value: Double {
        switch self {
        case .classification(let k): return Double(k)
        case .regression(let v): return v
        }
    }

    public var description: String {
        switch self {
        case .classification(let k): return "class \(k)"
        case .regression(let v): return "\(v)"
        }
    }
}

/// Where an example came from: file and 1-based line.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int

    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }

    public var description: String { "\(file):\(line)" }
}

/// One text or text pair with its label (nil for unlabeled test files).
public struct TextExample: Hashable, Sendable {
    public var textA: String
    public var textB: String?
    public var label: Label?
    public var source: SourceLocation

    public init(textA: String, textB: String? = nil, label: Label?, source: SourceLocation) {
        self.textA = textA
        self.textB = textB
        self.label = label
        self.source = source
    }
}

/// What a task predicts.
public enum LabelKind: Hashable, Sendable {
    /// One of `names.count` classes; `Label.classification(k)` means `names[k]`.
    case classification(names: [String])
    /// One real number.
    case regression

    /// Width of the model's output: the number of classes, or 1 for regression.
    public var outputCount: Int {
        switch self {
        case .classification(let names): return names.count
        case .regression: return 1
        }
    }

    /// The class names in index order; empty for regression.
    public var labelNames: [String] {
        if case .classification(let names) = self { return names }
        return []
    }

    public var isRegression: Bool { self == .regression }
}

/// A split of a task, read and validated: its examples, what they predict and how predictions are scored.
public struct TaskDataset: Sendable {
    /// The task name ("sst2", "movie-snippets", or the user's file name).
    public var name: String
    public var examples: [TextExample]
    public var kind: LabelKind
    public var metrics: MetricSpec
    /// Rows dropped under `ReadOptions.skipBadRows` (none otherwise).
    public var skipped: SkippedRows

    public init(name: String, examples: [TextExample], kind: LabelKind, metrics: MetricSpec,
                skipped: SkippedRows = SkippedRows()) {
        self.name = name
        self.examples = examples
        self.kind = kind
        self.metrics = metrics
        self.skipped = skipped
    }

    /// Class names in index order (empty for regression).
    public var labelNames: [String] { kind.labelNames }
    /// Number of model outputs (classes, or 1 for regression).
    public var numLabels: Int { kind.outputCount }
    /// Whether every example has a label (false for GLUE test files).
    public var isLabeled: Bool { examples.allSatisfy { $0.label != nil } }
    /// Whether examples are pairs.
    public var isPairTask: Bool { examples.contains { $0.textB != nil } }
    /// The gold labels; nil if any example is unlabeled.
    public var labels: [Label]? {
        var out: [Label] = []
        out.reserveCapacity(examples.count)
        for e in examples {
            guard let l = e.label else { return nil }
            out.append(l)
        }
        return out
    }
}
