/// Sizes for people, as zramctl prints them: `4G`, `1.5M`, `812K`, `0B`.
public enum HumanSize {
    public static func format(_ bytes: UInt64) -> String {
        let units = ["B", "K", "M", "G", "T", "P", "E"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes)B" }
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? "\(Int(rounded))\(units[unit])" : "\(rounded)\(units[unit])"
    }
}
