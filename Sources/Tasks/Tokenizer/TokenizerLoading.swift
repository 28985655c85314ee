import Foundation
import Formats

extension WordPieceTokenizer {
    /// Reads tokenizer.json if present (BertWordPiece: model.vocab, normalizer options, special tokens), else
    /// vocab.txt + tokenizer_config.json (do_lower_case, strip_accents, tokenize_chinese_chars).
    ///
    /// tokenizer.json's own `truncation` and `padding` settings are ignored, as transformers ignores them:
    /// `encode` takes them as arguments.
    public static func load(directory: URL) throws -> WordPieceTokenizer {
        let json = directory.appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: json.path) { return try load(tokenizerJSON: json) }
        let vocab = directory.appendingPathComponent("vocab.txt")
        guard FileManager.default.fileExists(atPath: vocab.path) else {
            throw TokenizerError("\(directory.path): no tokenizer: expected tokenizer.json or vocab.txt (with an optional tokenizer_config.json) in this directory")
        }
        let config = try TokenizerConfig.read(directory.appendingPathComponent("tokenizer_config.json"))
        return try load(vocabFile: vocab, doLowerCase: config.doLowerCase, stripAccents: config.stripAccents,
                        tokenizeChineseChars: config.tokenizeChineseChars, specialTokens: config.specialTokens)
    }

    /// A BERT tokenizer from a vocab.txt (one token per line, id = line number − 1), as HF `BertTokenizerFast`
    /// builds it from `vocab=` and these options.
    public static func load(vocabFile: URL, doLowerCase: Bool, stripAccents: Bool? = nil) throws -> WordPieceTokenizer {
        try load(vocabFile: vocabFile, doLowerCase: doLowerCase, stripAccents: stripAccents, tokenizeChineseChars: true,
                 specialTokens: .bert)
    }

    static func load(vocabFile: URL, doLowerCase: Bool, stripAccents: Bool?, tokenizeChineseChars: Bool,
                     specialTokens: SpecialTokenNames) throws -> WordPieceTokenizer {
        let tokens = try readVocab(vocabFile)
        return try WordPieceTokenizer(
            source: vocabFile.path, idToToken: tokens, doLowerCase: doLowerCase,
            stripAccents: stripAccents ?? doLowerCase, tokenizeChineseChars: tokenizeChineseChars, cleanText: true,
            maxInputCharsPerWord: 100, specialTokens: specialTokens, addedTokens: nil, continuingSubwordPrefix: "##",
            decodeCleanup: true)
    }

    /// The lines of vocab.txt with trailing whitespace removed (tokenizers' `WordPiece::read_file`); a duplicate
    /// token is an error (HF would silently keep the last id and leave a hole).
    static func readVocab(_ url: URL) throws -> [String] {
        let data: Data
        if DataIO.isDirectory(url) { throw TokenizerError("\(url.path): \(DataIO.directoryMessage) (the vocabulary, one token per line)") }
        do { data = try Data(contentsOf: url) } catch {
            throw TokenizerError("\(url.path): cannot read the vocabulary file (\(error.localizedDescription))")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TokenizerError("\(url.path): not valid UTF-8; expected one token per line")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        guard !lines.isEmpty else { throw TokenizerError("\(url.path): empty vocabulary; expected one token per line") }
        var tokens: [String] = []
        tokens.reserveCapacity(lines.count)
        var firstLine: [String: Int] = [:]
        for (i, line) in lines.enumerated() {
            var scalars = Substring(line).unicodeScalars
            while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() }
            let token = String(scalars)
            if let first = firstLine[token] {
                throw TokenizerError("\(url.path) line \(i + 1): duplicate token \(quoted(token)) (first on line \(first))")
            }
            firstLine[token] = i + 1
            tokens.append(token)
        }
        return tokens
    }

    /// The options of tokenizer_config.json that a BERT tokenizer uses (all optional).
    struct TokenizerConfig {
        var doLowerCase = true
        var stripAccents: Bool?
        var tokenizeChineseChars = true
        var specialTokens = SpecialTokenNames.bert

        static func read(_ url: URL) throws -> TokenizerConfig {
            var config = TokenizerConfig()
            guard FileManager.default.fileExists(atPath: url.path) else { return config }
            let file = try JSONFile(url)
            let root = try file.object(file.root, "")
            if let v = root["do_lower_case"] { config.doLowerCase = try file.bool(v, "do_lower_case") }
            if let v = root["strip_accents"], !v.isNull { config.stripAccents = try file.bool(v, "strip_accents") }
            if let v = root["tokenize_chinese_chars"] {
                config.tokenizeChineseChars = try file.bool(v, "tokenize_chinese_chars")
            }
            func name(_ key: String) throws -> String? {
                guard let v = root[key], !v.isNull else { return nil }
                if let s = v.string ?? v.object?["content"]?.string { return s }
                throw file.mismatch(v, key, "a string or {\"content\": …}")
            }
            if let s = try name("cls_token") { config.specialTokens.cls = s }
            if let s = try name("sep_token") { config.specialTokens.sep = s }
            if let s = try name("pad_token") { config.specialTokens.pad = s }
            if let s = try name("unk_token") { config.specialTokens.unk = s }
            if let s = try name("mask_token") { config.specialTokens.mask = s }
            return config
        }
    }

    /// A tokenizers `tokenizer.json` of the BertWordPiece kind: WordPiece model, BertNormalizer (or none),
    /// BertPreTokenizer, and a BERT template (TemplateProcessing or BertProcessing).
    static func load(tokenizerJSON url: URL) throws -> WordPieceTokenizer {
        let file = try JSONFile(url)
        let root = try file.object(file.root, "")
        let model = try file.object(root["model"], "model")
        guard model["type"]?.string == "WordPiece" else {
            throw file.mismatch(model["type"], "model.type", "\"WordPiece\" (a BERT WordPiece tokenizer)")
        }
        let vocab = try file.object(model["vocab"], "model.vocab")
        var idToToken = [String?](repeating: nil, count: vocab.count)
        for (token, value) in vocab {
            let id = try file.int(value, "model.vocab[\(quoted(token))]")
            guard id >= 0 && id < vocab.count else {
                throw file.mismatch(value, "model.vocab[\(quoted(token))]", "ids 0…\(vocab.count - 1)")
            }
            if let other = idToToken[id] {
                throw TokenizerError("\(url.path): model.vocab: id \(id) is given to both \(quoted(other)) and \(quoted(token))")
            }
            idToToken[id] = token
        }
        if let missing = idToToken.firstIndex(where: { $0 == nil }) {
            throw TokenizerError("\(url.path): model.vocab has no token with id \(missing); expected ids 0…\(vocab.count - 1)")
        }
        var tokens = idToToken.map { $0! }
        let unk = try model["unk_token"].map { try file.string($0, "model.unk_token") } ?? "[UNK]"
        let prefix = try model["continuing_subword_prefix"].map { try file.string($0, "model.continuing_subword_prefix") } ?? "##"
        let maxChars = try model["max_input_chars_per_word"].map { try file.int($0, "model.max_input_chars_per_word") } ?? 100

        var lowercase = false, stripAccents: Bool? = nil, cleanText = false, chinese = false
        if let n = root["normalizer"], !n.isNull {
            let normalizer = try file.object(n, "normalizer")
            guard normalizer["type"]?.string == "BertNormalizer" else {
                throw file.mismatch(normalizer["type"], "normalizer.type", "\"BertNormalizer\" (or no normalizer)")
            }
            cleanText = try normalizer["clean_text"].map { try file.bool($0, "normalizer.clean_text") } ?? true
            chinese = try normalizer["handle_chinese_chars"].map { try file.bool($0, "normalizer.handle_chinese_chars") } ?? true
            lowercase = try normalizer["lowercase"].map { try file.bool($0, "normalizer.lowercase") } ?? true
            if let s = normalizer["strip_accents"], !s.isNull { stripAccents = try file.bool(s, "normalizer.strip_accents") }
        }
        let pre = try file.object(root["pre_tokenizer"], "pre_tokenizer")
        guard pre["type"]?.string == "BertPreTokenizer" else {
            throw file.mismatch(pre["type"], "pre_tokenizer.type", "\"BertPreTokenizer\"")
        }

        var names = SpecialTokenNames.bert
        names.unk = unk
        (names.cls, names.sep) = try bertTemplate(file, root["post_processor"])
        if let pad = root["padding"]?.object?["pad_token"]?.string { names.pad = pad }

        var added: [AddedToken] = []
        for (i, t) in try file.addedTokens(root).enumerated() {
            if t.id == tokens.count {
                tokens.append(t.content)  // an added token outside the model vocabulary takes the next id
            } else if t.id < 0 || t.id > tokens.count || tokens[t.id] != t.content {
                let there = t.id >= 0 && t.id < tokens.count ? quoted(tokens[t.id]) : "no such id"
                throw TokenizerError("\(url.path): added_tokens[\(i)] is \(quoted(t.content)) with id \(t.id), but the vocabulary has \(there) there")
            }
            added.append(AddedToken(content: t.content, id: t.id, special: t.special, normalized: t.normalized))
        }
        var cleanup = true
        if let d = root["decoder"]?.object, d["type"]?.string == "WordPiece", let c = d["cleanup"]?.bool { cleanup = c }
        return try WordPieceTokenizer(
            source: url.path, idToToken: tokens, doLowerCase: lowercase, stripAccents: stripAccents ?? lowercase,
            tokenizeChineseChars: chinese, cleanText: cleanText, maxInputCharsPerWord: maxChars,
            specialTokens: names, addedTokens: added, continuingSubwordPrefix: prefix, decodeCleanup: cleanup)
    }

    /// The [CLS] and [SEP] tokens of a BERT post-processor; any other template is an error.
    static func bertTemplate(_ file: JSONFile, _ value: JSONValue?) throws -> (cls: String, sep: String) {
        let p = try file.object(value, "post_processor")
        switch p["type"]?.string {
        case "BertProcessing":
            guard let cls = p["cls"]?.array?.first?.string, let sep = p["sep"]?.array?.first?.string else {
                throw TokenizerError("\(file.url.path): post_processor (BertProcessing) needs cls and sep as [token, id]")
            }
            return (cls, sep)
        case "TemplateProcessing":
            func pieces(_ key: String) throws -> [String] {
                guard let items = p[key]?.array else { throw file.mismatch(p[key], "post_processor.\(key)", "a template array") }
                return items.map { item in
                    if let s = item.object?["SpecialToken"]?.object {
                        return "\(s["id"]?.string ?? "?"):\(s["type_id"]?.integer ?? -1)"
                    }
                    if let s = item.object?["Sequence"]?.object {
                        return "$\(s["id"]?.string ?? "?"):\(s["type_id"]?.integer ?? -1)"
                    }
                    return "?"
                }
            }
            let single = try pieces("single"), pair = try pieces("pair")
            guard single.count == 3, single[1] == "$A:0", single[0].hasSuffix(":0"), single[2].hasSuffix(":0") else {
                throw TokenizerError("\(file.url.path): post_processor.single is \(single.joined(separator: " ")); expected the BERT template [CLS]:0 $A:0 [SEP]:0")
            }
            let cls = String(single[0].dropLast(2)), sep = String(single[2].dropLast(2))
            guard pair == ["\(cls):0", "$A:0", "\(sep):0", "$B:1", "\(sep):1"] else {
                throw TokenizerError("\(file.url.path): post_processor.pair is \(pair.joined(separator: " ")); expected the BERT template \(cls):0 $A:0 \(sep):0 $B:1 \(sep):1")
            }
            return (cls, sep)
        default:
            throw file.mismatch(p["type"], "post_processor.type", "\"TemplateProcessing\" or \"BertProcessing\" with [CLS] … [SEP]")
        }
    }
}

