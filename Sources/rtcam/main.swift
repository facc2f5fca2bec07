#if canImport(Glibc)
import Glibc
#endif
import CameraServer
import Logging
import RTCamCommandLine

// rtcam's entry point: the command line (RTCamCommandLine) and the wiring; the daemon is CameraServer.
let arguments = Array(CommandLine.arguments.dropFirst())
let invocation: RTCamInvocation
do {
    invocation = try RTCamCommandLine.parse(arguments, stateDirectoryFromEnvironment: Environment.value("STATE_DIRECTORY"),
                                            workingDirectory: currentDirectory())
} catch {
    var message = RTCamCommandLine.errorMessage(error, arguments: arguments) + "\n"
    message.withUTF8 { bytes in _ = write(STDERR_FILENO, bytes.baseAddress, bytes.count) }
    exit(64)                                     // EX_USAGE
}

switch invocation {
case let .showHelp(text):
    print(text)
case .listDevices:
    print(DeviceListing.report())
case let .serve(configuration, level):
    // Before the first thread starts: no transparent huge pages (issue 23, ProcessMemory says why).
    let hugePagesRefused = ProcessMemory.disableTransparentHugePages()
    // Large blocks keep their own mappings (issue 20, ProcessMemory says why).
    let mmapThresholdFixed = ProcessMemory.fixMmapThreshold()
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    let logger = Logger(label: "rtcam")
    if !mmapThresholdFixed { logger.debug("malloc refused a fixed mmap threshold: it stays dynamic") }
    if let error = hugePagesRefused { logger.debug("transparent huge pages stay on: prctl refused (errno \(error))") }
    do {
        try CameraDaemon(configuration: configuration, logger: logger).run()
    } catch {
        logger.critical("rtcam could not start: \(error)")
        exit(1)
    }
}

/// The process's current directory (getcwd), for a relative `--source file:PATH`.
func currentDirectory() -> String? {
    guard let pointer = getcwd(nil, 0) else { return nil }
    defer { free(pointer) }
    return String(cString: pointer)
}
