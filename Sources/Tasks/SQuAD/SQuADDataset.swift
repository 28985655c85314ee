import Foundation

/// A bad SQuAD file or a SQuAD step given inconsistent inputs: names the file, the JSON path (e.g.
/// `data[3].paragraphs[0].qas[2].answers[1]`), the line where that value starts, and what was expected.
public struct SQuADError: Error, CustomStringConvertible {
    /// The file (or other source name) the problem is in.
    public let file: String
    /// JSON path of the offending value, when there is one.
    public let path: String?
    /// 1-based line where the offending value starts, when known.
    public let line: Int?
    /// What is wrong and what was expected.
    public let message: String

    public init(file: String, path: String? = nil, line: Int? = nil, _ message: String) {
        self.file = file
        self.path = path
        self.line = line
        self.message = message
    }

    public var description: String {
        var s = file
        if let line = line { s += ":\(line)" }
        if let path = path { s += ": \(path)" }
        return s + ": " + message
    }
}

/// One gold answer: its text and where it starts in the context, in Unicode scalars (= Python `str` indices, the
/// unit of SQuAD's `answer_start`).
public struct SQuADAnswer: Equatable, Sendable {
    public let text: String
    public let start: Int

    public init(text: String, start: Int) {
        self.text = text
        self.start = start
    }

    /// End of the answer in the context (exclusive), in Unicode scalars.
    public var end: Int { start + text.unicodeScalars.count }
}

/// One question with its paragraph, as Hugging Face's `squad` / `squad_v2` dataset loaders yield it.
public struct SQuADExample: Sendable {
    /// The question id (unique in the file).
    public let id: String
    public let title: String
    /// The paragraph, exactly as in the file (not stripped).
    public let context: String
    /// The question, exactly as in the file (feature building strips its leading whitespace, as `run_qa.py` does).
    public let question: String
    /// Gold answers in file order; empty for SQuAD v2.0 unanswerable questions. Training labels use the first.
    public let answers: [SQuADAnswer]
    /// SQuAD v2.0 `is_impossible` (false when the key is absent).
    public let isImpossible: Bool
    /// SQuAD v2.0 `plausible_answers` of unanswerable questions (kept for reference, used by nothing here).
    public let plausibleAnswers: [SQuADAnswer]
    /// JSON path of the question in its file, e.g. `data[0].paragraphs[2].qas[1]`.
    public let path: String

    public init(id: String, title: String = "", context: String, question: String, answers: [SQuADAnswer],
                isImpossible: Bool = false, plausibleAnswers: [SQuADAnswer] = [], path: String = "") {
        self.id = id
        self.title = title
        self.context = context
        self.question = question
        self.answers = answers
        self.isImpossible = isImpossible
        self.plausibleAnswers = plausibleAnswers
        self.path = path
    }
}

/// A SQuAD v1.1 or v2.0 file: `{"version", "data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
/// "answers": [{"text", "answer_start"}], "is_impossible"?, "plausible_answers"?}]}]}]}`, flattened to one example
/// per question in file order.
///
/// Validation (each failure is a `SQuADError` naming file, JSON path and line): valid UTF-8 and strict JSON; every
/// required key present with its JSON type (`answer_start` an integer); question ids unique; every answer's text
/// non-empty and equal, scalar for scalar, to `context[answer_start ..< answer_start + len(text)]`; a question has
/// answers unless `is_impossible` is true, and an impossible question has none. `plausible_answers` are type-checked
/// but their offsets are not validated: nothing uses them, and a wrong one must not stop an otherwise good file.
/// Unknown keys are ignored. `title` and `version` are optional.
public struct SQuADDataset: Sendable {
    /// The file's `version` field, if any (`"1.1"`, `"v2.0"`).
    public let version: String?
    public let examples: [SQuADExample]
    /// True when some question carries `is_impossible` (the SQuAD v2.0 layout): evaluate and post-process as v2.0.
    public let isVersion2: Bool
    /// Where the data came from (used in error messages).
    public let source: String

    /// Reads and validates a SQuAD JSON file.
    public static func load(contentsOf url: URL) throws -> SQuADDataset {
        let data: Data
        if DataIO.isDirectory(url) { throw SQuADError(file: url.path, DataIO.directoryMessage + " (a SQuAD JSON file)") }
        do { data = try Data(contentsOf: url) } catch {
            throw SQuADError(file: url.path, "cannot read the file: \(error.localizedDescription)")
        }
        return try SQuADDataset(parsing: data, source: url.path)
    }

