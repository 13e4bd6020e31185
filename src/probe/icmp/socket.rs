//! The ICMP sockets of the engine: opened raw (CAP_NET_RAW) or as
//! unprivileged ping sockets, sent to and read from in batches
//! (`sendmmsg`, `recvmmsg`), with the kernel's software timestamps
//! (`SO_TIMESTAMPING`: receive times as control messages, send times
//! looped back on the error queue) and, on ping sockets, ICMP errors from
//! the error queue (`IP_RECVERR`/`IPV6_RECVERR`). The only unsafe code of
//! the engine is here: the libc calls and the control messages they fill.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

use super::packet;
use crate::probe::FailureReason;

/// Messages per `sendmmsg`/`recvmmsg` call at most.
pub const BATCH: usize = 64;
/// Bytes kept of each message read: the headers and the stamp are at the
/// front; the rest of a big echo is cut (the reply still counts).
const RECV_BYTES: usize = 1024;
/// Room for the control messages of one message (a timestamp and an
/// extended error with its offender).
const CMSG_WORDS: usize = 32;

// <asm-generic/socket.h>: SO_TIMESTAMPING_OLD. On 64-bit targets time_t
// is 64 bits wide, so the old option already carries 64-bit timespecs.
const SO_TIMESTAMPING: libc::c_int = 37;
const SCM_TIMESTAMPING: libc::c_int = SO_TIMESTAMPING;
// <linux/icmp.h>, <linux/icmpv6.h>
const ICMP_FILTER: libc::c_int = 1;
const ICMP6_FILTER: libc::c_int = 1;
// Kernel software timestamps, on send and on receive.
const TIMESTAMPING: libc::c_uint = libc::SOF_TIMESTAMPING_TX_SOFTWARE
    | libc::SOF_TIMESTAMPING_RX_SOFTWARE
    | libc::SOF_TIMESTAMPING_SOFTWARE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SOCK_RAW: we write the identifier; ICMP errors arrive in band.
    Raw,
    /// SOCK_DGRAM ping socket: the kernel owns the identifier; ICMP errors
    /// arrive on the error queue.
    Ping,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Raw => "raw",
            Kind::Ping => "ping (unprivileged)",
        }
    }
}

pub struct IcmpSocket {
    socket: Socket,
    pub family: Family,
    pub kind: Kind,
    /// The echo identifier written on a raw socket (a ping socket's is the
    /// kernel's, and it hands us only our own replies).
    pub ident: u16,
    /// Whether the kernel accepted `SO_TIMESTAMPING`.
    pub timestamps: bool,
}

/// What a socket has waiting, from the poll's readiness.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ready {
    /// The error queue (send timestamps, ICMP errors on ping sockets).
    pub errors: bool,
    /// The normal queue.
    pub packets: bool,
}

impl Ready {
    pub fn any(self) -> bool {
        self.errors || self.packets
    }
}

/// One echo request to send.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing {
    pub dst: IpAddr,
    pub seq: u16,
    pub stamp: u32,
    pub payload: u32,
}

/// What one message read from the socket said.
pub enum Incoming<'a> {
    /// An ICMP message from the normal queue (raw: any ICMP the filter
    /// lets through; ping: our echo replies), with the kernel's receive
    /// time.
    Packet {
        from: IpAddr,
        data: &'a [u8],
        rx_ns: Option<u64>,
    },
    /// A software send timestamp, with the packet it belongs to (link
    /// headers and all).
    Sent { data: &'a [u8], tx_ns: u64 },
    /// An ICMP error for one of our echoes (ping sockets): `dst` is the
    /// echo's destination, `data` the quoted echo from its ICMP header.
    Error {
        dst: IpAddr,
        offender: Option<IpAddr>,
        icmp_type: u8,
        code: u8,
        data: &'a [u8],
    },
}

/// The `mmsghdr`s and `iovec`s of one batch, kept between calls (zeroing
/// 5 KB of them per call showed in the idle profile).
struct Headers {
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
}

impl Headers {
    fn new() -> Self {
        Headers {
            // SAFETY: all-zero iovec/mmsghdr are valid (null pointers,
            // zero lengths).
            msgs: vec![unsafe { zeroed() }; BATCH],
            iovs: vec![unsafe { zeroed() }; BATCH],
        }
    }
}

