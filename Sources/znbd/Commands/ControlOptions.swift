import ArgumentParser
import ZnbdKit

/// `--control PATH`, shared by every command that talks to the server.
struct ControlOptions: ParsableArguments {
    @Option(name: .long, help: "The server's control socket.")
    var control: String = ControlClient.defaultPath

    var client: ControlClient { ControlClient(path: control) }
}
