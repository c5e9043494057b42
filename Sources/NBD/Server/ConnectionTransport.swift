import Platform

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What one receive call produced.
enum TransportReceive {
    /// This many bytes (at least one) were stored.
    case bytes(Int)
    /// The peer closed its sending side.
    case endOfStream
    /// Nothing has arrived yet (only from `receiveAvailable`).
    case wouldBlock
    /// The stream failed; the connection is over.
    case failed
}

/// The byte stream under one connection: every socket read and write of a
/// connection goes through it, so another stream (TLS) can replace the plain
/// socket without touching the handshake or transmission code.
///
/// One connection thread owns a transport; it is never shared.
protocol ConnectionTransport {
    /// Receives into `buffer`, waiting until at least one byte arrived.
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> TransportReceive
    /// Receives what has already arrived, without waiting.
    func receiveAvailable(into buffer: UnsafeMutableRawBufferPointer) -> TransportReceive
    /// Waits until `receiveAvailable` has something to report; false on timeout or error.
    /// A negative timeout waits forever.
    func waitUntilReadable(timeoutMilliseconds: Int32) -> Bool
    /// Sends every byte; false when the stream failed, or `deadline` passed first.
    func send(_ bytes: UnsafeRawBufferPointer, deadline: Deadline) -> Bool
    /// Ends the stream in both directions (the socket itself is closed by the server).
    func shutdown()
}

extension ConnectionTransport {
    /// Sends every byte, waiting as long as the peer takes (transmission: backpressure).
    @inline(__always)
    func send(_ bytes: UnsafeRawBufferPointer) -> Bool {
        send(bytes, deadline: .never)
    }

    func send(_ bytes: [UInt8], deadline: Deadline) -> Bool {
        bytes.isEmpty || bytes.withUnsafeBytes { send($0, deadline: deadline) }
    }
}

/// The transport of a plain (unencrypted) socket: system calls straight on the
/// descriptor, nothing buffered or copied.
struct PlainSocketTransport: ConnectionTransport {
    let socket: Int32

    @inline(__always)
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> TransportReceive {
        Self.result(SocketIO.receive(socket, buffer.baseAddress!, buffer.count))
    }

    @inline(__always)
    func receiveAvailable(into buffer: UnsafeMutableRawBufferPointer) -> TransportReceive {
        while true {
            let n = recv(socket, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
            if n >= 0 { return Self.result(n) }
            if errno == EINTR { continue }
            return errno == EAGAIN || errno == EWOULDBLOCK ? .wouldBlock : .failed
        }
    }

    func waitUntilReadable(timeoutMilliseconds: Int32) -> Bool {
        Poll.wait(socket, for: Int16(POLLIN), timeoutMilliseconds: timeoutMilliseconds)
    }

    func send(_ bytes: UnsafeRawBufferPointer, deadline: Deadline) -> Bool {
        bytes.isEmpty || SocketIO.sendAll(socket, bytes.baseAddress!, bytes.count, deadline: deadline)
    }

    func shutdown() {
        shutdownSocket(socket, Int32(SHUT_RDWR))
    }

    @inline(__always)
    private static func result(_ n: Int) -> TransportReceive {
        n > 0 ? .bytes(n) : n == 0 ? .endOfStream : .failed
    }
}
