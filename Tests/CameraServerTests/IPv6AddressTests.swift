@testable import CameraServer
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import RTCBase
import SDP
import Testing
import WebRTCSession

private func ip(_ text: String) -> TransportAddress.IP { TransportAddress.IP(parsing: text)! }

/// Issue 19, IPv6: the dual-stack sockets' address boundary, and which addresses become host candidates.
@Suite struct IPv6AddressTests {
    // MARK: The socket boundary

    @Test("a v4-mapped peer of a dual-stack socket becomes plain IPv4; IPv6 peers stay IPv6")
    func mappedAddressesAreUnmapped() throws {
        let mapped = try SocketAddress(ipAddress: "::ffff:192.0.2.7", port: 5000)
        #expect(TransportAddress(mapped) == TransportAddress(ip: .v4(192, 0, 2, 7), port: 5000))
        let v6 = try SocketAddress(ipAddress: "2001:db8::2", port: 5001)
        #expect(TransportAddress(v6) == TransportAddress(ip: ip("2001:db8::2"), port: 5001))
        let v4 = try SocketAddress(ipAddress: "192.0.2.7", port: 5000)
        #expect(TransportAddress(v4) == TransportAddress(mapped))
        // Only ::ffff:0:0/96 is mapped: the deprecated IPv4-compatible ::a.b.c.d, NAT64's 64:ff9b::/96
        // and ::1 are IPv6 addresses of their own.
        for text in ["::c000:207", "64:ff9b::c000:207", "::1", "::fffe:c000:207", "0:0:0:0:1:ffff:c000:207"] {
            #expect(ip(text).unmappingIPv4 == ip(text), "\(text)")
        }
    }

    @Test("IPv4 goes out v4-mapped on a dual-stack socket and comes back unchanged")
    func mappingRoundTrips() {
        let address = TransportAddress(ip: .v4(203, 0, 113, 9), port: 8189)
        #expect(address.ip.ipv4Mapped == ip("::ffff:cb00:7109"))
        #expect(address.ip.ipv4Mapped.unmappingIPv4 == address.ip)
        let v6 = ip("2001:db8::1")
        #expect(v6.ipv4Mapped == v6)
        address.withSocketAddress(ipv4Mapped: true) { socketAddress, length in
            #expect(Int32(socketAddress.pointee.sa_family) == AF_INET6)
            #expect(Int(length) == MemoryLayout<sockaddr_in6>.size)
        }
        address.withSocketAddress { socketAddress, length in
            #expect(Int32(socketAddress.pointee.sa_family) == AF_INET)
            #expect(Int(length) == MemoryLayout<sockaddr_in>.size)
        }
    }

    @Test("loopback is 127/8, ::1 and a v4-mapped 127/8; link-local is fe80::/10 only")
    func loopbackAndLinkLocal() {
        #expect(ip("127.0.0.1").isLoopback && ip("::1").isLoopback && ip("::ffff:127.1.2.3").isLoopback)
        #expect(!ip("::2").isLoopback && !ip("::ffff:128.0.0.1").isLoopback && !ip("2001:db8::1").isLoopback)
        #expect(ip("fe80::1").isIPv6LinkLocal && ip("febf:ffff::1").isIPv6LinkLocal)
        #expect(!ip("fec0::1").isIPv6LinkLocal && !ip("fd00::1").isIPv6LinkLocal && !ip("169.254.1.1").isIPv6LinkLocal)
    }

    @Test("HTTP clients through the dual-stack listener are counted per IPv4 address, not per mapped form")
    func connectionCapsTreatMappedClientsAsIPv4() throws {
        var admission = ConnectionAdmission(limits: HTTPLimits(maximumConnectionsPerAddress: 3))
        let forms = ["192.0.2.7", "::ffff:192.0.2.7", "::ffff:c000:207"]
        for form in forms {
            let client = TransportAddress(try SocketAddress(ipAddress: form, port: 40_000))?.ip
            #expect(admission.open(from: client) == .admit)
        }
        let fourth = TransportAddress(try SocketAddress(ipAddress: "::ffff:192.0.2.7", port: 40_001))?.ip
        #expect(admission.open(from: fourth) == .tooManyFromAddress)
        #expect(admission.byAddress[.v4(192, 0, 2, 7)] == 3)
        let v6 = TransportAddress(try SocketAddress(ipAddress: "2001:db8::7", port: 40_002))?.ip
        #expect(admission.open(from: v6) == .admit)
    }

