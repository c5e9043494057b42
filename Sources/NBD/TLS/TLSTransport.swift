import Platform

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A connection's byte stream after STARTTLS: the TLS session in place of the
/// plain socket. A batch of replies (one send) is encrypted into full records.
struct TLSTransport: ConnectionTransport {
    let session: TLSSession

    func receive(into buffer: UnsafeMutableRawBufferPointer) -> TransportReceive {
        while true {
            let result = session.receiveOnce(into: buffer)
            guard case .wouldBlock = result else { return result }
            guard session.wait(Int16(POLLIN), timeoutMilliseconds: -1) else { return .failed }
        }
    }

    func receiveAvailable(into buffer: UnsafeMutableRawBufferPointer) -> TransportReceive {
        session.receiveOnce(into: buffer)
    }

    /// True also when the socket has only part of a record: `receiveAvailable` then says `.wouldBlock`.
    func waitUntilReadable(timeoutMilliseconds: Int32) -> Bool {
        session.hasBufferedData || session.wait(Int16(POLLIN), timeoutMilliseconds: timeoutMilliseconds)
    }

    func send(_ bytes: UnsafeRawBufferPointer, deadline: Deadline) -> Bool {
        bytes.isEmpty || session.sendAll(bytes.baseAddress!, bytes.count, deadline: deadline)
    }

    func shutdown() {
        session.bye()
        shutdownSocket(session.socket, Int32(SHUT_RDWR))
    }
}
