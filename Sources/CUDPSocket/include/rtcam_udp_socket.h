#ifndef RTCAM_UDP_SOCKET_H
#define RTCAM_UDP_SOCKET_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

/// The kernel's UDP socket calls rtcam's media path needs and Swift cannot spell: the UDP_SEGMENT
/// control message (UDP GSO) and sendmmsg's header array. Every function returns -errno on failure.

/// A non-blocking, close-on-exec IPv4 UDP socket bound to 0.0.0.0:port (SO_REUSEADDR), with the
/// given receive and send buffer sizes (0 keeps the kernel's).
int rtcam_udp_bind_ipv4(uint16_t port, int receive_buffer_bytes, int send_buffer_bytes);

/// The same bound to [::]:port with IPV6_V6ONLY off: one socket for both families. IPv4 peers
/// appear as v4-mapped addresses (::ffff:a.b.c.d) and are sent to as such. Fails with
/// -EAFNOSUPPORT where IPv6 is disabled (ipv6.disable=1); the caller then falls back to IPv4.
int rtcam_udp_bind_dual_stack(uint16_t port, int receive_buffer_bytes, int send_buffer_bytes);

/// One sendmsg to `address` of the bytes of `iov`: one datagram, or with segment_size > 0 the
/// kernel cuts them into datagrams of segment_size bytes, the last possibly shorter (UDP_SEGMENT,
/// Linux 4.18). Never blocks. Returns the bytes sent.
ssize_t rtcam_udp_send(int fd, const struct sockaddr *address, socklen_t address_length,
                       const struct iovec *iov, int iov_count, uint16_t segment_size);

/// One sendmmsg to `address`: one datagram per iovec (at most RTCAM_UDP_MAX_BATCH). Never blocks.
/// Returns how many datagrams the kernel took (it stops at the first that fails).
int rtcam_udp_send_each(int fd, const struct sockaddr *address, socklen_t address_length,
                        const struct iovec *datagrams, int count);

#define RTCAM_UDP_MAX_BATCH 64

#endif