    @Test("bracketed IPv6 hosts: accepted in Host, same origin in any spelling, redirected with brackets")
    func requestPolicyHandlesBracketedIPv6() {
        let policy = RequestPolicy(hostName: "rtcam", httpsPort: 8443)
        func decide(_ method: HTTPMethod, _ path: String, host: String, origin: String?) -> RequestPolicy.Decision {
            policy.decide(method: method, path: path, query: "", host: host, origin: origin,
                          isSecureTransport: false, hasValidBearerToken: false)
        }
        #expect(decide(.GET, "/", host: "[2001:db8::1]:8080", origin: nil) == .proceed)
        #expect(decide(.POST, "/whep", host: "[2001:db8::1]:8080", origin: "http://[2001:db8::1]:8080") == .proceed)
        #expect(decide(.POST, "/whep", host: "[2001:DB8:0::1]:8080", origin: "http://[2001:db8::1]:8080") == .proceed)
        #expect(decide(.POST, "/whep", host: "[2001:db8::1]:8080", origin: "http://[2001:db8::2]:8080")
            != .proceed)
        #expect(decide(.POST, "/whep", host: "[2001:db8::1]:8080", origin: "http://[2001:db8::1]:9090") != .proceed)
        #expect(decide(.GET, "/", host: "2001:db8::1", origin: nil) != .proceed)   // unbracketed: malformed
        #expect(decide(.GET, "/api/status", host: "[2001:db8::1]:8080", origin: nil)
            == .redirect(location: "https://[2001:db8::1]:8443/api/status"))
    }

    // MARK: Host candidates

    /// What /proc/net/if_inet6 says on a host with one of each kind (fields as the kernel prints them).
    static let listing = """
        00000000000000000000000000000001 01 80 10 80       lo
        20010db8000000000000000000000010 02 40 00 80     eth0
        20010db80000000011223344556677aa 02 40 00 01     eth0
        20010db8000000000000000000000020 02 40 00 a0     eth0
        20010db8000000000000000000000030 02 40 00 40     eth0
        20010db8000000000000000000000040 02 40 00 08     eth0
        fe80000000000000021122fffe334455 02 40 20 80     eth0
        fd000000000000000000000000000002 03 40 00 82    wlan0
        20010db8000000000000000000000050 03 40 00 04    wlan0
        not a line at all
        20010db8zz0000000000000000000060 03 40 00 00    wlan0
        """

    @Test("/proc/net/if_inet6 parses to address, scope and flags; malformed lines are skipped")
    func listingParses() {
        let parsed = HostCandidateAddresses.parseIPv6Listing(Self.listing)
        #expect(parsed.count == 9)
        #expect(parsed[1] == .init(ip: ip("2001:db8::10"), interfaceName: "eth0", scope: 0, flags: 0x80))
        #expect(parsed[2].ip == ip("2001:db8::1122:3344:5566:77aa") && parsed[2].flags == 0x01)
        #expect(parsed[6].ip == ip("fe80::211:22ff:fe33:4455") && parsed[6].scope == 0x20)
        #expect(parsed[7] == .init(ip: ip("fd00::2"), interfaceName: "wlan0", scope: 0, flags: 0x82))
    }

    @Test("default candidates: global stable IPv6 (optimistic too), no temporary, deprecated, tentative, DAD-failed, link-local or loopback")
    func candidateFiltering() {
        let chosen = HostCandidateAddresses.defaults(
            interfaceIPs: [ip("127.0.0.1"), ip("192.168.1.2"), ip("::1"), ip("2001:db8::10"), ip("fe80::1"), ip("10.0.0.2")],
            ipv6Listing: HostCandidateAddresses.parseIPv6Listing(Self.listing))
        // RFC 8421: interleaved, IPv6 first; within a family the listing's order.
        #expect(chosen == [ip("2001:db8::10"), ip("192.168.1.2"), ip("fd00::2"), ip("10.0.0.2"), ip("2001:db8::50")])
    }

    @Test("without /proc/net/if_inet6, getifaddrs' IPv6 addresses minus link-local, loopback and mapped")
    func candidateFallbackWithoutListing() {
        let chosen = HostCandidateAddresses.defaults(
            interfaceIPs: [ip("::1"), ip("fe80::1"), ip("10.0.0.2"), ip("2001:db8::10"), ip("::ffff:10.0.0.3"), ip("10.0.0.2")],
            ipv6Listing: nil)
        #expect(chosen == [ip("2001:db8::10"), ip("10.0.0.2")])
        #expect(HostCandidateAddresses.defaults(interfaceIPs: [ip("127.0.0.1"), ip("::1")], ipv6Listing: []) == [])
    }

    @Test("interleaving keeps each family's order and starts with IPv6 (RFC 8421 §4)")
    func interleaving() {
        let given = [ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"), ip("2001:db8::1")]
        #expect(HostCandidateAddresses.interleaved(given) == [ip("2001:db8::1"), ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")])
        #expect(HostCandidateAddresses.interleaved([ip("10.0.0.1")]) == [ip("10.0.0.1")])
        #expect(HostCandidateAddresses.interleaved([]) == [])
    }

    @Test("the answer: host candidates in the hub's order with falling priority; srflx based on the host of its family")
    func answerCandidatesPerFamily() throws {
        var random = SeededRandom(seed: 19)
        let factory = WHEPSessionFactory(certificate: StreamHubTests.certificate, packetizer: MediaPacketizer(random: &random),
                                         ntpNanosecondsAtMonotonicZero: 0)
        var settings = HubSettings(maximumViewers: 2, candidateAddresses: [ip("2001:db8::1"), ip("192.0.2.1")], mediaPort: 8189,
                                   h264ProfileLevelID: "42e01f", hasVideo: true, hasAudio: true)
        settings.iceMode = .full
        settings.serverReflexiveAddresses = [TransportAddress(host: "203.0.113.9", port: 41234)!]
        let made = try factory.makeSession(offer: StreamHubTests.offer(), settings: settings, now: MonotonicTime(seconds: 1),
                                           random: &random)
        let lines = made.answer.split(separator: "\r\n").filter { $0.hasPrefix("a=candidate:") }
        #expect(lines.prefix(3) == ["a=candidate:1 1 udp 2130706431 2001:db8::1 8189 typ host",
                                    "a=candidate:2 1 udp 2130706175 192.0.2.1 8189 typ host",
                                    "a=candidate:s1 1 udp 1694498815 203.0.113.9 41234 typ srflx raddr 192.0.2.1 rport 8189"])
        // No IPv4 host candidate: no base for an IPv4 server-reflexive address, so none is offered.
        settings.candidateAddresses = [ip("2001:db8::1")]
        let v6Only = try factory.makeSession(offer: StreamHubTests.offer(), settings: settings, now: MonotonicTime(seconds: 1),
                                             random: &random)
        #expect(!v6Only.answer.contains("typ srflx"))
    }
}
