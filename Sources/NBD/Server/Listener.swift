import Dispatch
import Platform
import SystemPackage
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A listening socket and the thread that accepts on it.
final class Listener: Sendable {
    let fd: Int32
    /// Pipe that wakes the accept thread for `stop()`: (read end, write end).
    private let wake: (Int32, Int32)
    private let finished = DispatchSemaphore(value: 0)
    /// Whether an accept thread runs, so `stop()` waits only for a thread that exists.
    private let acceptThreadRunning = Atomic<Bool>(false)
    let description: String
    /// The port actually bound (TCP only).
    let port: Int?

    private init(fd: Int32, description: String, port: Int?) throws(NBDServerError) {
        self.fd = fd
        self.description = description
        self.port = port
        var p: (Int32, Int32) = (-1, -1)
        let rc = withUnsafeMutableBytes(of: &p) { pipe($0.baseAddress!.assumingMemoryBound(to: Int32.self)) }
        guard rc == 0 else {
            close(fd)
            throw NBDServerError("pipe: \(NBDServerError.errnoText())")
        }
        _ = fcntl(p.0, F_SETFD, FD_CLOEXEC)
        _ = fcntl(p.1, F_SETFD, FD_CLOEXEC)
        wake = p
    }

    /// Binds a Unix socket at `path` (mode 0600), creating the parent directory. A socket
    /// nobody listens on is replaced; a live server or a file that is not a socket is refused.
    static func unix(path: String) throws(NBDServerError) -> Listener {
        let fd: FileDescriptor
        do {
            fd = try UnixSocket.listen(at: path, backlog: 512)
        } catch {
            throw NBDServerError("cannot listen: \(error)")
        }
        return try Listener(fd: fd.rawValue, description: "unix:\(path)", port: nil)
    }

    /// Binds a TCP socket (IPv4 or IPv6 literal, or `localhost`).
    static func tcp(host: String, port: Int) throws(NBDServerError) -> Listener {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var res: UnsafeMutablePointer<addrinfo>?
        let gai = getaddrinfo(host, String(port), &hints, &res)
        guard gai == 0, let ai = res else { throw NBDServerError("cannot resolve \(host): \(String(cString: gai_strerror(gai)))") }
        defer { freeaddrinfo(res) }
        let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw NBDServerError("cannot listen on tcp:\(host):\(port): socket: \(NBDServerError.errnoText())") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else {
            let e = NBDServerError.errnoText()
            close(fd)
            throw NBDServerError("cannot listen on tcp:\(host):\(port): bind: \(e)")
        }
        guard listen(fd, 512) == 0 else {
            let e = NBDServerError.errnoText()
            close(fd)
            throw NBDServerError("cannot listen on tcp:\(host):\(port): listen: \(e)")
        }
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let bound = withUnsafeMutablePointer(to: &ss) { p -> Int in
            _ = p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
            if Int32(p.pointee.ss_family) == AF_INET6 {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
        return try Listener(fd: fd, description: "tcp:\(host):\(bound)", port: bound)
    }

    /// Starts the accept thread; each accepted socket goes to `onAccept`.
    func start(_ onAccept: @escaping @Sendable (Int32) -> Void) throws(NBDServerError) {
        acceptThreadRunning.store(true, ordering: .sequentiallyConsistent)
        do {
            try PosixThread.detach(name: "nbd-accept", stackSize: 512 << 10) { [self] in
                acceptLoop(onAccept)
                finished.signal()
            }
        } catch {
            acceptThreadRunning.store(false, ordering: .sequentiallyConsistent)
            throw NBDServerError("cannot start the accept thread for \(description): \(error)")
        }
    }

    private func acceptLoop(_ onAccept: @Sendable (Int32) -> Void) {
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wake.0, events: Int16(POLLIN), revents: 0)]
        while true {
            let r = poll(&fds, 2, -1)
            if r < 0 {
                if errno == EINTR { continue }
                return
            }
            if fds[1].revents != 0 { return }
            if fds[0].revents & Int16(POLLIN) == 0 { continue }
            let c = accept(fd, nil, nil)
            if c < 0 {
                // EMFILE and friends: back off briefly instead of spinning.
                if errno != EINTR && errno != EAGAIN && errno != ECONNABORTED { usleep(10_000) }
                continue
            }
            _ = fcntl(c, F_SETFD, FD_CLOEXEC)
            onAccept(c)
        }
    }

    /// Stops accepting, waits for the accept thread (if it was started) and closes the socket.
    /// Call once.
    func stop() {
        if acceptThreadRunning.exchange(false, ordering: .sequentiallyConsistent) {
            var one: UInt8 = 1
            _ = write(wake.1, &one, 1)
            finished.wait()
        }
        close(fd)
        close(wake.0)
        close(wake.1)
    }
}

/// Why the server could not start.
public struct NBDServerError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }

    /// `strerror(errno)` with the number, e.g. "Address already in use (errno 98)".
    static func errnoText() -> String {
        let code = errno
        return "\(String(cString: strerror(code))) (errno \(code))"
    }
}