extension JSONValue {
    /// A scalar as written (a string in double quotes, `quoted`), else "an array" or "an object", for messages.
    fileprivate var described: String {
        switch self {
        case .string(let s): return quoted(s)
        case .array, .object: return kind
        case .null, .bool, .integer, .number: return text
        }
    }
}

/// A parsed JSON file whose accessors name the file and the JSON path in their errors.
struct JSONFile {
    let url: URL
    let root: JSONValue

    init(_ url: URL) throws {
        self.url = url
        let data: Data
        if DataIO.isDirectory(url) { throw TokenizerError("\(url.path): \(DataIO.directoryMessage) (JSON)") }
        do { data = try Data(contentsOf: url) } catch {
            throw TokenizerError("\(url.path): cannot read (\(error.localizedDescription))")
        }
        do { root = try JSONDecoder().decode(JSONValue.self, from: data) } catch {
            throw TokenizerError("\(url.path): invalid JSON (\(JSONFile.reason(error, data)))")
        }
    }

    /// JSONDecoder does not say where the JSON is broken; JSONSerialization does ("… around line 3, column 7").
    static func reason(_ error: Error, _ data: Data) -> String {
        do { _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            let message = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
            if let r = message.range(of: "character "), let offset = Int(message[r.upperBound...].prefix { $0.isNumber }) {
                let before = data.prefix(offset)
                let line = before.filter { $0 == 0x0A }.count + 1
                let column = offset - (before.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0) + 1
                return "\(message[..<r.lowerBound])line \(line), column \(column)"
            }
            return message
        }
        return "\(error)"
    }

