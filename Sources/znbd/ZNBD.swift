import ArgumentParser

@main
struct ZNBD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "znbd",
        abstract: "Compressed RAM block devices (userspace zram) served over NBD.",
        subcommands: [
            ServeCommand.self, StatusCommand.self, GetCommand.self, SetCommand.self, HotAddCommand.self, HotRemoveCommand.self,
            SwapOnCommand.self, SwapOffCommand.self, MountCommand.self, UmountCommand.self, CheckConfigCommand.self,
            EstimateCommand.self, AttachCommand.self, DetachCommand.self,
        ])
}
