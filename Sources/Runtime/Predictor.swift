import BERT
import Foundation
import Tasks

/// Turns records — texts, text pairs, questions about a context — into labels and probabilities, scores or answer
/// spans with the inference engine. Shared by `cofi predict`, `cofi bench` and `cofi serve`.
///
/// Texts and pairs are encoded by `TaskEncoder` (`[CLS] A [SEP] (B [SEP])`, `longest_first` truncation to the max
/// length, flagged `truncated`); a question and its context become SQuAD windows (`SQuADFeature.make`, the context
/// split with a doc stride, never truncated) and the answer comes from Hugging Face's post-processing
/// (`SQuADPostprocessing`) over all windows. The sequences of many records go to the engine together, packed
/// without padding, `options.batchSize` per call; results come back in input order.
///
/// Errors are per record: an empty text, a record of the wrong kind for the model's head (a question for a
/// classifier, a plain text for a question-answering model), a question too long for the max length, a pair for a
/// model with one token type, non-finite model outputs. A failed record gets `Prediction.failure` and never stops
/// the others — even when the engine rejects a batch, each sequence is retried alone so only the bad one fails.
///
/// Not thread-safe: the engine reuses its buffers across calls. Serve concurrent requests from one queue (or one
/// predictor per thread).
public final class Predictor {
    public let engine: InferenceEngine
    public let tokenizer: WordPieceTokenizer
    /// The model's head.
    public let task: TaskHeadKind
    /// Classification: the label names by class index (config.json's id2label, else `LABEL_0`, `LABEL_1`, … as
    /// transformers names them); empty for regression and span models.
    public let labels: [String]
    /// Tokens per sequence, special tokens included (resolved from `options`).
    public let maxLength: Int
    /// Question + context: context tokens shared by consecutive windows (resolved from `options`).
    public let docStride: Int
    public let options: PredictorOptions
    private let encoder: TaskEncoder

    /// A predictor for `model` (which must have a task head) with its `tokenizer`. `labels` names the classes of a
    /// classification head in index order (nil: `LABEL_i`); `threads` goes to the engine. Throws `PredictorError`
    /// naming what does not fit: no head, labels of the wrong count or a name twice, a max length outside 3 … max positions, a doc
    /// stride not below it, a tokenizer with more tokens than the model's embedding table, a batch size below 1.
    public init(model: BertModel, tokenizer: WordPieceTokenizer, labels: [String]? = nil,
                options: PredictorOptions = PredictorOptions(), threads: Int? = nil) throws {
        guard let task = model.task else {
            throw PredictorError("the model has no task head (no classifier or qa_outputs weights): predictions need a "
                                 + "fine-tuned model — cofi finetune writes one to OUT/best, cofi prune to OUT/final")
        }
        let maxPositions = model.shape.maxPositions
        let maxLength = options.maxLength ?? (task == .span ? min(384, maxPositions) : maxPositions)
        guard (3...maxPositions).contains(maxLength) else {
            throw PredictorError("max length \(maxLength) is outside 3 … \(maxPositions) (at least [CLS], a token and "
                                 + "[SEP]; at most the model's max_position_embeddings)")
        }
        let docStride = options.docStride ?? maxLength / 3
        guard docStride >= 0, docStride < maxLength else {
            throw PredictorError("doc stride \(docStride) must be at least 0 and below the max length \(maxLength)")
        }
        guard options.batchSize >= 1 else {
            throw PredictorError("batch size \(options.batchSize) must be at least 1")
        }
        guard tokenizer.idToToken.count <= model.shape.vocabSize else {
            throw PredictorError("the tokenizer (\(tokenizer.source)) has \(tokenizer.idToToken.count) tokens but the model's word embeddings "
                                 + "have \(model.shape.vocabSize) rows; expected the tokenizer the model was trained with")
        }
        switch task {
        case .classification(let n):
            let names = labels ?? (0..<n).map { "LABEL_\($0)" }
            guard names.count == n else {
                throw PredictorError("\(names.count) label names for a classification head with \(n) classes")
            }
            // The probabilities are keyed by name, so every class needs its own.
            var classOf: [String: Int] = [:]
            for (i, name) in names.enumerated() {
                if let first = classOf[name] {
                    throw PredictorError("label name '\(name)' is given for classes \(first) and \(i); expected one name per class")
                }
                classOf[name] = i
            }
            self.labels = names
        case .regression, .span:
            self.labels = []
        }
        self.engine = try InferenceEngine(model: model, threads: threads)
        self.tokenizer = tokenizer
        self.task = task
        self.maxLength = maxLength
        self.docStride = docStride
        self.options = options
        self.encoder = TaskEncoder(tokenizer: tokenizer, maxLength: maxLength)
    }

