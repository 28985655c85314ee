import ArgumentParser
import CoFi
import Foundation
import Tasks

/// `cofi report OUT`: (re)makes report.md and the SVG figures of a finished `cofi prune` run from its own files.
struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write report.md and SVG figures for a finished cofi prune run.",
        discussion: """
            Reads OUT/summary.json and the stages' metrics.jsonl and writes OUT/report.md with OUT/figures/ \
            (architecture.svg, sparsity.svg, lambda.svg, losses.svg, metric.svg). cofi prune does this at its end; \
            this command remakes them, e.g. for a run made by an older version.
            """)

    @Argument(help: "The output directory of a cofi prune run.")
    var out: String

    func run() throws {
        do {
            let url = try PruningReport(directory: absoluteURL(out)).write()
            print(url.path)
        } catch {
            throw UserError(description: "\(error)")
        }
    }
}
