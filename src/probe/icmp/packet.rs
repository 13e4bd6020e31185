//! ICMP echo packets: written into the send buffer, and what comes back
//! (replies, errors quoting an echo, send timestamps with the packet
//! looped back) read down to the (address, sequence) the engine keys its
//! pending echoes by.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::socket::{Family, Kind, Outgoing};

const V4_ECHO_REQUEST: u8 = 8;
const V4_ECHO_REPLY: u8 = 0;
const V6_ECHO_REQUEST: u8 = 128;
const V6_ECHO_REPLY: u8 = 129;

/// Bytes of the payload that carry the echo's stamp (checked on replies so
/// a very late reply never matches a newer echo that reuses its sequence).
pub const STAMP_BYTES: u32 = 4;

/// Append an echo request (ICMP header and payload) to `buf`. The checksum
/// is ours on raw IPv4 sockets; the kernel writes it on ICMPv6 and on ping
/// sockets (which also overwrite the identifier).
pub fn write_echo(buf: &mut Vec<u8>, family: Family, ident: u16, o: &Outgoing) {
    let start = buf.len();
    let ty = match family {
        Family::V4 => V4_ECHO_REQUEST,
        Family::V6 => V6_ECHO_REQUEST,
    };
    buf.extend_from_slice(&[ty, 0, 0, 0]);
    buf.extend_from_slice(&ident.to_be_bytes());
    buf.extend_from_slice(&o.seq.to_be_bytes());
    let payload = o.payload as usize;
    let stamp = o.stamp.to_be_bytes();
    // The stamp, then the pattern ping(8) uses.
    buf.extend((0..payload).map(|i| if i < 4 { stamp[i] } else { (i % 256) as u8 }));
    if family == Family::V4 {
        let sum = checksum(&buf[start..]);
        buf[start + 2..start + 4].copy_from_slice(&sum.to_be_bytes());
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What a packet from the normal queue is to us.
#[derive(Debug, PartialEq)]
pub enum Read {
    /// An echo reply: its sequence, and the stamp when the payload has one.
    Reply { seq: u16, stamp: Option<u32> },
    /// An ICMP error quoting one of our echoes (raw sockets).
    Error {
        dst: IpAddr,
        seq: u16,
        icmp_type: u8,
        code: u8,
    },
}

/// Read a packet from the normal queue. Raw IPv4 sockets hand over the IP
/// header too; ICMPv6 and ping sockets start at the ICMP header.
pub fn read(family: Family, kind: Kind, ident: u16, data: &[u8]) -> Option<Read> {
    let icmp = match (family, kind) {
        (Family::V4, Kind::Raw) => data.get(ip4_header_len(data)?..)?,
        _ => data,
    };
    let (&ty, &code) = (icmp.first()?, icmp.get(1)?);
    let reply = match family {
        Family::V4 => V4_ECHO_REPLY,
        Family::V6 => V6_ECHO_REPLY,
    };
    if ty == reply {
        if kind == Kind::Raw && be16(icmp, 4)? != ident {
            return None; // someone else's ping
        }
        let stamp = icmp
            .get(8..12)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
        return Some(Read::Reply {
            seq: be16(icmp, 6)?,
            stamp,
        });
    }
    if kind != Kind::Raw {
        return None;
    }
    // An error: 8 bytes of ICMP header, then the packet it is about.
    let quoted = icmp.get(8..)?;
    let (dst, echo) = match family {
        Family::V4 => {
            if !matches!(ty, 3 | 11 | 12) {
                return None;
            }
            let hl = ip4_header_len(quoted)?;
            if *quoted.get(9)? != 1 {
                return None;
            }
            (IpAddr::V4(ip4_at(quoted, 16)?), quoted.get(hl..)?)
        }
        Family::V6 => {
            if !matches!(ty, 1 | 3 | 4) || *quoted.get(6)? != 58 {
                return None;
            }
            (IpAddr::V6(ip6_at(quoted, 24)?), quoted.get(40..)?)
        }
    };
    let request = match family {
        Family::V4 => V4_ECHO_REQUEST,
        Family::V6 => V6_ECHO_REQUEST,
    };
    if *echo.first()? != request || be16(echo, 4)? != ident {
        return None;
    }
    Some(Read::Error {
        dst,
        seq: be16(echo, 6)?,
        icmp_type: ty,
        code,
    })
}

/// The sequence of the echo an ICMP error from the error queue quotes
/// (the data starts at the quoted ICMP header).
pub fn quoted_seq(family: Family, data: &[u8]) -> Option<u16> {
    let request = match family {
        Family::V4 => V4_ECHO_REQUEST,
        Family::V6 => V6_ECHO_REQUEST,
    };
    (*data.first()? == request).then_some(())?;
    be16(data, 6)
}

/// The destination and sequence of a packet looped back with its send
/// timestamp. It comes with whatever link header the device put in front
/// (Ethernet on veth and loopback, none on a tunnel), so the IP header is
/// looked for at the usual offsets and accepted only if it is ours.
pub fn sent_echo(family: Family, data: &[u8]) -> Option<(IpAddr, u16)> {
    const LINK_HEADERS: [usize; 5] = [14, 0, 18, 16, 4];
    LINK_HEADERS
        .iter()
        .find_map(|&at| sent_echo_at(family, data.get(at..)?))
}

fn sent_echo_at(family: Family, ip: &[u8]) -> Option<(IpAddr, u16)> {
    match family {
        Family::V4 => {
            let hl = ip4_header_len(ip)?;
            if *ip.get(9)? != 1 {
                return None;
            }
            let echo = ip.get(hl..)?;
            (*echo.first()? == V4_ECHO_REQUEST).then_some(())?;
            Some((IpAddr::V4(ip4_at(ip, 16)?), be16(echo, 6)?))
        }
        Family::V6 => {
            if ip.first()? >> 4 != 6 || *ip.get(6)? != 58 {
                return None;
            }
            let echo = ip.get(40..)?;
            (*echo.first()? == V6_ECHO_REQUEST).then_some(())?;
            Some((IpAddr::V6(ip6_at(ip, 24)?), be16(echo, 6)?))
        }
    }
}

fn ip4_header_len(ip: &[u8]) -> Option<usize> {
    let b = *ip.first()?;
    let hl = usize::from(b & 0x0f) * 4;
    (b >> 4 == 4 && hl >= 20 && ip.len() >= hl).then_some(hl)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn ip4_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(s))
}

fn ip6_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let s: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(family: Family, seq: u16, payload: u32) -> Vec<u8> {
        let mut b = Vec::new();
        let o = Outgoing {
            dst: IpAddr::from([198, 51, 100, 1]),
            seq,
            stamp: 0xdead_beef,
            payload,
        };
        write_echo(&mut b, family, 0x1234, &o);
        b
    }

    fn ip4(src: [u8; 4], dst: [u8; 4], body: &[u8]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn an_echo_checksums_to_zero_and_carries_its_stamp() {
        let e = echo(Family::V4, 7, 56);
        assert_eq!(e.len(), 64);
        assert_eq!(checksum(&e), 0);
        assert_eq!(&e[8..12], &0xdead_beef_u32.to_be_bytes());
        let odd = echo(Family::V4, 7, 3);
        assert_eq!(checksum(&odd), 0);
    }

    #[test]
    fn replies_are_read_with_their_stamp_and_others_pings_ignored() {
        let mut reply = echo(Family::V4, 9, 56);
        reply[0] = V4_ECHO_REPLY;
        let raw = ip4([198, 51, 100, 1], [198, 51, 100, 254], &reply);
        assert_eq!(
            read(Family::V4, Kind::Raw, 0x1234, &raw),
            Some(Read::Reply {
                seq: 9,
                stamp: Some(0xdead_beef)
            })
        );
        assert_eq!(read(Family::V4, Kind::Raw, 0x9999, &raw), None);
        // A ping socket gives the ICMP header only, with the kernel's id.
        assert!(matches!(
            read(Family::V4, Kind::Ping, 0, &reply),
            Some(Read::Reply { seq: 9, .. })
        ));
        // A request (our own, to ourselves) is not a reply.
        let req = ip4([127, 0, 0, 1], [127, 0, 0, 1], &echo(Family::V4, 9, 56));
        assert_eq!(read(Family::V4, Kind::Raw, 0x1234, &req), None);
    }

    #[test]
    fn an_error_quoting_our_echo_names_its_destination() {
        let quoted = ip4(
            [198, 51, 100, 254],
            [203, 0, 113, 10],
            &echo(Family::V4, 5, 56)[..8],
        );
        let mut err = vec![3, 1, 0, 0, 0, 0, 0, 0];
        err.extend_from_slice(&quoted);
        let raw = ip4([198, 51, 100, 1], [198, 51, 100, 254], &err);
        assert_eq!(
            read(Family::V4, Kind::Raw, 0x1234, &raw),
            Some(Read::Error {
                dst: IpAddr::from([203, 0, 113, 10]),
                seq: 5,
                icmp_type: 3,
                code: 1
            })
        );
        assert_eq!(read(Family::V4, Kind::Raw, 0x4321, &raw), None);
    }

    #[test]
    fn a_looped_packet_is_found_behind_any_usual_link_header() {
        let pkt = ip4(
            [198, 51, 100, 254],
            [198, 51, 100, 1],
            &echo(Family::V4, 11, 56),
        );
        let want = Some((IpAddr::from([198, 51, 100, 1]), 11));
        assert_eq!(sent_echo(Family::V4, &pkt), want);
        let mut eth = vec![0u8; 14];
        eth.extend_from_slice(&pkt);
        assert_eq!(sent_echo(Family::V4, &eth), want);
        // Cut short (a big echo read into a small buffer): still found.
        assert_eq!(sent_echo(Family::V4, &eth[..14 + 28]), want);
        assert_eq!(sent_echo(Family::V4, &eth[..20]), None);
    }

    #[test]
    fn ipv6_looped_packets_and_quoted_errors() {
        let mut v6 = vec![0x60, 0, 0, 0, 0, 64, 58, 64];
        v6.extend_from_slice(&[
            0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe,
        ]);
        v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v6.extend_from_slice(&echo(Family::V6, 3, 16));
        let mut eth = vec![0u8; 14];
        eth.extend_from_slice(&v6);
        let (dst, seq) = sent_echo(Family::V6, &eth).unwrap();
        assert_eq!(dst, "2001:db8:1::1".parse::<IpAddr>().unwrap());
        assert_eq!(seq, 3);
        let mut err = vec![1, 3, 0, 0, 0, 0, 0, 0];
        err.extend_from_slice(&v6);
        assert!(matches!(
            read(Family::V6, Kind::Raw, 0x1234, &err),
            Some(Read::Error {
                seq: 3,
                icmp_type: 1,
                code: 3,
                ..
            })
        ));
        assert_eq!(quoted_seq(Family::V6, &echo(Family::V6, 3, 16)), Some(3));
    }
}