    /// What a record becomes before the engine runs.
    private enum Plan {
        case failed(String)
        /// A text or pair: one sequence.
        case sequence(EncodedInput, truncated: Bool)
        /// A question + context: one sequence per window.
        case span(SQuADExample, [SQuADFeature])
    }

    /// Predictions for `inputs`, in their order: one per input, each a result or an error.
    public func predict(_ inputs: [PredictorInput]) -> [Prediction] {
        let plans = inputs.enumerated().map { plan($0.element, index: $0.offset) }
        // Every sequence of every record, in record order; `owner[k]` is the record of sequence k.
        var sequences: [EncodedInput] = []
        var owner: [Int] = []
        for (i, p) in plans.enumerated() {
            switch p {
            case .failed: continue
            case .sequence(let s, _): sequences.append(s); owner.append(i)
            case .span(_, let features):
                for f in features {
                    sequences.append(EncodedInput(tokenIds: f.inputIds, tokenTypeIds: f.tokenTypeIds))
                    owner.append(i)
                }
            }
        }
        let outputs = run(sequences)
        var outputsOf = Array(repeating: [Result<SequenceOutput, PredictorError>](), count: inputs.count)
        for (k, o) in outputs.enumerated() { outputsOf[owner[k]].append(o) }
        return plans.indices.map { i in
            switch plans[i] {
            case .failed(let message): return .failure(message)
            case .sequence(_, let truncated):
                return resolve { try sequencePrediction(outputsOf[i][0].get(), truncated: truncated) }
            case .span(let example, let features):
                return resolve { try spanPrediction(example, features, outputsOf[i].map { try $0.get() }) }
            }
        }
    }

    /// One record's prediction, or its error.
    private func resolve(_ make: () throws -> Prediction) -> Prediction {
        do { return try make() } catch { return .failure("\(error)") }
    }

    /// Encodes one record, or says why it cannot be predicted.
    private func plan(_ input: PredictorInput, index: Int) -> Plan {
        func isBlank(_ s: String) -> Bool { s.unicodeScalars.allSatisfy { $0.properties.isWhitespace } }
        switch (input, task) {
        case (.question, .classification), (.question, .regression):
            return .failed("a question and context need a question-answering (span) model; this model has a "
                           + "\(task == .regression ? "regression" : "classification") head — give a text or a text pair")
        case (.text, .span), (.pair, .span):
            return .failed("this is a question-answering (span) model; give a question and a context")
        case (.text(let a), _):
            if isBlank(a) { return .failed("the text is empty") }
            return sequence(a, nil)
        case (.pair(let a, let b), _):
            if isBlank(a) { return .failed("the first text of the pair is empty") }
            if isBlank(b) { return .failed("the second text of the pair (text_pair) is empty") }
            return oneTokenType("a text pair") ?? sequence(a, b)
        case (.question(let q, let context), _):
            if isBlank(q) { return .failed("the question is empty") }
            if isBlank(context) { return .failed("the context is empty") }
            if let failed = oneTokenType("a question and a context") { return failed }
            let id = "\(index)"
            let example = SQuADExample(id: id, context: context, question: q, answers: [])
            do {
                let features = try SQuADFeature.make(
                    examples: [example], tokenizer: tokenizer,
                    options: SQuADFeatureOptions(maxLength: maxLength, stride: docStride, padToMaxLength: false))
                return .span(example, features)
            } catch let e as SQuADError {
                // The builder names the question by our internal id; the caller knows which record it is.
                let prefix = "question \"\(id)\": "
                return .failed(e.message.hasPrefix(prefix) ? String(e.message.dropFirst(prefix.count)) : e.message)
            } catch {
                return .failed("\(error)")
            }
        }
    }

