import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// Thrown into a connection's request stream when its request was not received whole within the read timeout;
/// `POST /predict` answers it 408.
struct RequestReadTimeout: Error, CustomStringConvertible {
    let milliseconds: Int64
    var description: String {
        "the request was not received whole within \(milliseconds) ms of its first byte (cofi serve --read-timeout-ms)"
    }
}

/// The open connections of a server and the connection limit.
///
/// A new connection is admitted while fewer than `limit` are open. At the limit, the connection that has been idle
/// the longest — no request in progress and no bytes of a next one received — is closed to make room (HTTP lets a
/// server close an idle keep-alive connection at any time); when none is idle, the new connection is refused: it
/// gets a 503 answer and is closed. Connections with a request in progress are never closed here: the read timeout
/// bounds how long one that is still being received can stay.
final class ConnectionTable: @unchecked Sendable {
    /// One open connection; its fields change under the table's lock.
    final class Entry {
        let channel: any Channel
        /// Requests whose head has arrived and whose answer has not been written.
        var inFlight = 0
        /// Bytes of a request have arrived but not yet its end.
        var reading = false
        /// When the connection last became idle (its answer written, or opened).
        var idleSince: NIODeadline

        init(channel: any Channel) {
            self.channel = channel
            idleSince = .now()
        }
    }

    let limit: Int
    private let metrics: ServerMetrics
    private let logger: Logger
    private let lock = NSLock()
    private var entries: [ObjectIdentifier: Entry] = [:]

    init(limit: Int, metrics: ServerMetrics, logger: Logger) {
        precondition(limit >= 1, "the connection limit must be positive")
        self.limit = limit
        self.metrics = metrics
        self.logger = logger
    }

    /// The number of open connections.
    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return entries.count
    }

    /// Admits `channel` (closing the longest-idle connection at the limit) and returns its entry, removed again when
    /// the channel closes; nil when every open connection has a request in progress (the caller refuses it).
    func admit(_ channel: any Channel) -> Entry? {
        lock.lock()
        var evicted: Entry?
        if entries.count >= limit {
            evicted = entries.values.filter { $0.inFlight == 0 && !$0.reading }.min { $0.idleSince < $1.idleSince }
            guard let evicted else {
                let open = entries.count
                lock.unlock()
                metrics.refusedConnections.increment()
                logger.warning("connection refused", metadata: [
                    "remote": "\(Self.describe(channel.remoteAddress))", "open": "\(open)",
                    "reason": "at the connection limit (cofi serve --max-connections) with every connection busy"])
                return nil
            }
            entries[ObjectIdentifier(evicted.channel)] = nil
        }
        let entry = Entry(channel: channel)
        entries[ObjectIdentifier(channel)] = entry
        metrics.openConnections.record(entries.count)
        lock.unlock()
        metrics.acceptedConnections.increment()
        if let evicted {
            metrics.evictedConnections.increment()
            logger.debug("idle connection closed at the connection limit",
                         metadata: ["remote": "\(Self.describe(evicted.channel.remoteAddress))"])
            evicted.channel.close(promise: nil)
        }
        channel.closeFuture.whenComplete { _ in self.remove(entry) }
        return entry
    }

    /// Changes `entry` under the lock.
    func update(_ entry: Entry, _ change: (Entry) -> Void) {
        lock.lock()
        change(entry)
        lock.unlock()
    }

    private func remove(_ entry: Entry) {
        lock.lock()
        let id = ObjectIdentifier(entry.channel)
        if entries[id] === entry { entries[id] = nil }
        metrics.openConnections.record(entries.count)
        lock.unlock()
    }

    /// `HOST:PORT` of an address, or `unknown`.
    static func describe(_ address: SocketAddress?) -> String {
        guard let address else { return "unknown" }
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}

/// Hummingbird's HTTP/1.1 child channel (its idle timeout included) behind the connection limit and with a read
/// timeout: each accepted connection is admitted by `connections` (or refused with 503), and its pipeline gets
/// `RequestBytesHandler` first and `RequestPartsHandler` after the HTTP codec, which together time each request from
/// its first byte to its end.
struct GuardedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let http: HTTP1Channel
    let connections: ConnectionTable
    let readTimeout: TimeAmount
    let metrics: ServerMetrics
    let logger: Logger

    func setup(channel: any Channel, logger hummingbirdLogger: Logger) -> EventLoopFuture<Value> {
        let entry = connections.admit(channel)
        return http.setup(channel: channel, logger: hummingbirdLogger).flatMapThrowing { value in
            let operations = channel.pipeline.syncOperations
            let watch = RequestWatch(entry: entry, connections: connections, readTimeout: readTimeout,
                                     metrics: metrics, logger: logger)
            try operations.addHandler(RequestBytesHandler(watch: watch), position: .first)
            if entry != nil {
                let state = try operations.handler(type: HTTPConnectionStateHandler.self)
                try operations.addHandler(RequestPartsHandler(watch: watch), position: .before(state))
            }
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await http.handle(value: value, logger: logger)
    }
}

