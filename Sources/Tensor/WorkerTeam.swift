import Dispatch
import Foundation
import Synchronization

/// Fork-join threads for inference engines (the encoder's `InferenceEngine`, the decoder's `LlamaDecoder`):
/// `threads − 1` helper threads that live as long as their owner, and the calling
/// thread, which works too. `run(chunks:)` publishes a job; every thread claims chunk indices one at a time until
/// none is left, and `run` returns when all chunks are done.
///
/// Why not `DispatchQueue.concurrentPerform`: it wakes its workers on every call, which costs about as much as a
/// whole step of a compact model (measured: the 0.95 model at B = 1, T = 128 took 1.02 ms on 2 threads against
/// 0.82 ms on one). Helpers here spin on the job word for a short while after each job (`spinSeconds`), so the
/// many small steps of one forward pass find them awake, then sleep on a semaphore until the next job. They never
/// spin when the team has more threads than the machine has cores.
///
/// The job word packs (generation, chunk count, next chunk), so a helper that wakes late can only claim chunks of
/// the job that is running — its claim is a compare-and-swap on that word, and `run` cannot return while a claimed
/// chunk is unfinished, so the job closure it then calls is still alive.
public final class WorkerTeam: @unchecked Sendable {
    /// Threads in all, the caller included.
    public let threads: Int
    /// How long a helper spins for the next job before it sleeps.
    static let spinSeconds = 0.0002

    private let word = Padded(UInt64(0))       // generation << 32 | count << 16 | next
    private let finished = Padded(0)
    private let sleeping = Padded(0)
    private let stopping = Padded(false)
    private let wake = DispatchSemaphore(value: 0)
    private let exited = DispatchSemaphore(value: 0)
    private let spins: Bool
    private var job: ((Int) -> Void)?
    private var generation: UInt64 = 0

    public init(threads: Int) {
        self.threads = max(1, threads)
        self.spins = threads <= ProcessInfo.processInfo.activeProcessorCount
        for _ in 1..<self.threads {
            let thread = Thread { [unowned(unsafe) self] in self.helperLoop() }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Stops and joins the helpers (the owner calls it before it goes away).
    public func shutdown() {
        guard threads > 1, !stopping.value.exchange(true, ordering: .sequentiallyConsistent) else { return }
        for _ in 1..<threads { wake.signal() }
        for _ in 1..<threads { exited.wait() }
    }

    static func pack(_ generation: UInt64, _ count: Int, _ next: Int) -> UInt64 {
        (generation << 32) | (UInt64(count) << 16) | UInt64(next)
    }

    /// Runs `body(c)` for c in 0..<chunks across the team (chunks ≤ 65,535); returns when every call has returned.
    /// Not re-entrant: one job at a time (the owner serialises calls).
    public func run(chunks: Int, _ body: (Int) -> Void) {
        precondition(chunks <= 0xFFFF, "WorkerTeam: at most 65,535 chunks per job")
        if chunks <= 0 { return }
        if threads == 1 || chunks == 1 {
            for c in 0..<chunks { body(c) }
            return
        }
        withoutActuallyEscaping(body) { body in
            job = body
            finished.value.store(0, ordering: .relaxed)
            generation = (generation + 1) & 0xFFFF_FFFF
            word.value.store(Self.pack(generation, chunks, 0), ordering: .sequentiallyConsistent)
            var asleep = sleeping.value.load(ordering: .sequentiallyConsistent)
            while asleep > 0 { wake.signal(); asleep -= 1 }
            work(generation)
            while finished.value.load(ordering: .acquiring) < chunks {}
            job = nil
        }
    }

    /// Claims and runs chunks of job `generation` until none is left.
    private func work(_ generation: UInt64) {
        while true {
            let w = word.value.load(ordering: .acquiring)
            let count = Int((w >> 16) & 0xFFFF), next = Int(w & 0xFFFF)
            guard w >> 32 == generation, next < count else { return }
            guard word.value.compareExchange(expected: w, desired: w + 1, ordering: .acquiringAndReleasing).exchanged else {
                continue
            }
            job!(next)
            finished.value.add(1, ordering: .releasing)
        }
    }

    private func helperLoop() {
        var seen: UInt64 = 0
        var idleSince = DispatchTime.now().uptimeNanoseconds
        var polls = 0
        while true {
            if stopping.value.load(ordering: .acquiring) { exited.signal(); return }
            let g = word.value.load(ordering: .acquiring) >> 32
            if g != seen {
                seen = g
                work(g)
                idleSince = DispatchTime.now().uptimeNanoseconds
                polls = 0
                continue
            }
            polls += 1
            if spins && (polls & 255 != 0
                         || Double(DispatchTime.now().uptimeNanoseconds - idleSince) < Self.spinSeconds * 1e9) {
                continue
            }
            // Sleep until the next job: announce it, then look once more (a job published in between is seen
            // here, or its publisher sees this helper asleep and signals).
            sleeping.value.add(1, ordering: .sequentiallyConsistent)
            if word.value.load(ordering: .sequentiallyConsistent) >> 32 == seen && !stopping.value.load(ordering: .sequentiallyConsistent) {
                wake.wait()
            }
            sleeping.value.subtract(1, ordering: .sequentiallyConsistent)
            idleSince = DispatchTime.now().uptimeNanoseconds
            polls = 0
        }
    }
}

/// An atomic alone on its cache lines: the helpers spin on the job word and the caller on the finished count, so
/// neither should share a line with anything else that is written. (Measured, 0.95 model at B = 1, T = 128, one
/// `cofi bench` process per run: without the padding 3 of 5 processes ran at 0.77 ms instead of 0.52; with it 8 of
/// 8 ran at 0.51–0.59 ms.)
final class Padded<T: AtomicRepresentable>: @unchecked Sendable {
    private let before: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    let value: Atomic<T>
    private let after: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)

    init(_ initial: T) { value = Atomic(initial) }
}
