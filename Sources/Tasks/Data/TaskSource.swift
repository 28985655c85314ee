import BERT
import Foundation

/// A task that cannot be resolved or read: names the task, file or folder and what was expected.
public struct TaskError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Where a task's train and dev examples come from: a GLUE folder, the built-in movie-snippets task, or the user's
/// own files.
public enum TaskSource {
    /// GLUE's official files: `directory` is `glue_data` or the task's own folder.
    case glue(GLUETask, directory: URL)
    /// The movie-snippets task in `directory`, built there from `rawFile` (when given and present) unless a build
    /// of the same file is already there.
    case movieSnippets(directory: URL, rawFile: URL?)
    /// The user's files; the dev file's labels must be in the training file's label set.
    case files(train: URL?, dev: URL, spec: UserDataSpec)

    /// The task called `name`: a GLUE name (`sst2`, `SST-2`, `mnli-mm`, …) read from `data` (default
    /// `<assets>/glue_data`), or "movie-snippets" in `data` (default `<assets>/movie-snippets`), built from the raw
    /// file under `assets`.
    public static func named(_ name: String, data: URL?, assets: URL) throws -> TaskSource {
        if name.lowercased() == MovieSnippets.name {
            return .movieSnippets(directory: data ?? assets.appendingPathComponent(MovieSnippets.name),
                                  rawFile: MovieSnippets.rawFile(inAssets: assets))
        }
        guard let task = GLUETask(name: name) else {
            throw TaskError("unknown task '\(name)'; expected \(MovieSnippets.name) or a GLUE task ("
                               + GLUETask.allCases.map(\.rawValue).joined(separator: ", ")
                               + "), or give your own files with --train / --dev")
        }
        let directory = data ?? assets.appendingPathComponent("glue_data")
        guard FileManager.default.fileExists(atPath: directory.path) else {
            throw TaskError("\(directory.path): no such directory; give GLUE's data folder (glue_data, or "
                               + "glue_data/\(task.directoryName)) with --data")
        }
        guard DataIO.isDirectory(directory) else {
            throw TaskError("\(directory.path): is a file; expected GLUE's data folder (glue_data, or "
                               + "glue_data/\(task.directoryName)) with --data")
        }
        return .glue(task, directory: directory)
    }

    /// The task's name for messages and run records.
    public var name: String {
        switch self {
        case .glue(let task, _): return task.rawValue
        case .movieSnippets: return MovieSnippets.name
        case .files(let train, let dev, _): return (train ?? dev).lastPathComponent
        }
    }

    /// Reads the dev split and, when `train` is true, the training split; both must have labeled examples.
    public func load(train: Bool) throws -> (train: TaskDataset?, dev: TaskDataset) {
        var result: (train: TaskDataset?, dev: TaskDataset)
        switch self {
        case let .glue(task, directory):
            result = (train ? try task.read(.train, from: directory) : nil, try task.read(.dev, from: directory))
        case let .movieSnippets(directory, rawFile):
            let fm = FileManager.default
            if let rawFile, fm.fileExists(atPath: rawFile.path) {
                try MovieSnippets.prepare(rawFile: rawFile, directory: directory)
            } else if !fm.fileExists(atPath: directory.appendingPathComponent("dev.tsv").path) {
                throw TaskError("\(MovieSnippets.name): neither a built task in \(directory.path) nor the raw file "
                                   + "\(rawFile?.path ?? MovieSnippets.rawFileSubpath); fetch it with `cofi fetch`")
            }
            result = (train ? try MovieSnippets.read(.train, from: directory) : nil, try MovieSnippets.read(.dev, from: directory))
        case let .files(trainURL, devURL, spec):
            if train {
                guard let trainURL else { throw TaskError("training needs a training file (--train)") }
                let read = try UserData.read(train: trainURL, dev: devURL, spec: spec)
                result = (read.train, read.dev!)
            } else {
                result = (nil, try UserData.read(devURL, spec: spec))
            }
        }
        for (split, dataset) in [("training", result.train), ("dev", result.dev)] {
            guard let dataset else { continue }
            guard !dataset.examples.isEmpty else { throw TaskError("the \(split) set of \(name) has no examples") }
            guard dataset.isLabeled else {
                let row = dataset.examples.first { $0.label == nil }!.source
                throw TaskError("\(row): the \(split) set needs a label on every example")
            }
        }
        if case .classification(let names)? = result.train?.kind, names.count < 2 {
            throw TaskError("\(name): the training set has \(names.count) label value(s) (\(names.joined(separator: ", "))); "
                               + "classification needs at least 2")
        }
        return result
    }
}

extension TaskHeadKind {
    /// The head a task of `kind` needs.
    public init(_ kind: LabelKind) {
        switch kind {
        case .classification(let names): self = .classification(labels: names.count)
        case .regression: self = .regression
        }
    }
}

/// The SQuAD task on the command line: "squad" (v1.1: `train-v1.1.json`, `dev-v1.1.json`) or "squad_v2" (v2.0:
/// `train-v2.0.json`, `dev-v2.0.json`), the official files in one folder.
public struct SQuADSource: Sendable {
    public let version2: Bool
    public let directory: URL

    public var name: String { version2 ? "squad_v2" : "squad" }
    public var trainFile: URL { directory.appendingPathComponent(version2 ? "train-v2.0.json" : "train-v1.1.json") }
    public var devFile: URL { directory.appendingPathComponent(version2 ? "dev-v2.0.json" : "dev-v1.1.json") }

    public init(version2: Bool, directory: URL) {
        self.version2 = version2
        self.directory = directory
    }

    /// The source for a task name ("squad", "squad1", "squad_v1.1"; "squad_v2", "squad2", "squad-v2.0"), reading from
    /// `data` (default `<assets>/squad`); nil when the name is not SQuAD's.
    public static func named(_ name: String, data: URL?, assets: URL) -> SQuADSource? {
        let key = name.lowercased().replacingOccurrences(of: "-", with: "_")
        let v1 = ["squad", "squad1", "squad_v1", "squad_v1.1", "squad1.1"], v2 = ["squad2", "squad_v2", "squad_v2.0", "squad2.0"]
        guard v1.contains(key) || v2.contains(key) else { return nil }
        return SQuADSource(version2: v2.contains(key), directory: data ?? assets.appendingPathComponent("squad"))
    }

    /// Reads the dev file and, when `train` is true, the training file; a v1.1/v2.0 mismatch with the task name,
    /// a missing file or a file without questions is an error naming the file.
    public func load(train: Bool) throws -> (train: SQuADDataset?, dev: SQuADDataset) {
        func read(_ url: URL) throws -> SQuADDataset {
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw TaskError("\(url.path): no such file; \(name) reads the official \(trainFile.lastPathComponent) and "
                                   + "\(devFile.lastPathComponent) from --data DIR")
            }
            let d = try SQuADDataset.load(contentsOf: url)
            guard !d.examples.isEmpty else { throw TaskError("\(url.path): no questions") }
            if d.isVersion2 && !version2 {
                throw TaskError("\(url.path): a SQuAD v2.0 file (it has is_impossible); use --task squad_v2")
            }
            return d
        }
        return (train ? try read(trainFile) : nil, try read(devFile))
    }
}
