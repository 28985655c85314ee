import ArgumentParser
import Tasks

/// The flags that describe the columns of the user's own files (`--train` / `--dev`), shared by every command
/// that reads them.
struct UserFileOptions: ParsableArguments {
    @Option(help: "Column (or JSON key) of the text, with --train/--dev.")
    var textColumn: String = "text"

    @Option(help: "Column of the second text of a pair, with --train/--dev.")
    var pairColumn: String?

    @Option(help: "Column of the label, with --train/--dev.")
    var labelColumn: String = "label"

    @Flag(help: "Labels are real numbers (regression; metric: Pearson and Spearman).")
    var regression = false

    /// The reader's description of the files; `regression` forces regression whatever the flag says.
    func spec(regression forced: Bool = false) -> UserDataSpec {
        UserDataSpec(textColumn: textColumn, pairColumn: pairColumn, labelColumn: labelColumn,
                     regression: regression || forced)
    }
}
