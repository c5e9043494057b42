/// zram-generator's `zram-size` expression: a size in MiB computed from `ram`
/// (the machine's memory in MiB), e.g. `min(ram / 2, 4096)`.
///
/// Grammar: numbers (`4096`, `0.5`), `ram`, `+ - * /`, unary minus, parentheses,
/// and `min(...)`/`max(...)` of one or more arguments. Evaluated in Double.
public indirect enum SizeExpression: Equatable, Sendable {
    case number(Double)
    case ram
    case negate(SizeExpression)
    case binary(Character, SizeExpression, SizeExpression)
    case call(String, [SizeExpression])

    /// A syntax error at a 1-based column of the expression text.
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var column: Int
        public var message: String
        public var description: String { "column \(column): \(message)" }
    }

    /// An expression that parses but has no usable value (division by zero, negative).
    public struct EvaluationError: Error, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public static func parse(_ text: String) throws(ParseError) -> SizeExpression {
        var parser = Parser(Array(text))
        let expression = try parser.expression()
        parser.skipSpace()
        guard parser.atEnd else { throw parser.error("unexpected '\(parser.peek!)'") }
        return expression
    }

    func evaluate(ram: Double) throws(EvaluationError) -> Double {
        switch self {
        case .number(let value): return value
        case .ram: return ram
        case .negate(let operand): return -(try operand.evaluate(ram: ram))
        case .binary(let op, let left, let right):
            let a = try left.evaluate(ram: ram), b = try right.evaluate(ram: ram)
            switch op {
            case "+": return a + b
            case "-": return a - b
            case "*": return a * b
            default:
                guard b != 0 else { throw EvaluationError(message: "division by zero") }
                return a / b
            }
        case .call(let name, let arguments):
            var values: [Double] = []
            for argument in arguments { values.append(try argument.evaluate(ram: ram)) }
            return name == "min" ? values.min()! : values.max()!
        }
    }

    /// Recursive descent: expression := term (('+'|'-') term)*, term := unary (('*'|'/') unary)*,
    /// unary := '-' unary | '+' unary | primary, primary := number | ram | f '(' args ')' | '(' expression ')'.
    private struct Parser {
        let chars: [Character]
        var position = 0
        var depth = 0
        /// Operators and operands so far: evaluating (and freeing) the tree recurses
        /// once per operator, so a long flat expression is as deep as a nested one.
        var nodes = 0
        static let maximumNodes = 1024

        init(_ chars: [Character]) { self.chars = chars }

        var atEnd: Bool { position >= chars.count }
        var peek: Character? { atEnd ? nil : chars[position] }

        func error(_ message: String) -> ParseError { ParseError(column: position + 1, message: message) }

        mutating func skipSpace() {
            while let c = peek, c == " " || c == "\t" { position += 1 }
        }

        mutating func expression() throws(ParseError) -> SizeExpression {
            depth += 1
            defer { depth -= 1 }
            guard depth < 64 else { throw error("expression nested too deeply") }
            var left = try term()
            while true {
                skipSpace()
                guard let c = peek, c == "+" || c == "-" else { return left }
                position += 1
                left = try node(.binary(c, left, try term()))
            }
        }

        mutating func term() throws(ParseError) -> SizeExpression {
            var left = try unary()
            while true {
                skipSpace()
                guard let c = peek, c == "*" || c == "/" else { return left }
                position += 1
                left = try node(.binary(c, left, try unary()))
            }
        }

        mutating func unary() throws(ParseError) -> SizeExpression {
            skipSpace()
            if peek == "-" || peek == "+" {
                let sign = peek!
                position += 1
                depth += 1
                defer { depth -= 1 }
                guard depth < 64 else { throw error("expression nested too deeply") }
                let operand = try unary()
                return sign == "-" ? try node(.negate(operand)) : operand
            }
            return try primary()
        }

        /// Counts a node of the tree, refusing expressions longer than ``maximumNodes``.
        mutating func node(_ expression: SizeExpression) throws(ParseError) -> SizeExpression {
            nodes += 1
            guard nodes <= Self.maximumNodes else { throw error("expression too long (more than \(Self.maximumNodes) terms and operators)") }
            return expression
        }

        mutating func primary() throws(ParseError) -> SizeExpression {
            skipSpace()
            guard let c = peek else { throw error("expected a number, 'ram', min(), max() or '('") }
            if c.isASCII && (c.isNumber || c == ".") {
                let start = position
                while let d = peek, d.isASCII && (d.isNumber || d == ".") { position += 1 }
                let text = String(chars[start..<position])
                guard let value = Double(text), value.isFinite else {
                    throw ParseError(column: start + 1, message: "'\(text)' is not a number")
                }
                return try node(.number(value))
            }
            if c.isLetter {
                let start = position
                while let d = peek, d.isLetter || d.isNumber || d == "_" { position += 1 }
                let name = String(chars[start..<position])
                switch name {
                case "ram": return try node(.ram)
                case "min", "max":
                    skipSpace()
                    guard peek == "(" else { throw error("expected '(' after \(name)") }
                    position += 1
                    var arguments = [try expression()]
                    while true {
                        skipSpace()
                        if peek == "," {
                            position += 1
                            arguments.append(try expression())
                        } else if peek == ")" {
                            position += 1
                            return try node(.call(name, arguments))
                        } else {
                            throw error(atEnd ? "missing ')' after \(name)'s arguments" : "expected ',' or ')' in \(name)(...)")
                        }
                    }
                default:
                    throw ParseError(column: start + 1, message: "unknown name '\(name)' (use ram, min(), max())")
                }
            }
            if c == "(" {
                position += 1
                let inner = try expression()
                skipSpace()
                guard peek == ")" else { throw error(atEnd ? "missing ')'" : "expected ')'") }
                position += 1
                return inner
            }
            throw error("unexpected '\(c)'")
        }
    }
}
