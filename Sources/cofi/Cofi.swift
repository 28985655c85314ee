import ArgumentParser
import BERT
import Foundation
import Platform

/// The `cofi` command line: one subcommand per file.
@main
struct Cofi: ParsableCommand {
    static let version = "0.1.0"

    /// Before anything built for AVX2 or AVX-512 runs: a processor this build cannot run gets a message, not an
    /// illegal instruction; a `COFI_KERNELS` that cannot be honoured is refused, naming what runs here.
    static func main() {
        for problem in [Processor.buildMismatch(), KernelFamily.selected.error].compactMap({ $0 }) {
            FileHandle.standardError.write(Data("Error: \(problem)\n".utf8))
            Foundation.exit(1)
        }
        main(nil)
    }

    static let configuration = CommandConfiguration(
        commandName: "cofi",
        abstract: "CoFi structured pruning for BERT-family models, and a native runtime for the compact models.",
        version: version,
        subcommands: [Demo.self, Fetch.self, Inspect.self, Tokenize.self, Finetune.self, Eval.self, Prune.self, Report.self, Predict.self, Bench.self, Profile.self, Serve.self, Export.self,
                      Generate.self, PerplexityCommand.self, Convert.self, Shear.self])
}

/// Errors for the user: printed as-is (they already name the file, the field and what was expected).
struct UserError: Error, CustomStringConvertible {
    let description: String
}