// SAFETY: the raw pointers in the headers point into heap buffers owned
// by the same `RecvBufs`/`SendBufs` (or are set right before each call);
// only the kernel reads them, during a call on the thread that owns the
// buffers. They move between threads only together with those buffers.
unsafe impl Send for Headers {}

/// Buffers for `recvmmsg`, allocated once per engine; the headers point
/// into them from the start (heap memory, which never moves).
pub struct RecvBufs {
    data: Vec<[u8; RECV_BYTES]>,
    cmsg: Vec<[u64; CMSG_WORDS]>,
    names: Vec<libc::sockaddr_storage>,
    headers: Headers,
}

impl Default for RecvBufs {
    fn default() -> Self {
        let mut b = RecvBufs {
            data: vec![[0; RECV_BYTES]; BATCH],
            cmsg: vec![[0; CMSG_WORDS]; BATCH],
            // SAFETY: sockaddr_storage is plain old data; all zeros is valid.
            names: vec![unsafe { zeroed() }; BATCH],
            headers: Headers::new(),
        };
        let Headers { msgs, iovs } = &mut b.headers;
        for i in 0..BATCH {
            iovs[i].iov_base = b.data[i].as_mut_ptr().cast();
            iovs[i].iov_len = RECV_BYTES;
            let h = &mut msgs[i].msg_hdr;
            h.msg_name = (&mut b.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = b.cmsg[i].as_mut_ptr().cast();
        }
        b.reset(BATCH);
        b
    }
}

impl RecvBufs {
    /// Give the first `n` headers their full lengths back (the kernel
    /// shortens them to what it wrote).
    fn reset(&mut self, n: usize) {
        for m in &mut self.headers.msgs[..n] {
            m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            m.msg_hdr.msg_controllen = CMSG_WORDS * 8;
        }
    }
}

/// Buffers for `sendmmsg`: the packets of one batch back to back, their
/// addresses and headers.
pub struct SendBufs {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
    names: Vec<libc::sockaddr_storage>,
    headers: Headers,
}

impl Default for SendBufs {
    fn default() -> Self {
        SendBufs {
            bytes: Vec::new(),
            spans: Vec::new(),
            // SAFETY: sockaddr_storage is plain old data; all zeros is valid.
            names: vec![unsafe { zeroed() }; BATCH],
            headers: Headers::new(),
        }
    }
}

impl IcmpSocket {
    /// Open the family's socket: raw first (sees every ICMP error, needs
    /// CAP_NET_RAW), else a ping socket (net.ipv4.ping_group_range). Must
    /// be registered with the engine's poll for readability (errors are
    /// always reported).
    pub fn open(family: Family, ident: u16) -> Result<IcmpSocket, FailureReason> {
        let (domain, protocol) = match family {
            Family::V4 => (Domain::IPV4, Protocol::ICMPV4),
            Family::V6 => (Domain::IPV6, Protocol::ICMPV6),
        };
        let (socket, kind) = match Socket::new(domain, Type::RAW, Some(protocol)) {
            Ok(s) => (s, Kind::Raw),
            Err(raw) if raw.kind() == io::ErrorKind::PermissionDenied => {
                match Socket::new(domain, Type::DGRAM, Some(protocol)) {
                    Ok(s) => (s, Kind::Ping),
                    Err(e) => return Err(open_error(&e)),
                }
            }
            Err(e) => return Err(open_error(&e)),
        };
        socket.set_nonblocking(true).map_err(|e| open_error(&e))?;
        // Raw sockets see all of the host's ICMP: more room, and bigger
        // bursts (ignored above net.core.*mem_max, harmless).
        let _ = socket.set_recv_buffer_size(4 << 20);
        let _ = socket.set_send_buffer_size(1 << 20);
        let fd = socket.as_raw_fd();
        let timestamps = setsockopt(fd, libc::SOL_SOCKET, SO_TIMESTAMPING, TIMESTAMPING).is_ok();
        match (family, kind) {
            (Family::V4, Kind::Raw) => {
                // Let through only echo replies and the errors about echoes.
                let pass: u32 = (1 << 0) | (1 << 3) | (1 << 11) | (1 << 12);
                let _ = setsockopt(fd, libc::SOL_RAW, ICMP_FILTER, !pass);
            }
            (Family::V6, Kind::Raw) => {
                let mut block = [u32::MAX; 8];
                for t in [1u8, 3, 4, 129] {
                    block[usize::from(t >> 5)] &= !(1 << (t & 31));
                }
                let _ = setsockopt(fd, libc::IPPROTO_ICMPV6, ICMP6_FILTER, block);
            }
            (Family::V4, Kind::Ping) => {
                setsockopt(fd, libc::SOL_IP, libc::IP_RECVERR, 1 as libc::c_int)
                    .map_err(|e| open_error(&e))?;
            }
            (Family::V6, Kind::Ping) => {
                setsockopt(fd, libc::SOL_IPV6, libc::IPV6_RECVERR, 1 as libc::c_int)
                    .map_err(|e| open_error(&e))?;
            }
        }
        if family == Family::V4 {
            // Don't-fragment on every echo, path MTU ignored: the kernel
            // then leaves the IP ID at 0 instead of drawing one from its
            // shared, hashed ID generator per packet (a tenth of the send
            // path's kernel time at 10,000 targets). An echo is 84 bytes,
            // never fragmented on a real link; a "fragmentation needed"
            // answer would be an ICMP error, a failure with its reason.
            let _ = setsockopt(
                fd,
                libc::SOL_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_PROBE,
            );
        }
        Ok(IcmpSocket {
            socket,
            family,
            kind,
            ident,
            timestamps,
        })
    }

