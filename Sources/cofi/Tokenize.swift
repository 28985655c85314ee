import ArgumentParser
import Foundation
import Runtime
import Tasks

/// `cofi tokenize --model DIR`: the model inputs of each stdin line, as JSON — to check inputs, and to compare with
/// Hugging Face on any corpus.
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tokenize stdin lines with a model's WordPiece tokenizer and print one JSON object per line.",
        discussion: """
            Each input line is one text, or a pair when a tab separates two texts (a trailing \\r is dropped). \
            Output per line: {"ids": [...], "type_ids": [...], "offsets": [[start, end], ...]}, offsets in Unicode \
            scalars of the line's own text ([0, 0] for [CLS], [SEP] and [PAD], as Hugging Face prints them); \
            with --pad also "attention_mask", with --tokens also "tokens". Identical to transformers' BertTokenizerFast(text, pair, \
            return_offsets_mapping=True) with the same max_length and truncation, including its errors: an \
            only_first / only_second truncation that cannot fit stops with the line number, as does a line that \
            is not valid UTF-8.
            MODEL DIR holds tokenizer.json, or vocab.txt with an optional tokenizer_config.json.
            """)

    @Option(name: .customLong("model"), help: "Directory with tokenizer.json, or vocab.txt (+ tokenizer_config.json).")
    var model: String

    @Option(name: .customLong("max-length"), help: "Truncate (counting [CLS]/[SEP]) to this many tokens.")
    var maxLength: Int?

    @Option(help: "longest_first, only_first, only_second or do_not_truncate (used with --max-length).")
    var truncation: String = Truncation.longestFirst.rawValue

    @Flag(name: .customLong("pad"), help: "Pad with [PAD] to --max-length.")
    var pad = false

    @Flag(help: "Also print the token strings.")
    var tokens = false

    func validate() throws {
        guard Truncation(rawValue: truncation) != nil else {
            throw ValidationError("--truncation is \"\(truncation)\"; expected one of \(Truncation.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let maxLength, maxLength < 1 { throw ValidationError("--max-length is \(maxLength); expected a positive number") }
        if pad && maxLength == nil { throw ValidationError("--pad needs --max-length") }
    }

    func run() throws {
        let tokenizer: WordPieceTokenizer
        do { tokenizer = try WordPieceTokenizer.load(directory: URL(fileURLWithPath: model)) } catch {
            throw UserError(description: "\(error)")
        }
        let strategy = Truncation(rawValue: truncation)!
        var output = ""
        func flush() {
            FileHandle.standardOutput.write(Data(output.utf8))
            output.removeAll(keepingCapacity: true)
        }
        func process(_ line: InputLine) throws {
            guard let text = String(bytes: line.bytes, encoding: .utf8) else {
                flush()
                throw UserError(description: "stdin line \(line.number): not valid UTF-8")
            }
            let texts = text.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            do {
                let e = try tokenizer.encodeChecked(texts[0], texts.count > 1 ? texts[1] : nil, maxLength: maxLength,
                                                    truncation: strategy, padToMaxLength: pad)
                output += Self.json(e, tokens: tokens ? tokenizer.tokens(e.ids) : nil)
                output += "\n"
            } catch {
                flush()
                throw UserError(description: "stdin line \(line.number): \(error)")
            }
        }
        // Lines are answered as soon as they arrive (interactive use), in batches when input is piped in.
        let reader = try LineReader(file: nil)
        while case let lines = reader.lines(max: 1024), !lines.isEmpty {
            for line in lines { try process(line) }
            flush()
        }
        if let error = reader.error { throw UserError(description: error) }
    }

    /// One line of output; keys in a fixed order.
    static func json(_ e: Encoding, tokens: [String]?) -> String {
        func list(_ xs: [Int]) -> String { "[" + xs.map(String.init).joined(separator: ", ") + "]" }
        var s = "{\"ids\": \(list(e.ids)), \"type_ids\": \(list(e.typeIds)), \"offsets\": ["
        s += e.offsets.map { o in "[\(o?.lowerBound ?? 0), \(o?.upperBound ?? 0)]" }.joined(separator: ", ")
        s += "]"
        if e.attentionMask.contains(0) { s += ", \"attention_mask\": \(list(e.attentionMask))" }
        if let tokens {
            let data = try! JSONSerialization.data(withJSONObject: tokens, options: [.withoutEscapingSlashes])
            s += ", \"tokens\": " + String(decoding: data, as: UTF8.self)
        }
        return s + "}"
    }
}
