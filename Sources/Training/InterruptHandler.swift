#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation

/// Ctrl-C during a long run: the first SIGINT, SIGTERM or SIGUSR1 prints `note` to stderr and calls `stop` (which
/// asks the run to finish its step and save its checkpoint); a second one quits at once (the default actions are
/// restored).
///
/// SIGTERM and SIGUSR1 count because they are how a run is asked to stop when something else holds the terminal:
/// batch schedulers send SIGTERM before they kill a job; `mpirun` turns Ctrl-C into SIGTERM to every rank about a
/// second later and SIGKILL a second after that (so a step that takes longer is lost, and the last checkpoint,
/// written atomically, is where `--resume` continues), and it forwards SIGUSR1 to every rank as it is — the
/// graceful stop of a data-parallel run (`kill -USR1 <mpirun's pid>`).
public final class InterruptHandler {
    private let sources: [DispatchSourceSignal]

    public init(note: String, stop: @escaping @Sendable () -> Void) {
        let signals = [SIGINT, SIGTERM, SIGUSR1]
        let once = Once()
        sources = signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                guard once.first() else {
                    // A second request: the default action (quit at once).
                    signal(number, SIG_DFL)
                    raise(number)
                    return
                }
                FileHandle.standardError.write(Data(note.utf8))
                stop()
            }
            source.resume()
            return source
        }
    }

    /// Stops listening (the run is over): the signals' default actions again.
    public func cancel() {
        for s in sources { s.cancel() }
        for number in [SIGINT, SIGTERM, SIGUSR1] { signal(number, SIG_DFL) }
    }

    deinit { cancel() }

    private final class Once: @unchecked Sendable {
        private let lock = NSLock()
        private var done = false
        func first() -> Bool {
            lock.lock(); defer { lock.unlock() }
            if done { return false }
            done = true
            return true
        }
    }
}
