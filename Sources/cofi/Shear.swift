import ArgumentParser
import Foundation
import Generation
import Shearing

/// `cofi shear --model SRC --target-shape … --text FILE… --out DIR`: Sheared-LLaMA structured pruning of a decoder LM.
struct Shear: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prune a decoder LM to a target shape with learned masks (Sheared-LLaMA), then continue training it.",
        discussion: """
            Masks on layers, key/value groups of heads, FFN units and hidden dims; one Lagrangian term per dimension \
            drives its expected count to the target; the cut keeps exactly the target's counts, so the result is an \
            ordinary uniform LLaMA. Both stages draw their batches from the --text sources with dynamic batch \
            loading (each source reweighted by how far its held-out loss is from the source model's). Writes \
            DIR/model/ (Hugging Face LlamaForCausalLM), DIR/model.gguf (float32), DIR/report.md, report.json, \
            metrics.jsonl and train-order.jsonl (the continued-training data order, which --same-tokens-as replays); \
            a checkpoint every --checkpoint-every steps, from which --resume continues exactly. \
            Baselines: --init truncated (the first layers and dims, no learned masks) or --init random.
            """)

    @Option(help: "The source model: a .gguf file or a Hugging Face directory.")
    var model: String

    @Option(help: "layers=L,hidden=D,heads=H,kv-heads=K,ffn=F (each at most the source's; heads = kv-heads × the source's group size).")
    var targetShape: String

    @Option(name: .customLong("text"), parsing: .upToNextOption, help: "Text files (UTF-8), one data source each.")
    var texts: [String]

    @Option(help: "A held-out text file whose perplexity is reported at every stage.")
    var evalText: String?

    @Option(help: "The output directory (must be empty unless --force).")
    var out: String

    @Option(help: "sheared (learned masks), truncated or random (the baselines).")
    var `init` = ShearInitialization.sheared

    @Option(help: "Tokens per training sequence.") var seqLen = 256
    @Option(help: "Sequences per step.") var batch = 4
    @Option(help: "Pruning steps (sheared only).") var pruneSteps = 200
    @Option(help: "Continued-training steps.") var trainSteps = 200
    @Option(help: "Fraction of the pruning steps over which the targets rise from 0.") var targetWarmup = 0.2
    @Option(help: "Model learning rate while pruning.") var pruneLr: Float = 1e-4
    @Option(help: "Learning rate of the masks' log α (and, negated, of the Lagrange multipliers); LLM-Shearing uses 1.0.") var maskLr: Float = 1.0
    @Option(help: "Learning rate of continued training (linear warm-up over 5 %, then linear decay).") var trainLr: Float = 2e-4
    @Option(help: "Steps between evaluations (which update the source weights).") var evalEvery = 25
    @Option(help: "Held-out sequences per source per evaluation.") var evalSequences = 8
    @Option(help: "Random seed (data order, mask noise, random init).") var seed: UInt64 = 1
    @Option(help: "A run directory whose continued-training data order to replay (same tokens as that run).") var sameTokensAs: String?
    @Option(help: "Steps between checkpoints (OUT/checkpoint/; also at the end of each stage).") var checkpointEvery = 50
    @Flag(help: "Continue the run in --out from its checkpoint (repeat the run's arguments).") var resume = false
    @Flag(help: "Overwrite a non-empty --out.") var force = false

    func run() throws {
        do {
            let source = try LanguageModel.open(URL(fileURLWithPath: model))
            var s = ShearSettings(model: model, target: try TargetShape.parse(targetShape, source: source.config), texts: texts, out: out)
            s.evalText = evalText
            s.initialization = `init`
            s.seqLen = seqLen
            s.batch = batch
            s.pruneSteps = pruneSteps
            s.trainSteps = trainSteps
            s.targetWarmup = targetWarmup
            s.pruneLearningRate = pruneLr
            s.maskLearningRate = maskLr
            s.trainLearningRate = trainLr
            s.evalEvery = evalEvery
            s.evalSequences = evalSequences
            s.seed = seed
            s.sameTokensAs = sameTokensAs
            s.force = force
            s.checkpointEvery = checkpointEvery
            s.resume = resume
            let report = try ShearJob(settings: s) { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }.run()
            for st in report.stages {
                print("\(st.name): \(st.shape), \(st.parameters) parameters" + (st.evalPerplexity.map { String(format: ", eval perplexity %.3f", $0) } ?? ""))
            }
            print("wrote \(out)/model/, \(out)/model.gguf, \(out)/report.md")
        } catch {
            throw UserError(description: "\(error)")
        }
    }
}

extension ShearInitialization: ExpressibleByArgument {}
