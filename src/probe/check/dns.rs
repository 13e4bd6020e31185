//! DNS: one question to the target (a DNS server) over UDP (hickory's
//! messages on a socket of our own) or TCP (hickory's client); the
//! answer judged by its response code and records.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_client::client::{Client, ClientHandle};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::runtime::TokioRuntimeProvider;
use hickory_proto::tcp::TcpClientStream;
use hickory_proto::xfer::DnsResponse;
use hickory_proto::ProtoError;

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

async fn ask(
    server: SocketAddr,
    c: &DnsCheck,
    timeout: Duration,
    name: Name,
    rtype: RecordType,
) -> Result<Message, ProtoError> {
    if !c.tcp {
        match ask_udp(server, name.clone(), rtype).await? {
            // Truncated: asked again over TCP, as a resolver would.
            m if m.truncated() => {}
            m => return Ok(m),
        }
    }
    let provider = TokioRuntimeProvider::default();
    let (stream, sender) = TcpClientStream::new(server, None, Some(timeout), provider);
    let (client, background) = Client::with_timeout(stream, sender, timeout, None).await?;
    drive(client, background, name, rtype)
        .await
        .map(Message::from)
}

/// The same name, whatever the case and the root's dot.
fn same_name(a: &Name, b: &Name) -> bool {
    let text = |n: &Name| n.to_ascii().trim_end_matches('.').to_ascii_lowercase();
    text(a) == text(b)
}

/// One question over UDP on a socket of its own: hickory encodes and
/// decodes the messages; one datagram out, the first answer to it back.
/// (hickory's client multiplexes many queries over a stream with a task
/// in the background: more than one question a check needs, and about
/// a third of a check's CPU.)
async fn ask_udp(server: SocketAddr, name: Name, rtype: RecordType) -> Result<Message, ProtoError> {
    let local: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    let id: u16 = rand::random();
    let mut query = Message::new();
    query
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name.clone(), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    query.set_edns(edns);
    socket.send(&query.to_vec()?).await?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).await?;
        // Anything else (a late answer, garbage) is not ours: wait on
        // (the check's timeout bounds the wait).
        let Ok(answer) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let ours = answer.id() == id
            && answer.message_type() == MessageType::Response
            && answer
                .queries()
                .first()
                .is_none_or(|q| same_name(q.name(), &name) && q.query_type() == rtype);
        if ours {
            return Ok(answer);
        }
    }
}

/// The query, with the exchange's background beside it in this task.
async fn drive<B>(
    mut client: Client,
    background: B,
    name: Name,
    rtype: RecordType,
) -> Result<DnsResponse, ProtoError>
where
    B: std::future::Future<Output = Result<(), ProtoError>>,
{
    let query = client.query(name, DNSClass::IN, rtype);
    tokio::select! {
        r = query => r.map_err(|e| match e.kind() {
            hickory_client::ClientErrorKind::Proto(p) => p.clone(),
            hickory_client::ClientErrorKind::Io(io) => std::io::Error::new(io.kind(), io.to_string()).into(),
            hickory_client::ClientErrorKind::Timeout => hickory_proto::ProtoErrorKind::Timeout.into(),
            other => other.to_string().into(),
        }),
        r = background => Err(r.err().unwrap_or_else(|| "the connection closed".into())),
    }
}

pub(super) async fn run(p: &mut Progress, ip: IpAddr, c: &DnsCheck, timeout: Duration) {
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
    let answer = ask(SocketAddr::new(ip, c.port), c, timeout, name, rtype).await;
    p.end();
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            if let hickory_proto::ProtoErrorKind::Io(io) = e.kind() {
                super::socket_error(p, io);
            } else if matches!(e.kind(), hickory_proto::ProtoErrorKind::Timeout) {
                p.problem(CheckProblem::Timeout {
                    phase: "query",
                    after_ms: timeout.as_millis() as u64,
                });
            } else {
                p.problem(CheckProblem::Connect {
                    error: quote(&e.to_string()),
                });
            }
            return;
        }
    };
    let answers = response.answers();
    p.dns_answers = Some(answers.len() as u32);
    let rcode = rcode_name(response.response_code());
    if !c.rcodes.contains(&rcode) {
        p.problem(CheckProblem::DnsRcode {
            got: rcode,
            expected: c.rcodes.join(" or "),
        });
        return;
    }
    let texts: Vec<String> = answers.iter().map(|r| r.data().to_string()).collect();
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