    /// The descriptor to register with the engine's poll.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }

    /// Read what the readiness says is waiting, the error queue first (a
    /// send timestamp is queued there before its reply can arrive), and
    /// hand each message to `f`. A queue counts as empty once a batch comes
    /// back short: anything arriving later raises a new edge (the poll is
    /// edge-triggered). Returns what is still to read after a bounded
    /// number of batches (so the timer and the other socket get their
    /// turn): the caller must come back without waiting for a new edge.
    pub fn drain(
        &self,
        mut ready: Ready,
        bufs: &mut RecvBufs,
        mut f: impl FnMut(Incoming<'_>),
    ) -> Ready {
        for _ in 0..16 {
            if ready.errors {
                ready.errors = self.recv_batch(bufs, true, &mut f) == BATCH;
            }
            if ready.packets {
                ready.packets = self.recv_batch(bufs, false, &mut f) == BATCH;
            }
            if !ready.any() {
                break;
            }
        }
        ready
    }

    /// One `recvmmsg`; the number of messages read (0 when the queue is
    /// empty or on an error, which is not the caller's to act on: a
    /// pending socket error here belongs to an ICMP error that is read
    /// from the error queue).
    fn recv_batch(
        &self,
        bufs: &mut RecvBufs,
        errqueue: bool,
        f: &mut impl FnMut(Incoming<'_>),
    ) -> usize {
        let flags = libc::MSG_DONTWAIT | if errqueue { libc::MSG_ERRQUEUE } else { 0 };
        let mut n = -1;
        // A pending socket error (left by an ICMP error, which is read
        // from the error queue) fails one call: the second reads.
        for _ in 0..2 {
            // SAFETY: the headers hold BATCH valid entries pointing into
            // `bufs` (see `RecvBufs::default`), which outlives the call and
            // is not touched until it returns.
            n = unsafe {
                libc::recvmmsg(
                    self.socket.as_raw_fd(),
                    bufs.headers.msgs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    flags,
                    std::ptr::null_mut(),
                )
            };
            if n >= 0 || io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock {
                break;
            }
        }
        if n <= 0 {
            return 0;
        }
        let n = n as usize;
        for (i, m) in bufs.headers.msgs.iter().enumerate().take(n) {
            let len = (m.msg_len as usize).min(RECV_BYTES);
            let data = &bufs.data[i][..len];
            let name = sockaddr_ip(&bufs.names[i], m.msg_hdr.msg_namelen);
            let cm = read_cmsgs(&m.msg_hdr);
            if !errqueue {
                if let Some(from) = name {
                    f(Incoming::Packet {
                        from,
                        data,
                        rx_ns: cm.timestamp,
                    });
                }
                continue;
            }
            let Some(ee) = cm.error else { continue };
            match ee.origin {
                libc::SO_EE_ORIGIN_TIMESTAMPING => {
                    if let Some(tx_ns) = cm.timestamp {
                        f(Incoming::Sent { data, tx_ns });
                    }
                }
                libc::SO_EE_ORIGIN_ICMP | libc::SO_EE_ORIGIN_ICMP6 => {
                    if let Some(dst) = name {
                        f(Incoming::Error {
                            dst,
                            offender: ee.offender,
                            icmp_type: ee.icmp_type,
                            code: ee.code,
                            data,
                        });
                    }
                }
                _ => {}
            }
        }
        bufs.reset(n);
        n
    }

    /// Send `batch` with as few `sendmmsg` calls as errors allow; `done`
    /// hears of each echo: `Ok` when the kernel took it, or the error.
    /// Returns how many were handled: fewer than `batch.len()` when the
    /// socket's buffer is full (the engine tries the rest again a moment later).
    pub fn send(
        &self,
        batch: &[Outgoing],
        bufs: &mut SendBufs,
        mut done: impl FnMut(&Outgoing, io::Result<()>),
    ) -> usize {
        let mut handled = 0;
        while handled < batch.len() {
            let chunk = &batch[handled..batch.len().min(handled + BATCH)];
            bufs.bytes.clear();
            bufs.spans.clear();
            for o in chunk {
                let start = bufs.bytes.len();
                packet::write_echo(&mut bufs.bytes, self.family, self.ident, o);
                bufs.spans.push((start, bufs.bytes.len() - start));
            }
            // The chunk's headers (the rest of each, control message and
            // flags, stays zero from `Headers::new`).
            let names = &mut bufs.names;
            let Headers { msgs, iovs } = &mut bufs.headers;
            for (i, o) in chunk.iter().enumerate() {
                let (start, len) = bufs.spans[i];
                iovs[i].iov_base = bufs.bytes[start..].as_mut_ptr().cast();
                iovs[i].iov_len = len;
                let namelen = write_sockaddr(&mut names[i], o.dst);
                let h = &mut msgs[i].msg_hdr;
                h.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = namelen;
                h.msg_iov = &mut iovs[i];
                h.msg_iovlen = 1;
            }
            let mut at = 0;
            while at < chunk.len() {
                // SAFETY: msgs[at..chunk.len()] are valid headers whose
                // pointers go into `bufs.bytes` and `bufs.names`, both
                // alive and unchanged during the call.
                let n = unsafe {
                    libc::sendmmsg(
                        self.socket.as_raw_fd(),
                        msgs[at..].as_mut_ptr(),
                        (chunk.len() - at) as libc::c_uint,
                        libc::MSG_DONTWAIT,
                    )
                };
                if n > 0 {
                    for o in &chunk[at..at + n as usize] {
                        done(o, Ok(()));
                    }
                    at += n as usize;
                    continue;
                }
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    return handled + at;
                }
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first message failed. An unreachable error may be a
                // socket error left by another echo's ICMP error (the
                // kernel hands it to the next call, whichever it is): one
                // retry tells the two apart.
                let retry = matches!(
                    e.raw_os_error(),
                    Some(libc::EHOSTUNREACH | libc::ENETUNREACH | libc::ECONNREFUSED)
                );
                if retry {
                    // SAFETY: as above, one message.
                    let again = unsafe {
                        libc::sendmmsg(
                            self.socket.as_raw_fd(),
                            msgs[at..].as_mut_ptr(),
                            1,
                            libc::MSG_DONTWAIT,
                        )
                    };
                    if again == 1 {
                        done(&chunk[at], Ok(()));
                        at += 1;
                        continue;
                    }
                    let e2 = io::Error::last_os_error();
                    if e2.kind() == io::ErrorKind::WouldBlock {
                        return handled + at;
                    }
                    done(&chunk[at], Err(e2));
                } else {
                    done(&chunk[at], Err(e));
                }
                at += 1;
            }
            handled += chunk.len();
        }
        handled
    }
}

fn open_error(e: &io::Error) -> FailureReason {
    match e.kind() {
        io::ErrorKind::PermissionDenied => FailureReason::Permission,
        _ if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => FailureReason::FamilyUnavailable,
        _ if matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        ) =>
        {
            FailureReason::NoSocket {
                message: e.to_string(),
            }
        }
        _ => FailureReason::SendError {
            message: e.to_string(),
        },
    }
}

fn setsockopt<T>(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: T,
) -> io::Result<()> {
    // SAFETY: `value` is a live, plain-data value of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn write_sockaddr(out: &mut libc::sockaddr_storage, ip: IpAddr) -> libc::socklen_t {
    match ip {
        IpAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any
            // sockaddr.
            let sin =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = 0;
            sin.sin_zero = [0; 8];
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.octets()),
            };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        IpAddr::V6(a) => {
            // SAFETY: as above.
            let sin6 =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = 0;
            sin6.sin6_flowinfo = 0;
            sin6.sin6_scope_id = 0;
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.octets(),
            };
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

fn sockaddr_ip(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<IpAddr> {
    sockaddr_at((s as *const libc::sockaddr_storage).cast(), len as usize)
}

/// An address from a `sockaddr` of `len` bytes at `p`.
fn sockaddr_at(p: *const u8, len: usize) -> Option<IpAddr> {
    if len < size_of::<libc::sa_family_t>() {
        return None;
    }
    // SAFETY: `p` points at `len` readable bytes (checked per variant);
    // read_unaligned makes no alignment assumption.
    unsafe {
        let family = std::ptr::read_unaligned(p.cast::<libc::sa_family_t>());
        match libc::c_int::from(family) {
            libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
                let sin = std::ptr::read_unaligned(p.cast::<libc::sockaddr_in>());
                Some(IpAddr::V4(Ipv4Addr::from(
                    sin.sin_addr.s_addr.to_ne_bytes(),
                )))
            }
            libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
                let sin6 = std::ptr::read_unaligned(p.cast::<libc::sockaddr_in6>());
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

struct ExtErr {
    origin: u8,
    icmp_type: u8,
    code: u8,
    offender: Option<IpAddr>,
}

#[derive(Default)]
struct Cmsgs {
    timestamp: Option<u64>,
    error: Option<ExtErr>,
}

/// The control messages we asked for: the software timestamp (the first
/// of `scm_timestamping`'s three) and an extended error with its offender.
fn read_cmsgs(h: &libc::msghdr) -> Cmsgs {
    let mut out = Cmsgs::default();
    // SAFETY: `h` was filled by the kernel: its control buffer holds
    // `msg_controllen` bytes of well-formed cmsgs, walked with libc's own
    // macros; data is read unaligned and only within each cmsg_len.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            let level = (*c).cmsg_level;
            let ty = (*c).cmsg_type;
            let data = libc::CMSG_DATA(c);
            let room = (*c).cmsg_len as usize - (data as usize - c as usize);
            if level == libc::SOL_SOCKET
                && ty == SCM_TIMESTAMPING
                && room >= size_of::<libc::timespec>()
            {
                let ts = std::ptr::read_unaligned(data.cast::<libc::timespec>());
                if ts.tv_sec > 0 {
                    out.timestamp = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
                }
            } else if ((level == libc::SOL_IP && ty == libc::IP_RECVERR)
                || (level == libc::SOL_IPV6 && ty == libc::IPV6_RECVERR))
                && room >= size_of::<libc::sock_extended_err>()
            {
                let ee = std::ptr::read_unaligned(data.cast::<libc::sock_extended_err>());
                let after = size_of::<libc::sock_extended_err>();
                // SO_EE_OFFENDER: the sockaddr right after the struct.
                let offender = sockaddr_at(data.add(after), room - after);
                out.error = Some(ExtErr {
                    origin: ee.ee_origin,
                    icmp_type: ee.ee_type,
                    code: ee.ee_code,
                    offender,
                });
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    out
}
