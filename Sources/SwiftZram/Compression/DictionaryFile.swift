#if canImport(Glibc)
import Glibc
#endif

/// Reads the dictionary file of `algorithm_params dict=PATH`.
///
/// The control path must never block or follow a link into somewhere else:
/// the file is opened with `O_NONBLOCK | O_NOFOLLOW`, so a FIFO or a device
/// cannot stall the open, and anything but a regular file of 1 byte to
/// ``maximumSize`` is refused before a byte is read.
enum DictionaryFile {
    /// zram's own bound on the dictionaries it loads.
    static let maximumSize = 1 << 20

    /// - Throws: `EINVAL` for a path that cannot be opened, is not a regular file
    ///   (FIFO, directory, device, symbolic link), is empty or is larger than 1 MiB.
    static func read(_ path: String) throws(ZramError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw .invalid("cannot open dictionary \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            throw .invalid("cannot stat dictionary \(path): \(String(cString: strerror(errno)))")
        }
        guard status.st_mode & S_IFMT == S_IFREG else { throw .invalid("dictionary \(path) is not a regular file") }
        guard status.st_size <= maximumSize else { throw .invalid("dictionary \(path) is larger than 1 MiB") }
        guard status.st_size > 0 else { throw .invalid("dictionary \(path) is empty") }
        let size = Int(status.st_size)
        var failure: Int32 = 0
        // One byte more than fstat said shows a file that grew meanwhile.
        let bytes = [UInt8](unsafeUninitializedCapacity: size + 1) { buffer, count in
            while count <= size {
                let n = Glibc.read(fd, buffer.baseAddress! + count, size + 1 - count)
                if n < 0 && errno == EINTR { continue }
                if n < 0 { failure = errno }
                if n <= 0 { break }
                count += n
            }
        }
        guard failure == 0 else { throw .invalid("cannot read dictionary \(path): \(String(cString: strerror(failure)))") }
        guard bytes.count <= size else { throw .invalid("dictionary \(path) changed while it was read") }
        guard !bytes.isEmpty else { throw .invalid("dictionary \(path) is empty") }
        return bytes
    }
}
