/// Parses sizes the way the kernel's `memparse` does for zram's attributes:
/// a decimal, `0x` hexadecimal or `0` octal number, then an optional
/// K/M/G/T/P/E suffix (either case) scaling by powers of 1024.
///
/// Unlike the kernel, trailing junk is an error rather than ignored;
/// trailing white space (such as the newline of `echo`) is allowed.
/// - Returns: the size in bytes, or nil for malformed or overflowing input.
public func memparse(_ text: String) -> UInt64? {
    var chars = Substring(text.trimmingWhitespace())
    guard !chars.isEmpty else { return nil }

    var shift: UInt64 = 0
    if let last = chars.last, let suffixShift = memparseSuffixShift(last) {
        shift = suffixShift
        chars = chars.dropLast()
    }
    guard let value = parseUnsignedWithCPrefix(chars) else { return nil }
    let (scaled, overflow) = value.multipliedReportingOverflow(by: 1 << shift)
    return overflow ? nil : scaled
}

private func memparseSuffixShift(_ c: Character) -> UInt64? {
    switch c {
    case "k", "K": 10
    case "m", "M": 20
    case "g", "G": 30
    case "t", "T": 40
    case "p", "P": 50
    case "e", "E": 60
    default: nil
    }
}

/// `strtoull(s, NULL, 0)` without its tolerance for junk.
private func parseUnsignedWithCPrefix(_ s: Substring) -> UInt64? {
    if s.hasPrefix("0x") || s.hasPrefix("0X") {
        return UInt64(s.dropFirst(2), radix: 16)
    }
    if s.count > 1, s.hasPrefix("0") {
        return UInt64(s.dropFirst(), radix: 8)
    }
    return UInt64(s, radix: 10)
}

extension String {
    func trimmingWhitespace() -> Substring {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return s
    }
}
