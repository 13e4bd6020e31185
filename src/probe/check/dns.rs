//! DNS: one question to the target (a DNS server) over UDP or TCP,
//! hickory's messages on a socket of our own; the answer judged by its
//! response code and records.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use super::Progress;
use crate::inventory::checks::DnsCheck;
use crate::model::check::quote;
use crate::model::CheckProblem;

/// A response code as DNS operators write it (`NOERROR`, `NXDOMAIN`,
/// `SERVFAIL`…).
pub fn rcode_name(code: hickory_proto::op::ResponseCode) -> String {
    format!("{code:?}").to_uppercase()
}

/// Every response code a check may expect, by name.
pub fn rcode_names() -> Vec<String> {
    (0u16..=10)
        .map(|c| rcode_name(hickory_proto::op::ResponseCode::from_low(c as u8)))
        .collect()
}

/// Whether `t` names a record type hickory knows.
pub fn valid_record_type(t: &str) -> bool {
    !matches!(
        RecordType::from_str(&t.to_ascii_uppercase()),
        Err(_) | Ok(RecordType::Unknown(_))
    )
}

/// Whether `n` is a name a query can ask for.
pub fn valid_name(n: &str) -> bool {
    Name::from_ascii(n).is_ok()
}

/// Why a question got no answer.
enum Failure {
    /// The socket failed (refused, unreachable, out of descriptors).
    Io(std::io::Error),
    /// The exchange broke: a message that would not encode, a TCP
    /// answer that would not decode, the server closing early.
    Exchange(String),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

async fn ask(
    server: SocketAddr,
    c: &DnsCheck,
    name: Name,
    rtype: RecordType,
) -> Result<Message, Failure> {
    let q = Question::new(name, rtype)?;
    if !c.tcp {
        match ask_udp(server, &q).await? {
            // Truncated: asked again over TCP, as a resolver would.
            m if m.metadata.truncation => {}
            m => return Ok(m),
        }
    }
    ask_tcp(server, &q).await
}

/// One question: what was asked, its id, and its bytes (hickory encodes
/// them).
struct Question {
    name: Name,
    rtype: RecordType,
    id: u16,
    bytes: Vec<u8>,
}

impl Question {
    fn new(name: Name, rtype: RecordType) -> Result<Self, Failure> {
        let id: u16 = rand::random();
        let mut query = Message::new(id, MessageType::Query, OpCode::Query);
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(name.clone(), rtype));
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        query.set_edns(edns);
        let bytes = query
            .to_vec()
            .map_err(|e| Failure::Exchange(e.to_string()))?;
        Ok(Question {
            name,
            rtype,
            id,
            bytes,
        })
    }

    /// Whether `answer` answers this question: its id, a response, and
    /// the question it repeats (if any) this one.
    fn answered_by(&self, answer: &Message) -> bool {
        answer.metadata.id == self.id
            && answer.metadata.message_type == MessageType::Response
            && answer
                .queries
                .first()
                .is_none_or(|q| same_name(q.name(), &self.name) && q.query_type() == self.rtype)
    }
}

/// The same name, whatever the case and the root's dot.
fn same_name(a: &Name, b: &Name) -> bool {
    let text = |n: &Name| n.to_ascii().trim_end_matches('.').to_ascii_lowercase();
    text(a) == text(b)
}

/// One question over UDP on a socket of its own: hickory encodes and
/// decodes the messages; one datagram out, the first answer to it back.
/// (A client multiplexing many queries over a stream with a task in the
/// background is more than one question a check needs, and cost about a
/// third of a check's CPU.)
async fn ask_udp(server: SocketAddr, q: &Question) -> Result<Message, Failure> {
    let local: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(&q.bytes).await?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).await?;
        // Anything else (a late answer, garbage) is not ours: wait on
        // (the check's timeout bounds the wait).
        let Ok(answer) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if q.answered_by(&answer) {
            return Ok(answer);
        }
    }
}

/// One question over TCP: each message behind its two-byte length
/// (RFC 1035 4.2.2, RFC 7766); the server's first answer to it back.
async fn ask_tcp(server: SocketAddr, q: &Question) -> Result<Message, Failure> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let len = u16::try_from(q.bytes.len())
        .map_err(|_| Failure::Exchange("the question is too long".into()))?;
    let mut stream = tokio::net::TcpStream::connect(server).await?;
    let _ = stream.set_nodelay(true);
    let mut framed = Vec::with_capacity(q.bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&q.bytes);
    stream.write_all(&framed).await?;
    let closed = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            Failure::Exchange("the server closed the connection".into())
        }
        _ => Failure::Io(e),
    };
    loop {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.map_err(closed)?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await.map_err(closed)?;
        let answer = Message::from_vec(&buf).map_err(|e| Failure::Exchange(e.to_string()))?;
        if q.answered_by(&answer) {
            return Ok(answer);
        }
    }
}

pub(super) async fn run(p: &mut Progress, ip: IpAddr, c: &DnsCheck) {
    let (Ok(name), Ok(rtype)) = (
        Name::from_ascii(&c.name),
        RecordType::from_str(&c.record_type.to_ascii_uppercase()),
    ) else {
        // Validated at load.
        p.problem(CheckProblem::Protocol {
            error: "invalid name or record type".into(),
        });
        return;
    };
    p.begin("query");
    let answer = ask(SocketAddr::new(ip, c.port), c, name, rtype).await;
    p.end();
    let response = match answer {
        Ok(r) => r,
        Err(Failure::Io(e)) => {
            super::socket_error(p, &e);
            return;
        }
        Err(Failure::Exchange(e)) => {
            p.problem(CheckProblem::Connect { error: quote(&e) });
            return;
        }
    };
    let answers = &response.answers;
    p.dns_answers = Some(answers.len() as u32);
    let rcode = rcode_name(response.metadata.response_code);
    if !c.rcodes.contains(&rcode) {
        p.problem(CheckProblem::DnsRcode {
            got: rcode,
            expected: c.rcodes.join(" or "),
        });
        return;
    }
    let texts: Vec<String> = answers.iter().map(|r| r.data.to_string()).collect();
    if c.require_answer && texts.is_empty() {
        p.problem(CheckProblem::DnsAnswer {
            expected: ".+".into(),
            got: "no records".into(),
        });
    }
    if let Some(re) = &c.answer {
        if !texts.iter().any(|t| re.0.is_match(t)) {
            p.problem(CheckProblem::DnsAnswer {
                expected: re.0.as_str().to_string(),
                got: if texts.is_empty() {
                    "no records".into()
                } else {
                    quote(&texts.join(", "))
                },
            });
        }
    }
}
