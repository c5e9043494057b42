/// Automatic tiering from a config section (`tiering = on`, `tiering-high-watermark = SIZE`),
/// as the attribute writes that set it up.
extension DeviceSpec {
    /// `tiering_high_watermark` then `tiering_enable`, for a spec that turns tiering on;
    /// none otherwise, so the device keeps the kernel's behaviour.
    public var tieringWrites: [(attribute: String, value: String)] {
        guard tiering else { return [] }
        var writes: [(attribute: String, value: String)] = []
        if let tieringHighWatermark { writes.append(("tiering_high_watermark", String(tieringHighWatermark))) }
        writes.append(("tiering_enable", "1"))
        return writes
    }
}
