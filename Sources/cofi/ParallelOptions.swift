import ArgumentParser
import Foundation
import Tensor
import Training
#if MPI
import Cluster
#endif

/// The flags of a training command about processes and threads, and joining the MPI job when `mpirun` started
/// this process as one of several ranks.
struct ParallelOptions: ParsableArguments {
    @Option(help: "Worker threads of this process; under mpirun, of each rank (default: the cores, split evenly among the ranks on the host).")
    var threads: Int?

    @Option(name: .customLong("bucket-mb"), help: "Under mpirun: megabytes of gradients per fused all-reduce bucket.")
    var bucketMegabytes: Double = 25

    @Option(help: "Under mpirun: compare the ranks' weights every N steps (they must stay identical).")
    var checkEvery: Int = 100

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads is \(threads); expected a positive number") }
        guard bucketMegabytes.isFinite && bucketMegabytes > 0 && bucketMegabytes <= 4096 else {
            throw ValidationError("--bucket-mb is \(bucketMegabytes); expected a number of megabytes above 0, at most 4096")
        }
        guard checkEvery > 0 else { throw ValidationError("--check-every is \(checkEvery); expected a positive number") }
    }

    /// Joins the MPI job if there is one (a cofi built without the MPI trait refuses to be one of several ranks)
    /// and sets this process's worker threads.
    func start() throws -> ParallelSession {
        #if MPI
        if let group = MPIProcessGroup.joinIfLaunched() {
            Parallel.setWorkers(threads ?? Launch.defaultThreads(localRanks: group.localSize))
            let parallel = DataParallel(group: group, bucketBytes: Int(bucketMegabytes * 1_048_576), checkEvery: checkEvery)
            return ParallelSession(parallel: parallel, finalize: group.finalize)
        }
        #else
        if let launch = Launch.fromEnvironment(), launch.size > 1 {
            throw UserError(description: "rank \(launch.rank) of \(launch.size): " + Launch.notBuiltMessage)
        }
        #endif
        if let threads { Parallel.setWorkers(threads) }
        return ParallelSession(parallel: nil, finalize: {})
    }
}

/// A training command's processes: alone, or one rank of an MPI job.
final class ParallelSession {
    let parallel: DataParallel?
    private let finalize: () -> Void

    init(parallel: DataParallel?, finalize: @escaping () -> Void) {
        self.parallel = parallel
        self.finalize = finalize
    }

    /// Whether this process prints (alone, or rank 0).
    var isLead: Bool { parallel?.group.isLead ?? true }

    /// Runs a command's job and leaves the MPI job. A failure every rank met alike (`ClusterError.agreed`) is
    /// reported by rank 0 alone, whose status is the job's: the others exit quietly with status 0, since mpirun
    /// kills the whole job — rank 0 before it has written its message — as soon as one rank exits with another.
    /// Any other failure of a rank aborts the whole job (the other ranks would wait for it forever), naming the rank.
    func run(_ body: (DataParallel?) throws -> Void) throws {
        guard let parallel else { return try body(nil) }
        do {
            try body(parallel)
            finalize()
        } catch let e as ClusterError where e.agreed {
            finalize()
            if parallel.group.isLead { throw UserError(description: e.description) }
            throw ExitCode.success
        } catch let e as ValidationError {
            parallel.group.abort("\(e)")
        } catch {
            parallel.group.abort("\(error)")
        }
    }
}
