#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import FUSEExport
import Foundation
import Logging
import NBD
import Platform
import SwiftZram
import ZnbdKit

/// `znbd serve`: the devices, their NBD exports and the control socket.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve compressed RAM devices over NBD.",
        discussion: """
            Exports zram0…zram{N-1} on a Unix socket (and TCP if asked). Attach one with
              nbd-client -unix /run/znbd/nbd.sock -N zram0 -b 4096 /dev/nbd0
            then mkswap /dev/nbd0 && swapon -p 100 /dev/nbd0, or use
              nbd+unix:///zram0?socket=/run/znbd/nbd.sock with libnbd and qemu tools.
            Without the nbd driver, `znbd attach zram0` puts a loop device over the device's
            file in the server's own FUSE directory (--fuse, default: beside the control socket).
            SIGINT/SIGTERM with no client attached finish in-flight requests, remove the sockets,
            unmount and exit 0. With clients attached (a swap area or a mounted file system), the
            server keeps serving and logs who holds which device until they detach (swapoff,
            umount, nbd-client -d), then exits 0; a second SIGTERM/SIGINT, or --force-stop, stops
            at once.

            TLS (--tls on|require) covers the TCP listener only; the Unix socket stays
            plaintext, protected by its 0600 mode. libnbd clients connect with
              nbds://alice@HOST:PORT/zram0?tls-psk-file=FILE
              nbds://HOST:PORT/zram0?tls-certificates=DIR
            TCP on a non-loopback address needs --tls require, or --insecure.
            """)

    @Option(help: "Unix socket for NBD clients (mode 0600; default in $ZNBD_RUNTIME_DIR or /run/znbd).")
    var unix: String = RuntimePaths.fromEnvironment.nbdSocket

    @Option(help: "Also listen on TCP: PORT binds 127.0.0.1, HOST:PORT binds HOST.")
    var tcp: String?

    @Option(help: "TLS on the TCP listener: off, on (clients may upgrade with STARTTLS) or require (plaintext clients are refused). Needs --tcp.")
    var tls: TLSConfiguration.Mode = .off

    @Option(name: .customLong("tls-certificates"), help: ArgumentHelp(
        "x509 directory with ca-cert.pem, server-cert.pem and server-key.pem (the nbdkit/qemu layout). Without --tls-verify-peer clients are encrypted, not authenticated.",
        valueName: "dir"))
    var tlsCertificates: String?

    @Flag(name: .customLong("tls-verify-peer"), help: "Require a client certificate signed by the directory's ca-cert.pem.")
    var tlsVerifyPeer = false

    @Option(name: .customLong("tls-psk"), help: ArgumentHelp(
        "Pre-shared keys: username:hexkey lines, as written by psktool -u NAME -p FILE.", valueName: "file"))
    var tlsPSK: String?

    @Flag(help: "Serve TCP on a non-loopback address without --tls require (anyone who can reach it reads and writes the devices).")
    var insecure = false

    @Option(help: "Control socket for status/get/set (mode 0600).")
    var control: String = ControlClient.defaultPath

    @Option(help: "Devices from a zram-generator-style file ([zramN] sections with zram-size, compression-algorithm, mem-limit, writeback-device, tiering, tiering-high-watermark) instead of --devices/--size.")
    var config: String?

    @Option(help: "Write the server's pid here once it serves; removed on exit.")
    var pidfile: String?

    @Option(help: "Size of each device (K/M/G/T); default min(RAM/2, 4G), as zram-generator.")
    var size: SizeArgument?

    @Option(help: "Compression algorithm: lzo, lz4, lz4hc, zstd.")
    var algorithm: CompressionAlgorithm = .default

    @Option(help: "Compression level (acceleration for lz4).")
    var level: Int?

    @Option(name: .customLong("mem-limit"), help: "Cap on each device's mem_used_total (0 = none).")
    var memLimit: SizeArgument?

    @Option(help: "Compression streams per device (1-64; default: CPU count).")
    var streams: Int?

    @Option(help: "Number of devices (exports zram0…; 0 = none until hot-add).")
    var devices: Int = 1

    @Option(name: .customLong("handshake-timeout"), help: "Seconds a client may take from connecting to transmission (30-3600).")
    var handshakeTimeout: Int = 60

    @Option(help: "Mount the devices as files here, for loop devices (default: DIR/fuse beside the control socket).")
    var fuse: String?

    @Option(name: .customLong("fuse-ring"), help: "FUSE over io_uring (Linux 6.14+): auto (when /sys/module/fuse/parameters/enable_uring is Y), on (turns it on) or off.")
    var fuseRing: FUSEExport.RingMode = .auto

    @Flag(name: .customLong("no-fuse"), help: "Don't mount the FUSE export.")
    var noFuse = false

    @Flag(name: .customLong("no-mlock"), help: "Don't lock the server's memory (default: locked when root, for swap safety).")
    var noMlock = false

    @Flag(name: .customLong("force-stop"), help: "Stop at the first SIGTERM/SIGINT even while clients are attached (their I/O then fails).")
    var forceStop = false

    func validate() throws {
        guard (0...64).contains(devices) else { throw ValidationError("--devices must be 0...64") }
        if config != nil, size != nil { throw ValidationError("--size and --config exclude each other: the file sizes the devices") }
        if let streams, !(1...64).contains(streams) { throw ValidationError("--streams must be 1...64") }
        guard (30...3600).contains(handshakeTimeout) else { throw ValidationError("--handshake-timeout must be 30...3600 s") }
        if let level, !algorithm.levels.contains(level) {
            throw ValidationError("--level \(level) is out of range for \(algorithm) (\(algorithm.levels))")
        }
        if let size, size.bytes == 0 { throw ValidationError("--size must be greater than 0") }
        if fuse != nil && noFuse { throw ValidationError("--fuse and --no-fuse exclude each other") }
        if let problem = tlsConfiguration.problem { throw ValidationError(problem) }
        if tls != .off && tcp == nil {
            throw ValidationError("--tls applies to the TCP listener: add --tcp (the Unix socket stays plaintext, mode 0600)")
        }
        if let tcp, let refusal = try Self.tcpAddress(tcp).refusal(tls: tls, insecure: insecure) {
            throw ValidationError(refusal)
        }
    }

    static func tcpAddress(_ text: String) throws(ValidationError) -> TCPAddress {
        do {
            return try TCPAddress.parse(text)
        } catch {
            throw ValidationError(error.description)
        }
    }

    var tlsConfiguration: TLSConfiguration {
        TLSConfiguration(mode: tls, certificatesDirectory: tlsCertificates, verifyPeer: tlsVerifyPeer, pskFile: tlsPSK)
    }

    /// zram-generator's default: half the RAM, at most 4 GiB.
    static var defaultSize: UInt64 {
        let ram = UInt64(sysconf(Int32(_SC_PHYS_PAGES))) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
        return min(ram / 2, 4 << 30)
    }

    func run() throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: "znbd")
        logger.logLevel = .info

        // Block the shutdown signals before any thread starts, so only sigwait sees them.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        signal(SIGPIPE, SIG_IGN)

        for warning in ProcessHardening.applyProcessWide(lockMemory: !noMlock) {
            logger.warning("\(warning)")
        }
        try checkRuntimeDirectory()

        // Compressor threads serve I/O too: mark them like the connection threads.
        let registry = DeviceRegistry(workerStart: { try? ProcessHardening.markCurrentThreadAsIOFlusher() })
        if let config {
            // Each [zramN] section: its size, algorithm, mem-limit and writeback device, else the command line's.
            let specs = try ZramConfig.load(path: config).specs(ramBytes: MachineMemory.totalBytes, file: config)
            for (name, spec) in specs {
                try registry.add(named: name) { device throws(ZramError) in
                    if let streams { try device.setStreamCount(streams) }
                    try device.setAlgorithm(spec.algorithm ?? algorithm)
                    if let level = spec.level ?? (spec.algorithm == nil ? level : nil) {
                        try device.setAlgorithmParameters(level: level, dictionary: nil)
                    }
                    for (attribute, value) in spec.recompressionWrites { try device.writeAttribute(attribute, value) }
                    if let limit = spec.memLimit ?? memLimit?.bytes { try device.setMemoryLimit(limit) }
                    if let backing = spec.writebackDevice { try device.writeAttribute("backing_dev", backing) }
                    for (attribute, value) in spec.tieringWrites { try device.writeAttribute(attribute, value) }
                    try device.setDiskSize(spec.size)
                }
            }
        } else {
            let diskSize = size?.bytes ?? Self.defaultSize
            for _ in 0..<devices {
                try registry.add { device throws(ZramError) in
                    if let streams { try device.setStreamCount(streams) }
                    try device.setAlgorithm(algorithm)
                    if let level { try device.setAlgorithmParameters(level: level, dictionary: nil) }
                    if let memLimit { try device.setMemoryLimit(memLimit.bytes) }
                    try device.setDiskSize(diskSize)
                }
            }
        }

        var configuration = NBDServerConfiguration(unixSocketPath: unix)
        if let tcp {
            let address = try Self.tcpAddress(tcp)
            configuration.tcpHost = address.host
            configuration.tcpPort = Int(address.port)
            configuration.tls = tlsConfiguration
            if let warning = address.plaintextWarning(tls: tls) { logger.warning("\(warning)") }
        }
        configuration.handshakeTimeout = .seconds(handshakeTimeout)
        configuration.markIOThreadsAsIOFlushers = true
        let server = NBDServer(configuration: configuration, exports: registry.exports, logger: logger)
        try server.start()
        // Before the control socket answers, so that whoever waits for it finds the files.
        let fuseExport = startFUSEExport(registry, logger: logger)
        if let fuseExport { BackingStores.refuseBacking(onFileSystemAt: fuseExport.mountPoint) }
        let controlServer: ControlServer
        do {
            controlServer = try ControlServer(path: control, registry: registry, logger: logger)
            try controlServer.start()
        } catch {
            fuseExport?.stop()
            server.shutdown()  // removes the NBD socket it bound
            throw error
        }
        for export in registry.all {
            logger.info("export \(export.name) (\(export.exportDescription)): nbd+unix:///\(export.name)?socket=\(unix)")
            if let port = server.boundTCPPort {
                let scheme = tls == .off ? "nbd" : "nbds"
                logger.info("export \(export.name): \(scheme)://\(configuration.tcpHost):\(port)/\(export.name) (TLS \(tls.rawValue))")
            }
        }
        logger.info("control socket \(control)")
        if let pidfile {
            do {
                try Directories.createParents(of: pidfile)
                let fd = try PrivateFile.open(pidfile, .writeOnly, options: [.create, .truncate])
                defer { _ = try? fd.close() }
                try PrivateFile.writeAll(Array("\(getpid())\n".utf8), to: fd)
            } catch {
                logger.warning("cannot write pidfile \(pidfile): \(error)")
            }
        }
        SystemdNotify.send("READY=1\nMAINPID=\(getpid())")

        ServeStop(server: server, registry: registry, force: forceStop, logger: logger).wait(for: signals)
        SystemdNotify.send("STOPPING=1")
        controlServer.shutdown()
        fuseExport?.stop()
        server.shutdown()
        if let pidfile, let filed = (try? PrivateFile.read(pidfile)) ?? nil, filed == Array("\(getpid())\n".utf8) {
            unlink(pidfile)
        }
        logger.info("stopped")
    }

    /// The runtime directory (`$ZNBD_RUNTIME_DIR` or /run/znbd), when a socket or the pidfile
    /// goes there, must be ours alone: created 0700, refused when another user owns it or
    /// can write to it (they could replace the sockets).
    private func checkRuntimeDirectory() throws {
        let runtime = RuntimePaths.fromEnvironment.directory
        let directories = ([unix, control] + (pidfile.map { [$0] } ?? [])).map { ($0 as NSString).deletingLastPathComponent }
        // Compared as directories, not strings: `DIR//x` or a symlink to DIR is DIR.
        guard directories.contains(where: { Directories.same($0, runtime) }) else { return }
        try RuntimeDirectory.prepare(runtime)
    }
}

extension ServeCommand {
    /// Mounts the FUSE export unless --no-fuse; a host without /dev/fuse (or a failed mount)
    /// is logged and the server goes on without it.
    func startFUSEExport(_ registry: DeviceRegistry, logger: Logger) -> FUSEExport? {
        if noFuse { return nil }
        let directory = fuse ?? RuntimePaths.containing(controlSocket: control).fuseExportDirectory
        do {
            let export = try FUSEExport(
                exports: registry.exports, mountPoint: directory,
                configuration: {
                    var configuration = FUSEExport.Configuration(markThreadsAsIOFlushers: true)
                    configuration.ring = fuseRing
                    return configuration
                }())
            let transport = export.usesRing ? "\(export.configuration.threads) threads and io_uring queues" : "\(export.configuration.threads) threads"
            logger.info("FUSE export \(directory) (\(transport)): losetup --direct-io=on over \(directory)/DEVICE, or znbd attach DEVICE")
            return export
        } catch {
            logger.warning("no FUSE export: \(error)")
            return nil
        }
    }
}

extension TLSConfiguration.Mode: ExpressibleByArgument {}
extension FUSEExport.RingMode: ExpressibleByArgument {}