    func object(_ v: JSONValue?, _ path: String) throws -> [String: JSONValue] {
        guard let o = v?.object else { throw mismatch(v, path, "an object") }
        return o
    }

    func string(_ v: JSONValue?, _ path: String) throws -> String {
        guard let s = v?.string else { throw mismatch(v, path, "a string") }
        return s
    }

    func int(_ v: JSONValue?, _ path: String) throws -> Int {
        guard let i = v?.integer else { throw mismatch(v, path, "an integer") }
        return i
    }

    func bool(_ v: JSONValue?, _ path: String) throws -> Bool {
        guard let b = v?.bool else { throw mismatch(v, path, "true or false") }
        return b
    }

    /// One entry of a tokenizer.json's `added_tokens`.
    struct AddedTokenEntry {
        var content: String
        var id: Int
        var special: Bool
        /// Whether the normaliser runs on it before matching (tokenizers' default: not for special tokens).
        var normalized: Bool
    }

    /// The `added_tokens` of a tokenizer.json's top level (none when absent or null). lstrip, rstrip and
    /// single_word are refused: the tokenizers here match an added token exactly where it stands.
    func addedTokens(_ root: [String: JSONValue]) throws -> [AddedTokenEntry] {
        guard let list = root["added_tokens"], !list.isNull else { return [] }
        guard let items = list.array else { throw mismatch(list, "added_tokens", "an array") }
        return try items.enumerated().map { i, item in
            let path = "added_tokens[\(i)]"
            let t = try object(item, path)
            let content = try string(t["content"], "\(path).content")
            for flag in ["lstrip", "rstrip", "single_word"] where t[flag]?.bool == true {
                throw TokenizerError("\(url.path): \(path) (\(quoted(content))) sets \(flag), which this tokenizer does not support")
            }
            let special = try t["special"].map { try bool($0, "\(path).special") } ?? false
            return AddedTokenEntry(content: content, id: try int(t["id"], "\(path).id"), special: special,
                                   normalized: try t["normalized"].map { try bool($0, "\(path).normalized") } ?? !special)
        }
    }

    func mismatch(_ v: JSONValue?, _ path: String, _ expected: String) -> TokenizerError {
        TokenizerError("\(url.path): \(path.isEmpty ? "the top level" : path) is \(v?.described ?? "missing"); expected \(expected)")
    }
}