    /// A text or pair as one sequence.
    private func sequence(_ a: String, _ b: String?) -> Plan {
        let (e, truncated) = encoder.encode(a, b)
        return .sequence(EncodedInput(tokenIds: e.ids, tokenTypeIds: e.typeIds), truncated: truncated)
    }

    /// The failure of a two-segment record (`what`) on a model with one token type, else nil.
    private func oneTokenType(_ what: String) -> Plan? {
        engine.shape.typeVocabSize >= 2 ? nil
            : .failed("the model has one token type (type_vocab_size 1), so it cannot take \(what)")
    }

    /// Engine outputs for `sequences`, in order, `options.batchSize` per call. A batch the engine rejects is run
    /// again one sequence at a time, so that only the sequences at fault fail.
    private func run(_ sequences: [EncodedInput]) -> [Result<SequenceOutput, PredictorError>] {
        var results: [Result<SequenceOutput, PredictorError>] = []
        results.reserveCapacity(sequences.count)
        for start in stride(from: 0, to: sequences.count, by: options.batchSize) {
            let batch = Array(sequences[start..<min(start + options.batchSize, sequences.count)])
            if let outputs = try? engine.run(batch), outputs.count == batch.count {
                results += outputs.map { .success($0) }
                continue
            }
            for s in batch {
                do {
                    let out = try engine.run([s])
                    guard out.count == 1 else { throw PredictorError("the engine returned \(out.count) outputs for 1 input") }
                    results.append(.success(out[0]))
                } catch let e as PredictorError {
                    results.append(.failure(e))
                } catch {
                    results.append(.failure(PredictorError("the model could not run on this input: \(error)")))
                }
            }
        }
        return results
    }

    /// A text's or pair's prediction from its head's logits.
    private func sequencePrediction(_ output: SequenceOutput, truncated: Bool) throws -> Prediction {
        guard output.logits.allSatisfy(\.isFinite) else {
            throw PredictorError("the model's outputs are not finite numbers (\(output.logits)); its weights may be broken")
        }
        var p = Prediction(truncated: truncated ? true : nil)
        if options.includesLogits { p.logits = output.logits }
        switch task {
        case .classification:
            let probabilities = Self.softmax(output.logits)
            let best = probabilities.indices.max { probabilities[$0] < probabilities[$1] }!
            p.label = labels[best]
            p.probabilities = Dictionary(uniqueKeysWithValues: zip(labels, probabilities))
        case .regression:
            p.score = output.logits[0]
        case .span:
            preconditionFailure("span models take questions; plan() rejects texts for them")
        }
        return p
    }

    /// A question's answer from the start/end logits of all its windows.
    private func spanPrediction(_ example: SQuADExample, _ features: [SQuADFeature],
                                _ outputs: [SequenceOutput]) throws -> Prediction {
        for o in outputs where !(o.startLogits.allSatisfy(\.isFinite) && o.endLogits.allSatisfy(\.isFinite)) {
            throw PredictorError("the model's span logits are not finite numbers; its weights may be broken")
        }
        let prediction = try SQuADPostprocessing.predictions(
            examples: [example], features: features, startLogits: outputs.map(\.startLogits),
            endLogits: outputs.map(\.endLogits), options: options.postprocess)[0]
        if prediction.text.isEmpty {
            // SQuAD v2.0: the null answer scored best.
            let null = prediction.nBest.first { $0.text.isEmpty && $0.offsets.isEmpty }
            return Prediction(score: null?.probability ?? 0, answer: "")
        }
        guard let best = prediction.nBest.first(where: { $0.text == prediction.text && !$0.offsets.isEmpty }) else {
            throw PredictorError("no answer span in the context: no start/end pair of the model lies inside the context "
                                 + "with end ≥ start and at most \(options.postprocess.maxAnswerLength) tokens")
        }
        return Prediction(score: best.probability, answer: best.text, start: best.offsets.lowerBound,
                          end: best.offsets.upperBound)
    }

    /// Softmax in double precision, returned as Float (probabilities of the classes).
    static func softmax(_ logits: [Float]) -> [Float] {
        let m = Double(logits.max()!)
        let e = logits.map { Foundation.exp(Double($0) - m) }
        let total = e.reduce(0, +)
        return e.map { Float($0 / total) }
    }
}