/// The state of one connection's current request, shared by its two handlers (on its event loop only).
///
/// The read clock starts at the first byte of a request (or at its head, when that came in the same read as the
/// previous request's end) and stops at the request's end. When it runs out: if the head has arrived, a
/// `RequestReadTimeout` goes up the request stream (`POST /predict` answers 408) and the connection closes after the
/// answer; if not, the connection is answered 408 and closed at once (or after the answer in progress).
final class RequestWatch {
    let entry: ConnectionTable.Entry?
    let connections: ConnectionTable
    let readTimeout: TimeAmount
    let metrics: ServerMetrics
    let logger: Logger
    /// The handler contexts, set while the handlers are in the pipeline.
    var bytesContext: ChannelHandlerContext?
    var partsContext: ChannelHandlerContext?
    private var deadline: Scheduled<Void>?
    private var headPath: String?
    private var inFlight = 0
    private var closeAfterAnswer = false

    init(entry: ConnectionTable.Entry?, connections: ConnectionTable, readTimeout: TimeAmount, metrics: ServerMetrics,
         logger: Logger) {
        self.entry = entry
        self.connections = connections
        self.readTimeout = readTimeout
        self.metrics = metrics
        self.logger = logger
    }

    /// Bytes arrived: they start the clock unless a request is already being read.
    func bytesArrived() {
        guard entry != nil, deadline == nil, !closeAfterAnswer else { return }
        startClock()
    }

    func headArrived(path: String) {
        if deadline == nil { startClock() }
        headPath = path
        inFlight += 1
        if let entry { connections.update(entry) { $0.inFlight += 1 } }
    }

    func requestRead() {
        deadline?.cancel()
        deadline = nil
        headPath = nil
        if let entry { connections.update(entry) { $0.reading = false } }
    }

    /// An answer's end is being written; whether to close the connection after it.
    func answerWritten() -> Bool {
        inFlight -= 1
        if let entry {
            connections.update(entry) {
                $0.inFlight -= 1
                if $0.inFlight == 0 { $0.idleSince = .now() }
            }
        }
        return closeAfterAnswer && inFlight == 0
    }

    func stop() {
        deadline?.cancel()
        deadline = nil
    }

    private func startClock() {
        guard let context = bytesContext else { return }
        if let entry { connections.update(entry) { $0.reading = true } }
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: readTimeout) { [self] in clockRanOut() }
    }

    private func clockRanOut() {
        deadline = nil
        metrics.readTimeouts.increment()
        let timeout = RequestReadTimeout(milliseconds: readTimeout.nanoseconds / 1_000_000)
        let channel = bytesContext?.channel ?? partsContext?.channel
        logger.warning("read timeout", metadata: [
            "remote": "\(ConnectionTable.describe(channel?.remoteAddress))",
            "path": "\(headPath ?? "-")", "head_received": "\(headPath != nil)",
            "read_timeout_ms": "\(timeout.milliseconds)"])
        closeAfterAnswer = true
        guard let context = partsContext else {
            channel?.close(promise: nil)
            return
        }
        if headPath != nil {
            // The handler reading the body answers (408) and the connection closes after the answer; if it no
            // longer reads, the request stream's end closes the connection, and in any case it closes in a second.
            context.fireErrorCaught(timeout)
            let channel = context.channel
            context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        } else if inFlight == 0 {
            let body = ByteBuffer(string: RequestError.json(timeout.description))
            let head = HTTPResponse(status: .requestTimeout, headerFields: [
                .contentType: "application/json", .connection: "close", .contentLength: "\(body.readableBytes)"])
            context.write(NIOAny(HTTPResponsePart.head(head)), promise: nil)
            context.write(NIOAny(HTTPResponsePart.body(body)), promise: nil)
            context.writeAndFlush(NIOAny(HTTPResponsePart.end(nil)), promise: nil)
            context.close(promise: nil)
        }
        // Otherwise an answer is in progress: the connection closes after it.
    }
}

/// First in a connection's pipeline: raw bytes start the request's read clock. A refused connection is answered
/// 503 and closed as soon as it is active.
final class RequestBytesHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let watch: RequestWatch

    init(watch: RequestWatch) { self.watch = watch }

    func handlerAdded(context: ChannelHandlerContext) {
        watch.bytesContext = context
        if context.channel.isActive { refuseIfNotAdmitted(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        watch.stop()
        watch.bytesContext = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        refuseIfNotAdmitted(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if watch.entry == nil { return }
        watch.bytesArrived()
        context.fireChannelRead(data)
    }

    private func refuseIfNotAdmitted(_ context: ChannelHandlerContext) {
        guard watch.entry == nil else { return }
        let body = RequestError.json("too many connections: \(watch.connections.limit) are open, each with a request "
                                     + "in progress (cofi serve --max-connections); retry later")
        let answer = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
            + "content-length: \(body.utf8.count)\r\n\r\n" + body
        context.writeAndFlush(NIOAny(ByteBuffer(string: answer)), promise: nil)
        context.close(promise: nil)
    }
}

/// After the HTTP codec: a request's head and end, and the end of each answer (closing the connection after the
/// answer to a timed-out request).
final class RequestPartsHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let watch: RequestWatch

    init(watch: RequestWatch) { self.watch = watch }

    func handlerAdded(context: ChannelHandlerContext) { watch.partsContext = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        watch.stop()
        watch.partsContext = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): watch.headArrived(path: head.path ?? "")
        case .body: break
        case .end: watch.requestRead()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data), watch.answerWritten() else {
            return context.write(data, promise: promise)
        }
        context.writeAndFlush(data, promise: promise)
        context.close(promise: nil)
    }
}
