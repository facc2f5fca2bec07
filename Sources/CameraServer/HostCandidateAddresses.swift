import RTCBase

/// Which of this machine's addresses become ICE host candidates, and in what order (issue 19).
/// Pure: the interface lists come in as values, so the choice is tested without a network.
///
/// - IPv4: every non-loopback interface address.
/// - IPv6: global addresses only. Not link-local (fe80::/10: it needs an interface scope, which one
///   unscoped socket and a candidate line cannot carry), not loopback, not temporary (RFC 8981 privacy
///   addresses rotate and are meant for outgoing connections, not to be published), not deprecated
///   (their preferred lifetime is over: they are going away), not tentative or DAD-failed (not
///   usable yet, or never). getifaddrs does not tell temporary from stable; /proc/net/if_inet6 does
///   (its flags are the kernel's IFA_F_* of each address), and reading one text file is simpler and
///   as exact as a netlink RTM_GETADDR dump for this.
/// - Order (RFC 8421 §4): the families interleaved, IPv6 first, so neither family's candidates all
///   come before the other's; within a family the listing's order is kept. The local preference
///   then falls by one per position (WHEPSessionFactory), IPv6 slightly ahead of IPv4.
enum HostCandidateAddresses {
    /// One line of /proc/net/if_inet6: "<32 hex digits> <ifindex> <prefix length> <scope> <flags> <name>".
    struct IPv6InterfaceAddress: Equatable, Sendable {
        var ip: TransportAddress.IP
        var interfaceName: String
        /// IPV6_ADDR_* scope as the kernel prints it: 0x00 global, 0x10 host, 0x20 link, 0x40 site.
        var scope: UInt8
        /// The low byte of IFA_F_* (the file prints no more).
        var flags: UInt8

        static let temporaryFlag: UInt8 = 0x01        // IFA_F_TEMPORARY (RFC 8981 privacy address)
        static let duplicateDetectedFlag: UInt8 = 0x08 // IFA_F_DADFAILED
        static let deprecatedFlag: UInt8 = 0x20       // IFA_F_DEPRECATED (preferred lifetime over)
        static let tentativeFlag: UInt8 = 0x40        // IFA_F_TENTATIVE (duplicate detection running)
        static let globalScope: UInt8 = 0x00

        /// Whether this address may be a host candidate when none are configured.
        var isPublishable: Bool {
            let unusable = Self.temporaryFlag | Self.duplicateDetectedFlag | Self.deprecatedFlag | Self.tentativeFlag
            return scope == Self.globalScope && flags & unusable == 0 && !ip.isIPv6LinkLocal && !ip.isLoopback
                && ip.unmappingIPv4 == ip
        }
    }

    static let ipv6ListingPath = "/proc/net/if_inet6"

    /// The lines of /proc/net/if_inet6 that parse (anything else is skipped).
    static func parseIPv6Listing(_ text: String) -> [IPv6InterfaceAddress] {
        var found: [IPv6InterfaceAddress] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[0].utf8.count == 32,
                  let scope = UInt8(fields[3], radix: 16), let flags = UInt8(fields[4], radix: 16) else { continue }
            var bytes: [UInt8] = []
            var digits = fields[0].utf8.makeIterator()
            while let high = digits.next(), let low = digits.next() {
                guard let byte = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else { break }
                bytes.append(byte)
            }
            guard bytes.count == 16 else { continue }
            found.append(IPv6InterfaceAddress(ip: .v6(bytes), interfaceName: String(fields[5]), scope: scope, flags: flags))
        }
        return found
    }

    /// The default host candidates: `interfaceIPs` (getifaddrs: every family, no flags) for IPv4, and
    /// `ipv6Listing` (nil: /proc/net/if_inet6 unreadable, then getifaddrs' IPv6 addresses minus
    /// link-local and loopback) for IPv6; ordered for ICE.
    static func defaults(interfaceIPs: [TransportAddress.IP], ipv6Listing: [IPv6InterfaceAddress]?) -> [TransportAddress.IP] {
        let ipv4 = interfaceIPs.filter { !$0.isIPv6 && !$0.isLoopback }
        let ipv6: [TransportAddress.IP]
        if let ipv6Listing {
            ipv6 = ipv6Listing.filter(\.isPublishable).map(\.ip)
        } else {
            ipv6 = interfaceIPs.filter { $0.isIPv6 && !$0.isIPv6LinkLocal && !$0.isLoopback && $0.unmappingIPv4 == $0 }
        }
        return interleaved(unique(ipv4 + ipv6))
    }

    /// RFC 8421 §4: IPv6 first, then the families alternate while both have some left.
    static func interleaved(_ ips: [TransportAddress.IP]) -> [TransportAddress.IP] {
        let ipv6 = ips.filter(\.isIPv6), ipv4 = ips.filter { !$0.isIPv6 }
        var ordered: [TransportAddress.IP] = []
        for index in 0 ..< max(ipv6.count, ipv4.count) {
            if index < ipv6.count { ordered.append(ipv6[index]) }
            if index < ipv4.count { ordered.append(ipv4[index]) }
        }
        return ordered
    }

    private static func unique(_ ips: [TransportAddress.IP]) -> [TransportAddress.IP] {
        var seen: Set<TransportAddress.IP> = []
        return ips.filter { seen.insert($0).inserted }
    }
}
