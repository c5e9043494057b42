import Platform

#if canImport(Glibc)
import Glibc
#endif

/// The control channel's framing over a connected socket (from `Platform.UnixSocket`):
/// one `\n`-terminated JSON message per line, bounded, with time-outs.
public enum ControlChannel {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        /// The C errno behind it.
        public var errno: Int32
        public init(_ what: String, errno code: Int32 = Glibc.errno) {
            description = "\(what): \(String(cString: strerror(code)))"
            errno = code
        }
    }

    /// Sets receive and send time-outs so that a silent peer cannot hold a thread forever.
    static func setTimeout(_ fd: Int32, seconds: Int) {
        var value = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Reads one `\n`-terminated line of at most `limit` bytes. nil at EOF before any byte.
    /// With a deadline, the whole line must arrive by then (`ETIMEDOUT`), so a peer that
    /// trickles a byte at a time cannot hold the thread by resetting the receive timeout.
    static func readLine(_ fd: Int32, limit: Int, deadline: Deadline = .never) throws(Failure) -> [UInt8]? {
        var line = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if !deadline.isNever && !deadline.wait(fd, for: Int16(POLLIN)) {
                throw Failure("request not complete in time", errno: ETIMEDOUT)
            }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_PEEK)) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw Failure("read") }
            if n == 0 { return line.isEmpty ? nil : line }
            // Consume up to and including the newline, if it is in what we peeked.
            let take = chunk[..<n].firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? n
            let got = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, take, 0) }
            guard got == take else { throw Failure("read") }
            line += chunk[..<take]
            let complete = line.last == UInt8(ascii: "\n")
            if complete { line.removeLast() }
            guard line.count <= limit else { throw Failure("request longer than \(limit) bytes", errno: EMSGSIZE) }
            if complete { return line }
        }
    }

    /// Writes all of `bytes`.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(Failure) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure("write") }
            sent += n
        }
    }
}
