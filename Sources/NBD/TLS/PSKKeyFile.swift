/// The keys of a pre-shared key file: `username:hexkey` lines, as GnuTLS's `psktool` writes them.
struct PSKKeyFile: Sendable, Equatable {
    /// Key bytes by username.
    var keys: [String: [UInt8]]

    /// Parses the file's text; blank lines are skipped.
    /// - Parameter file: the path, for the error messages.
    /// - Throws: `TLSError` naming the file, the line and what is wrong with it.
    init(parsing text: String, file: String) throws(TLSError) {
        var keys: [String: [UInt8]] = [:]
        // `\r\n` is one Character, so CRLF files split as LF files do.
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            let at = "\(file) line \(index + 1)"
            guard let colon = line.firstIndex(of: ":") else {
                throw TLSError("\(at): expected username:hexkey (as psktool writes it)")
            }
            let user = String(line[..<colon])
            let hex = line[line.index(after: colon)...]
            guard !user.isEmpty else { throw TLSError("\(at): the username is empty") }
            guard let key = Self.decodeHex(hex), !key.isEmpty else {
                throw TLSError("\(at): the key of '\(user)' is not an even number of hex digits")
            }
            guard keys[user] == nil else { throw TLSError("\(at): '\(user)' appears twice") }
            keys[user] = key
        }
        guard !keys.isEmpty else { throw TLSError("\(file): no keys (create one with psktool -u NAME -p \(file))") }
        self.keys = keys
    }

    private static func decodeHex(_ text: Substring) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var i = 0
        while i < digits.count {
            guard let high = hexValue(digits[i]), let low = hexValue(digits[i + 1]) else { return nil }
            bytes.append(high << 4 | low)
            i += 2
        }
        return bytes
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
