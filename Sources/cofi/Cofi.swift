import ArgumentParser
import BERT
import Foundation

/// The `cofi` command line: one subcommand per file.
@main
struct Cofi: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "cofi",
        abstract: "CoFi structured pruning for BERT-family models, and a native runtime for the compact models.",
        version: version,
        subcommands: [Demo.self, Fetch.self, Inspect.self, Tokenize.self, Finetune.self, Eval.self, Prune.self, Report.self, Predict.self, Bench.self, Serve.self])
}

/// Errors for the user: printed as-is (they already name the file, the field and what was expected).
struct UserError: Error, CustomStringConvertible {
    let description: String
}
