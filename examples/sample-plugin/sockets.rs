//! The kernel's count of a server's TCP connections, taken the way `ss` takes it: one
//! NETLINK_SOCK_DIAG dump of the established sockets. Reading /proc/net/tcp instead
//! takes a page per read, and the kernel walks its table again between reads: while
//! connections close and open, one pass counts a closed connection and its successor
//! both, so its figure ran up to an eighth above the real one. A dump fills one buffer
//! of up to 32 KiB per batch (about 370 sockets) in one pass.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const TCP_ESTABLISHED: u32 = 1;
/// `struct nlmsghdr`, then `struct inet_diag_req_v2` (family, protocol, extensions,
/// padding, states, and a 48-byte socket id left zero: every socket).
const HEADER: usize = 16;
const REQUEST: usize = HEADER + 8 + 48;

/// A netlink socket kept open between counts: the kernel sizes a dump's batches by the
/// largest read the socket has seen, so the first batch of later dumps is full size.
pub struct Counter {
    socket: OwnedFd,
    buffer: Vec<u8>,
}

impl Counter {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain system call; the descriptor is owned right after.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: `fd` is a new descriptor nobody else owns.
            socket: unsafe { OwnedFd::from_raw_fd(fd) },
            buffer: vec![0; 64 * 1024],
        })
    }

    /// Established connections whose local port is `port` and whose peer is not on
    /// loopback (the server's own `/stats` calls come from there).
    pub fn established_from_elsewhere(&mut self, port: u16) -> io::Result<u64> {
        self.established(port, |family, peer| !is_loopback(family, peer))
    }

    /// Established connections whose local port is `port` and whose peer `counted`
    /// accepts (given the address family and the peer's 16 address bytes).
    fn established(&mut self, port: u16, counted: fn(i32, &[u8]) -> bool) -> io::Result<u64> {
        let mut count = 0;
        for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
            self.send_dump_request(family)?;
            count += self.count_replies(port, counted)?;
        }
        Ok(count)
    }

    fn send_dump_request(&self, family: u8) -> io::Result<()> {
        let mut request = [0u8; REQUEST];
        request[0..4].copy_from_slice(&(REQUEST as u32).to_ne_bytes());
        request[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        request[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        request[HEADER] = family;
        request[HEADER + 1] = libc::IPPROTO_TCP as u8;
        request[HEADER + 4..HEADER + 8].copy_from_slice(&(1u32 << TCP_ESTABLISHED).to_ne_bytes());
        // SAFETY: the buffer outlives the call; the kernel's address is the default.
        let sent = unsafe {
            libc::send(
                self.socket.as_raw_fd(),
                request.as_ptr().cast(),
                request.len(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn count_replies(&mut self, port: u16, counted: fn(i32, &[u8]) -> bool) -> io::Result<u64> {
        let mut count = 0;
        loop {
            // SAFETY: the buffer is valid for its length and outlives the call.
            let read = unsafe {
                libc::recv(
                    self.socket.as_raw_fd(),
                    self.buffer.as_mut_ptr().cast(),
                    self.buffer.len(),
                    0,
                )
            };
            if read < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut batch = &self.buffer[..read as usize];
            while batch.len() >= HEADER {
                let length = u32::from_ne_bytes(batch[0..4].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes(batch[4..6].try_into().unwrap());
                if length < HEADER || length > batch.len() {
                    return Err(io::Error::other("a malformed netlink message"));
                }
                match kind {
                    NLMSG_DONE => return Ok(count),
                    NLMSG_ERROR => return Err(io::Error::other("the socket dump failed")),
                    _ => count += u64::from(matches(&batch[HEADER..length], port, counted)),
                }
                batch = &batch[align(length).min(batch.len())..];
            }
        }
    }
}

/// Whether one `struct inet_diag_msg` is a connection to `port` whose peer `counted`
/// accepts: family, state, timer, retransmits, then the id (source port, destination
/// port, both big-endian; source and destination address, 16 bytes each).
fn matches(message: &[u8], port: u16, counted: fn(i32, &[u8]) -> bool) -> bool {
    if message.len() < 40 {
        return false;
    }
    let family = i32::from(message[0]);
    let local_port = u16::from_be_bytes([message[4], message[5]]);
    local_port == port && counted(family, &message[24..40])
}

fn is_loopback(family: i32, address: &[u8]) -> bool {
    if family == libc::AF_INET {
        return address[0] == 127;
    }
    let v6: [u8; 16] = address.try_into().unwrap();
    let v6 = std::net::Ipv6Addr::from(v6);
    v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
}

fn align(length: usize) -> usize {
    (length + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn loopback_peers_are_told_apart() {
        let mut v4 = [0u8; 16];
        v4[0] = 127;
        assert!(is_loopback(libc::AF_INET, &v4));
        v4[0] = 10;
        assert!(!is_loopback(libc::AF_INET, &v4));
        let mapped = std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped().octets();
        assert!(is_loopback(libc::AF_INET6, &mapped));
        let elsewhere = "fd00::7".parse::<std::net::Ipv6Addr>().unwrap().octets();
        assert!(!is_loopback(libc::AF_INET6, &elsewhere));
    }

    #[test]
    fn the_dump_counts_the_servers_end_of_each_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let clients: Vec<_> = (0..3)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        let servers: Vec<_> = (0..3).map(|_| listener.accept().unwrap()).collect();
        let mut counter = Counter::new().unwrap();
        assert_eq!(counter.established(port, |_, _| true).unwrap(), 3);
        assert_eq!(counter.established_from_elsewhere(port).unwrap(), 0);
        drop((clients, servers));
    }
}
