import NIOCore
import NIOPosix
import RTCBase

#if canImport(Glibc)
import Glibc
#endif

/// Every address of this machine's interfaces (loopback included), IPv4 and IPv6, each once, in the
/// order the system lists them: the HTTPS certificate's names and the ICE host candidates come from it.
func interfaceAddresses() -> [TransportAddress.IP] {
    var found: [TransportAddress.IP] = []
    for device in (try? System.enumerateDevices()) ?? [] {
        guard let address = device.address, let transport = TransportAddress(address),
              !found.contains(transport.ip) else { continue }
        found.append(transport.ip)
    }
    return found
}

/// The core's TransportAddress from NIO's SocketAddress (received datagrams, HTTP clients) and as a
/// sockaddr (MediaSocket's sends), straight from and to the bytes (this runs for every datagram: no
/// strings). This is the socket boundary of the dual-stack sockets: an IPv4 peer they report as
/// ::ffff:a.b.c.d becomes the plain IPv4 address here, and becomes v4-mapped again only in
/// `withSocketAddress(ipv4Mapped: true)`, so ICE, the hub, the access checks and /api/status only
/// ever see plain IPv4.
extension TransportAddress {
    init?(_ address: SocketAddress) {
        switch address {
        case let .v4(v4):
            let raw = v4.address
            let host = UInt32(bigEndian: raw.sin_addr.s_addr)
            self.init(ip: .v4(UInt8(host >> 24), UInt8(truncatingIfNeeded: host >> 16),
                              UInt8(truncatingIfNeeded: host >> 8), UInt8(truncatingIfNeeded: host)),
                      port: UInt16(bigEndian: raw.sin_port))
        case let .v6(v6):
            var raw = v6.address
            let bytes = withUnsafeBytes(of: &raw.sin6_addr) { Array($0) }
            self.init(ip: TransportAddress.IP.v6(bytes).unmappingIPv4, port: UInt16(bigEndian: raw.sin6_port))
        default:
            return nil
        }
    }

    /// `body` gets this address as a sockaddr_in or sockaddr_in6 and its length (MediaSocket's sends).
    /// `ipv4Mapped`: an IPv4 address comes as a sockaddr_in6 of its v4-mapped form (what an AF_INET6
    /// dual-stack socket is portably given).
    func withSocketAddress<Result>(ipv4Mapped: Bool = false, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        switch ipv4Mapped ? ip.ipv4Mapped : ip {
        case let .v4(a, b, c, d):
            var raw = sockaddr_in()
            raw.sin_family = sa_family_t(AF_INET)
            raw.sin_port = port.bigEndian
            raw.sin_addr.s_addr = (UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)).bigEndian
            return withUnsafePointer(to: &raw) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case let .v6(bytes):
            var raw = sockaddr_in6()
            raw.sin6_family = sa_family_t(AF_INET6)
            raw.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &raw.sin6_addr) { target in
                for (index, byte) in bytes.prefix(16).enumerated() { target[index] = byte }
            }
            return withUnsafePointer(to: &raw) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }
}
