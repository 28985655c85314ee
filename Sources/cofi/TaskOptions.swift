import ArgumentParser
import Foundation
import Tasks
import Training

/// The task flags of `cofi finetune`, `cofi prune` and `cofi eval`: they name a `TaskSelection`, which resolves it.
struct TaskOptions: ParsableArguments {
    @Option(help: "Task: a GLUE task (cola, sst2, mrpc, stsb, qqp, mnli, mnli-mm, qnli, rte, wnli), movie-snippets, squad or squad_v2.")
    var task: String?

    @Option(help: "Data folder of --task (GLUE: glue_data or the task's folder; movie-snippets: where it is built; SQuAD: the official JSON files).")
    var data: String?

    @Option(help: "Your training file (.csv, .tsv, .jsonl); finetune and prune.")
    var train: String?

    @Option(help: "Your dev file, same columns as --train (required with --train: the best checkpoint is chosen on it); its labels must occur in the training file (eval: among the model's labels).")
    var dev: String?

    @OptionGroup var columns: UserFileOptions

    @Option(help: "Maximum tokens per example, [CLS] and [SEP] included (default 128, SQuAD 384; eval: the checkpoint's training value, else those).")
    var maxLength: Int?

    @Option(help: "SQuAD: context tokens shared by consecutive windows of a long context (default 128; eval: the checkpoint's, else 128).")
    var docStride: Int?

    /// Checks the flags of a training command (`training`) or of `cofi eval`.
    func validate(training: Bool) throws {
        if training {
            let files = train != nil || dev != nil
            if task == nil && !files { throw ValidationError("give --task NAME, or --train FILE and --dev FILE") }
            if task != nil && files { throw ValidationError("give either --task or --train/--dev, not both") }
            if train != nil && dev == nil {
                throw ValidationError("no dev set: the best checkpoint is chosen on a dev set; give --dev FILE")
            }
            if dev != nil && train == nil { throw ValidationError("--dev needs --train") }
        } else {
            if train != nil { throw ValidationError("--train goes with finetune and prune; eval reads --task NAME or --dev FILE") }
            if (task == nil) == (dev == nil) { throw ValidationError("give either --task NAME or --dev FILE") }
        }
        if data != nil && task == nil { throw ValidationError("--data goes with --task") }
        if let maxLength, maxLength < 3 {
            throw ValidationError("--max-length is \(maxLength); expected at least 3 ([CLS], a token, [SEP])")
        }
        if let docStride, docStride < 0 { throw ValidationError("--doc-stride is \(docStride); expected 0 or more") }
    }

    /// The selection these flags name, with `evalBatchSize` examples per evaluation batch.
    func selection(evalBatchSize: Int) -> TaskSelection {
        TaskSelection(task: task, data: data.map(absoluteURL), train: train.map(absoluteURL), dev: dev.map(absoluteURL),
                      columns: columns.spec(), maxLength: maxLength, docStride: docStride, evalBatchSize: evalBatchSize)
    }
}
