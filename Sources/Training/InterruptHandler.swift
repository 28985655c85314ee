#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation

/// Ctrl-C during a long run: the first SIGINT prints `note` to stderr and calls `stop` (which asks the run to finish
/// its step and save its checkpoint); a second SIGINT quits at once (the default action is restored).
public final class InterruptHandler {
    private let source: DispatchSourceSignal

    public init(note: String, stop: @escaping @Sendable () -> Void) {
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { [source] in
            FileHandle.standardError.write(Data(note.utf8))
            stop()
            signal(SIGINT, SIG_DFL)
            source.cancel()
        }
        source.resume()
    }

    /// Stops listening (the run is over).
    public func cancel() { source.cancel() }

    deinit { source.cancel() }
}
