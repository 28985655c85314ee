import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A blocking TCP connection to 127.0.0.1 for the server tests: bytes sent exactly as given (half-sent requests,
/// idle connections), HTTP/1.1 answers read with a time limit, and the server's close seen as it happens.
final class RawConnection {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// An HTTP answer: status, headers (lowercased names) and body.
    struct Answer {
        let status: Int
        let headers: [String: String]
        let body: String
    }

    private(set) var fd: Int32
    private var pending = [UInt8]()

    init(port: Int) throws {
        #if canImport(Glibc)
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard status == 0 else {
            let message = String(cString: strerror(errno))
            _ = systemClose(fd)
            throw Failure(description: "connect to 127.0.0.1:\(port): \(message)")
        }
    }

    deinit { close() }

    func close() {
        if fd >= 0 { _ = systemClose(fd) }
        fd = -1
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { systemSend(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw Failure(description: "send: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }

    /// Waits up to `timeout` seconds for bytes: the bytes, [] at the end of the stream (or a reset), nil when none
    /// came in time.
    private func receive(timeout: Double) -> [UInt8]? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(max(0, timeout * 1000))) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n > 0 ? Array(buffer[..<n]) : []
    }

    /// The next HTTP answer, within `timeout` seconds; throws when the connection ends or time runs out first.
    func readAnswer(timeout: Double = 10) throws -> Answer {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let end = Self.find([13, 10, 13, 10], in: pending) {
                let head = String(decoding: pending[..<end], as: UTF8.self).components(separatedBy: "\r\n")
                let status = Int(head[0].split(separator: " ").dropFirst().first ?? "") ?? -1
                var headers: [String: String] = [:]
                for line in head.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...]
                        .trimmingCharacters(in: .whitespaces)
                }
                let length = Int(headers["content-length"] ?? "0") ?? 0
                if pending.count >= end + 4 + length {
                    let body = String(decoding: pending[(end + 4) ..< (end + 4 + length)], as: UTF8.self)
                    pending.removeFirst(end + 4 + length)
                    return Answer(status: status, headers: headers, body: body)
                }
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0, let bytes = receive(timeout: left) else {
                throw Failure(description: "no whole answer within \(timeout) s (have \(pending.count) bytes)")
            }
            guard !bytes.isEmpty else {
                throw Failure(description: "the server closed the connection (after \(pending.count) bytes of an answer)")
            }
            pending += bytes
        }
    }

    /// One request and its answer: `method path`, with `body` (Content-Length) if any, on this connection.
    func exchange(_ method: String, _ path: String, _ body: String? = nil, timeout: Double = 10) throws -> Answer {
        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if let body { request += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
        try send(request + "\r\n" + (body ?? ""))
        return try readAnswer(timeout: timeout)
    }

    /// Waits up to `timeout` seconds for the server to close the connection (reading and keeping what it sends
    /// before); whether it closed.
    func waitForClose(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0, let bytes = receive(timeout: left) else { return false }
            if bytes.isEmpty { return true }
            pending += bytes
        }
    }

    /// Whether the server has closed the connection by now (waiting at most `within` seconds).
    func isClosed(within: Double = 0) -> Bool { waitForClose(timeout: max(within, 0.001)) }

    /// What the server sent that was not read as an answer.
    var unread: String { String(decoding: pending, as: UTF8.self) }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0 ... (haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i ..< i + needle.count]) == needle { return i }
        }
        return nil
    }
}

#if canImport(Glibc)
private let systemClose = Glibc.close
private let systemSend: (Int32, UnsafeRawPointer?, Int) -> Int = { Glibc.send($0, $1, $2, Int32(MSG_NOSIGNAL)) }
#else
private let systemClose = Darwin.close
private let systemSend: (Int32, UnsafeRawPointer?, Int) -> Int = { Darwin.send($0, $1, $2, 0) }
#endif
