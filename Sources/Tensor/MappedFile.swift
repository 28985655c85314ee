// MappedFile: a file mapped read-only into memory, what the checkpoint readers (safetensors, GGUF) read through.

#if canImport(Darwin)
import Darwin
#else
import Glibc
#endif
import Foundation
import Formats

/// A file mapped read-only with `mmap` and unmapped when released: a reader checks its header in place and copies
/// out only the tensors asked for, so a large checkpoint costs neither a copy nor an allocation of its size.
///
/// Immutable, so it may be shared between threads.
public final class MappedFile: @unchecked Sendable {
    /// The whole file.
    public let bytes: UnsafeRawBufferPointer

    /// Maps the file at `url`; a file shorter than `minimumSize` bytes (at least 1: an empty mapping does not exist)
    /// is a `FileFormatError` saying "file is N bytes, too short for `what`", as are a file that cannot be opened,
    /// read or mapped.
    public init(_ url: URL, minimumSize: Int, what: String) throws {
        let path = url.path
        func failure(_ action: String) -> FileFormatError {
            FileFormatError(path: path, message: "\(action): \(String(cString: strerror(errno)))")
        }
        let fd = url.withUnsafeFileSystemRepresentation { name -> Int32 in
            guard let name else { return -1 }
            return open(name, O_RDONLY)
        }
        guard fd >= 0 else { throw failure("cannot open") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw failure("cannot stat") }
        let size = Int(st.st_size)
        guard size >= max(minimumSize, 1) else {
            throw FileFormatError(path: path, message: "file is \(size) bytes, too short for \(what)")
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw failure("cannot mmap \(size) bytes")
        }
        bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(base), count: size)
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count)
    }
}
