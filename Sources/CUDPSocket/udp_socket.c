#define _GNU_SOURCE
#include "rtcam_udp_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103  /* linux/udp.h, for headers older than the running kernel */
#endif

static int configure(int fd, int receive_buffer_bytes, int send_buffer_bytes) {
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) return -1;
    /* Buffer sizes are wishes: the kernel caps them at net.core.[rw]mem_max without an error. */
    if (receive_buffer_bytes > 0
        && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes, sizeof receive_buffer_bytes) != 0) return -1;
    if (send_buffer_bytes > 0
        && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send_buffer_bytes, sizeof send_buffer_bytes) != 0) return -1;
    return 0;
}

static int fail_closing(int fd) {
    int error = errno;
    close(fd);
    return -error;
}

int rtcam_udp_bind_ipv4(uint16_t port, int receive_buffer_bytes, int send_buffer_bytes) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (configure(fd, receive_buffer_bytes, send_buffer_bytes) != 0) return fail_closing(fd);
    struct sockaddr_in any;
    memset(&any, 0, sizeof any);
    any.sin_family = AF_INET;
    any.sin_port = htons(port);
    any.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (const struct sockaddr *)&any, sizeof any) != 0) return fail_closing(fd);
    return fd;
}

int rtcam_udp_bind_dual_stack(uint16_t port, int receive_buffer_bytes, int send_buffer_bytes) {
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    /* Explicitly off: net.ipv6.bindv6only=1 would otherwise make this socket deaf to IPv4. */
    int zero = 0;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0) return fail_closing(fd);
    if (configure(fd, receive_buffer_bytes, send_buffer_bytes) != 0) return fail_closing(fd);
    struct sockaddr_in6 any;
    memset(&any, 0, sizeof any);
    any.sin6_family = AF_INET6;
    any.sin6_port = htons(port);
    any.sin6_addr = in6addr_any;
    if (bind(fd, (const struct sockaddr *)&any, sizeof any) != 0) return fail_closing(fd);
    return fd;
}

ssize_t rtcam_udp_send(int fd, const struct sockaddr *address, socklen_t address_length,
                       const struct iovec *iov, int iov_count, uint16_t segment_size) {
    union {
        char bytes[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_name = (void *)address;
    message.msg_namelen = address_length;
    message.msg_iov = (struct iovec *)iov;
    message.msg_iovlen = (size_t)iov_count;
    if (segment_size > 0) {
        memset(&control, 0, sizeof control);
        message.msg_control = control.bytes;
        message.msg_controllen = sizeof control.bytes;
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_UDP;
        header->cmsg_type = UDP_SEGMENT;
        header->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        memcpy(CMSG_DATA(header), &segment_size, sizeof segment_size);
    }
    ssize_t sent = sendmsg(fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    return sent < 0 ? -errno : sent;
}

int rtcam_udp_send_each(int fd, const struct sockaddr *address, socklen_t address_length,
                        const struct iovec *datagrams, int count) {
    if (count <= 0) return 0;
    if (count > RTCAM_UDP_MAX_BATCH) count = RTCAM_UDP_MAX_BATCH;
    struct mmsghdr messages[RTCAM_UDP_MAX_BATCH];
    memset(messages, 0, sizeof(struct mmsghdr) * (size_t)count);
    for (int index = 0; index < count; index++) {
        messages[index].msg_hdr.msg_name = (void *)address;
        messages[index].msg_hdr.msg_namelen = address_length;
        messages[index].msg_hdr.msg_iov = (struct iovec *)&datagrams[index];
        messages[index].msg_hdr.msg_iovlen = 1;
    }
    int sent = sendmmsg(fd, messages, (unsigned int)count, MSG_DONTWAIT | MSG_NOSIGNAL);
    return sent < 0 ? -errno : sent;
}
