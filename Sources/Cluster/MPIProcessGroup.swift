#if MPI
import CMPI
import Foundation
import Training

/// The ranks of an MPI job (`MPI_COMM_WORLD`) as a `ProcessGroup`: the thin binding data-parallel training uses —
/// init and finalize, rank and size, all-reduce (blocking and not), broadcast, barrier and abort — over Open MPI.
///
/// MPI's default error handler stays in place: a failed call ends the whole job with MPI's own report, so none of
/// these calls returns an error. Counts above 2³⁰ elements are split into several calls (MPI counts are 32-bit).
public final class MPIProcessGroup: ProcessGroup {
    public let rank: Int
    public let size: Int
    public let host: String
    /// The ranks on this host (the launcher's count), for splitting its cores.
    public let localSize: Int
    private var finalized = false

    /// Largest element count per MPI call.
    static let chunk = 1 << 30

    /// Joins the MPI job when `mpirun` started this process as one of several ranks (`Launch.fromEnvironment`);
    /// nil for a process started alone or as the only rank, which trains without MPI.
    public static func joinIfLaunched() -> MPIProcessGroup? {
        guard let launch = Launch.fromEnvironment(), launch.size > 1 else { return nil }
        return MPIProcessGroup(localSize: launch.localSize)
    }

    private init(localSize: Int) {
        var provided: Int32 = 0
        // Serialized: one MPI call at a time, from whichever thread runs the training loop.
        MPI_Init_thread(nil, nil, Int32(MPI_THREAD_SERIALIZED), &provided)
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(cofi_mpi_comm_world(), &r)
        MPI_Comm_size(cofi_mpi_comm_world(), &s)
        rank = Int(r)
        size = Int(s)
        var name = [CChar](repeating: 0, count: Int(cofi_mpi_max_processor_name()) + 1)
        var length: Int32 = 0
        MPI_Get_processor_name(&name, &length)
        host = String(decoding: name.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        self.localSize = localSize
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {
        forChunks(buffer.count) { offset, count in
            MPI_Allreduce(cofi_mpi_in_place(), buffer.baseAddress! + offset, Int32(count), cofi_mpi_float(), cofi_mpi_sum(),
                          cofi_mpi_comm_world())
        }
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) {
        forChunks(buffer.count) { offset, count in
            MPI_Allreduce(cofi_mpi_in_place(), buffer.baseAddress! + offset, Int32(count), cofi_mpi_double(), cofi_mpi_sum(),
                          cofi_mpi_comm_world())
        }
    }

    public func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) -> PendingReduction {
        let pending = Requests()
        forChunks(buffer.count) { offset, count in
            var request: MPI_Request? = cofi_mpi_request_null()
            MPI_Iallreduce(cofi_mpi_in_place(), buffer.baseAddress! + offset, Int32(count), cofi_mpi_float(), cofi_mpi_sum(),
                           cofi_mpi_comm_world(), &request)
            pending.requests.append(request)
        }
        return pending
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {
        forChunks(buffer.count) { offset, count in
            MPI_Bcast(buffer.baseAddress! + offset, Int32(count), cofi_mpi_byte(), Int32(root), cofi_mpi_comm_world())
        }
    }

    public func barrier() { MPI_Barrier(cofi_mpi_comm_world()) }

    public func abort(_ message: String) -> Never {
        FileHandle.standardError.write(Data("cofi: \(rankDescription): \(message)\n".utf8))
        MPI_Abort(cofi_mpi_comm_world(), 1)
        exit(1)
    }

    /// Leaves the MPI job (every rank must, at the end); later calls do nothing.
    public func finalize() {
        guard !finalized else { return }
        finalized = true
        MPI_Finalize()
    }

    private func forChunks(_ count: Int, _ body: (Int, Int) -> Void) {
        var offset = 0
        repeat {
            let n = min(Self.chunk, count - offset)
            body(offset, n)
            offset += n
        } while offset < count
    }

    /// The requests of one non-blocking reduction.
    final class Requests: PendingReduction {
        var requests: [MPI_Request?] = []

        func test() -> Bool {
            var done: Int32 = 1
            if !requests.isEmpty {
                MPI_Testall(Int32(requests.count), &requests, &done, nil)
            }
            return done != 0
        }

        func wait() {
            if !requests.isEmpty { MPI_Waitall(Int32(requests.count), &requests, nil) }
        }
    }
}
#endif