    /// Parses and validates SQuAD JSON held in memory; `source` names it in errors.
    public init(parsing data: Data, source: String) throws {
        self.source = source
        let bytes = [UInt8](data)
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
            throw SQuADError(file: source, "the file is empty; expected a SQuAD JSON object")
        }
        let root: SQuADJSON.Node
        do { root = try SQuADJSON.parse(bytes) } catch let e as SQuADJSON.SyntaxError {
            throw SQuADError(file: source, line: e.line, "column \(e.column): \(e.message)")
        }
        let reader = Reader(source: source)
        let top = try reader.object(root, "")
        version = try reader.optionalString(top, "version", "")
        var examples: [SQuADExample] = []
        var idPaths: [String: String] = [:]
        var sawImpossibleKey = false
        for (a, articleNode) in try reader.array(top, "data", "").enumerated() {
            let articlePath = "data[\(a)]"
            let article = try reader.object(articleNode, articlePath)
            let title = try reader.optionalString(article, "title", articlePath) ?? ""
            for (p, paragraphNode) in try reader.array(article, "paragraphs", articlePath).enumerated() {
                let paragraphPath = "\(articlePath).paragraphs[\(p)]"
                let paragraph = try reader.object(paragraphNode, paragraphPath)
                let context = try reader.string(paragraph, "context", paragraphPath)
                let contextScalars = Array(context.unicodeScalars)
                for (q, qaNode) in try reader.array(paragraph, "qas", paragraphPath).enumerated() {
                    let qaPath = "\(paragraphPath).qas[\(q)]"
                    let qa = try reader.object(qaNode, qaPath)
                    let id = try reader.string(qa, "id", qaPath)
                    if let first = idPaths[id] {
                        throw reader.error(qa.node, qaPath, "duplicate question id \"\(id)\" (first used at \(first))")
                    }
                    idPaths[id] = qaPath
                    let question = try reader.string(qa, "question", qaPath)
                    let impossible = try reader.optionalBool(qa, "is_impossible", qaPath)
                    sawImpossibleKey = sawImpossibleKey || impossible != nil
                    let answers = try reader.answers(qa, "answers", qaPath, context: contextScalars, required: true,
                                                     validate: true)
                    let plausible = try reader.answers(qa, "plausible_answers", qaPath, context: contextScalars,
                                                       required: false, validate: false)
                    if impossible == true && !answers.isEmpty {
                        throw reader.error(qa.node, qaPath, "is_impossible is true but the question has "
                                           + "\(answers.count) answer(s); expected \"answers\": []")
                    }
                    if impossible != true && answers.isEmpty {
                        throw reader.error(qa.node, qaPath, "the question has no answers; expected at least one, "
                                           + "or \"is_impossible\": true (SQuAD v2.0)")
                    }
                    examples.append(SQuADExample(id: id, title: title, context: context, question: question,
                                                 answers: answers, isImpossible: impossible ?? false,
                                                 plausibleAnswers: plausible, path: qaPath))
                }
            }
        }
        self.examples = examples
        self.isVersion2 = sawImpossibleKey
    }

    /// Builds a dataset from examples made in code (ids must be unique).
    public init(examples: [SQuADExample], isVersion2: Bool, version: String? = nil, source: String = "<memory>") throws {
        var seen = Set<String>()
        for e in examples where !seen.insert(e.id).inserted {
            throw SQuADError(file: source, path: e.path.isEmpty ? nil : e.path, "duplicate question id \"\(e.id)\"")
        }
        self.examples = examples
        self.isVersion2 = isVersion2
        self.version = version
        self.source = source
    }
}

/// Typed access to JSON nodes with SQuAD-style error messages.
private struct Reader {
    let source: String

    struct Object {
        let node: SQuADJSON.Node
        let members: [(key: String, node: SQuADJSON.Node)]
        func get(_ key: String) -> SQuADJSON.Node? {
            members.first { $0.key.unicodeScalars.elementsEqual(key.unicodeScalars) }?.node
        }
    }

    func error(_ node: SQuADJSON.Node, _ path: String, _ message: String) -> SQuADError {
        SQuADError(file: source, path: path.isEmpty ? "(top level)" : path, line: node.line, message)
    }

