//! Who holds the other end of a TCP connection on this machine: the kernel's socket table
//! (/proc/net/tcp and tcp6) names each socket's owner. A loopback client is a local
//! process, and its socket is listed with its own address as local and ours as remote.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The uid owning the client socket `peer` connected to `server`, as the table lists it
/// now; None when the connection is not listed (gone, or another network namespace).
pub fn tcp_peer_uid(server: SocketAddr, peer: SocketAddr) -> Option<u32> {
    let table = match peer.ip() {
        IpAddr::V4(_) => "/proc/net/tcp",
        IpAddr::V6(_) => "/proc/net/tcp6",
    };
    find_owner(&std::fs::read_to_string(table).ok()?, server, peer)
}

/// The `uid` column of the row whose local address is `peer` and remote is `server`.
pub fn find_owner(table: &str, server: SocketAddr, peer: SocketAddr) -> Option<u32> {
    table.lines().skip(1).find_map(|row| {
        let mut fields = row.split_whitespace();
        let local = parse_address(fields.nth(1)?)?;
        let remote = parse_address(fields.next()?)?;
        if local != peer || remote != server {
            return None;
        }
        // st, tx_queue:rx_queue, tr:tm->when, retrnsmt, then uid.
        fields.nth(4)?.parse().ok()
    })
}

/// `0100007F:1F40` (IPv4, the address's bytes as one host-order word) or 32 hex digits of
/// four host-order words (IPv6), a colon, the port in hex.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (address, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..address.len() / 8)
        .map(|i| u32::from_str_radix(address.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let ip = match words.as_slice() {
        [word] if address.len() == 8 => IpAddr::V4(Ipv4Addr::from(word.to_ne_bytes())),
        [a, b, c, d] if address.len() == 32 => {
            let mut bytes = [0u8; 16];
            for (i, word) in [a, b, c, d].into_iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_client_socket_of_a_loopback_connection() {
        // A server on 127.0.0.1:9464 (0x24F8), a client from port 40000 (0x9C40) owned by
        // uid 1000, and the server's own side of the connection, owned by root.
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:24F8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
           1: 0100007F:9C40 0100007F:24F8 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 20 4 30 10 -1\n\
           2: 0100007F:24F8 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1\n";
        let server: SocketAddr = "127.0.0.1:9464".parse().unwrap();
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(find_owner(table, server, peer), Some(1000));
            let stranger: SocketAddr = "127.0.0.1:40001".parse().unwrap();
            assert_eq!(find_owner(table, server, stranger), None);
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_real_connection_is_found_with_its_owner() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server_side, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        let me = unsafe { libc::getuid() };
        assert_eq!(tcp_peer_uid(listener.local_addr().unwrap(), peer), Some(me));
        let listener6 = match std::net::TcpListener::bind("[::1]:0") {
            Ok(listener) => listener,
            Err(_) => return, // a machine without IPv6 loopback
        };
        let _client6 = std::net::TcpStream::connect(listener6.local_addr().unwrap()).unwrap();
        let (_side6, peer6) = listener6.accept().unwrap();
        assert_eq!(
            tcp_peer_uid(listener6.local_addr().unwrap(), peer6),
            Some(me)
        );
    }
}