    func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func object(_ node: SQuADJSON.Node, _ path: String) throws -> Object {
        guard case .object(let members) = node.value else {
            throw error(node, path, "expected an object, found \(node.typeName)")
        }
        return Object(node: node, members: members)
    }

    func required(_ obj: Object, _ key: String, _ path: String) throws -> SQuADJSON.Node {
        guard let node = obj.get(key) else { throw error(obj.node, path, "missing key \"\(key)\"") }
        return node
    }

    func array(_ obj: Object, _ key: String, _ path: String) throws -> [SQuADJSON.Node] {
        let node = try required(obj, key, path)
        guard case .array(let items) = node.value else {
            throw error(node, join(path, key), "expected an array, found \(node.typeName)")
        }
        return items
    }

    func string(_ node: SQuADJSON.Node, _ path: String) throws -> String {
        guard case .string(let s) = node.value else { throw error(node, path, "expected a string, found \(node.typeName)") }
        return s
    }

    func string(_ obj: Object, _ key: String, _ path: String) throws -> String {
        try string(try required(obj, key, path), join(path, key))
    }

    func optionalString(_ obj: Object, _ key: String, _ path: String) throws -> String? {
        guard let node = obj.get(key) else { return nil }
        return try string(node, join(path, key))
    }

    func optionalBool(_ obj: Object, _ key: String, _ path: String) throws -> Bool? {
        guard let node = obj.get(key) else { return nil }
        guard case .bool(let b) = node.value else {
            throw error(node, join(path, key), "expected true or false, found \(node.typeName)")
        }
        return b
    }

    func integer(_ obj: Object, _ key: String, _ path: String) throws -> Int {
        let node = try required(obj, key, path)
        guard case .number(let text) = node.value else {
            throw error(node, join(path, key), "expected an integer, found \(node.typeName)")
        }
        guard let v = Int(text) else {
            throw error(node, join(path, key), "expected an integer, found the number \(text)")
        }
        return v
    }

    func answers(_ qa: Object, _ key: String, _ path: String, context: [Unicode.Scalar], required isRequired: Bool,
                 validate: Bool) throws -> [SQuADAnswer] {
        if !isRequired && qa.get(key) == nil { return [] }
        var out: [SQuADAnswer] = []
        for (i, node) in try array(qa, key, path).enumerated() {
            let answerPath = "\(path).\(key)[\(i)]"
            let answer = try object(node, answerPath)
            let text = try string(answer, "text", answerPath)
            let start = try integer(answer, "answer_start", answerPath)
            if validate { try check(text: text, start: start, context: context, node: node, path: answerPath) }
            out.append(SQuADAnswer(text: text, start: start))
        }
        return out
    }

    /// The answer must be the context's scalars `start ..< start + len(text)`, compared scalar by scalar (Swift's
    /// `String ==` would accept a canonically equivalent but differently encoded text, which Python would not).
    func check(text: String, start: Int, context: [Unicode.Scalar], node: SQuADJSON.Node, path: String) throws {
        let t = Array(text.unicodeScalars)
        if t.isEmpty { throw error(node, path, "the answer text is empty; expected the answer's words") }
        let n = context.count
        let unit = "(offsets in Unicode scalars, as Python str indices)"
        guard start >= 0, start + t.count <= n else {
            throw error(node, path, "answer_start \(start) with text \(quoted(t)) (length \(t.count)) runs outside "
                        + "the context of length \(n) \(unit)")
        }
        let found = Array(context[start..<(start + t.count)])
        guard found == t else {
            var hint = ""
            if let at = firstOccurrence(of: t, in: context) { hint = "; the text does occur at answer_start \(at)" }
            throw error(node, path, "answer text \(quoted(t)) does not match context[\(start)..<\(start + t.count)] = "
                        + "\(quoted(found)) \(unit)\(hint)")
        }
    }

    func quoted(_ s: [Unicode.Scalar]) -> String {
        var v = String.UnicodeScalarView()
        v.append(contentsOf: s)
        return "\"" + String(v).debugDescription.dropFirst().dropLast() + "\""
    }

    func firstOccurrence(of needle: [Unicode.Scalar], in hay: [Unicode.Scalar]) -> Int? {
        guard !needle.isEmpty, needle.count <= hay.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] {
            if Array(hay[i..<(i + needle.count)]) == needle { return i }
        }
        return nil
    }
}
