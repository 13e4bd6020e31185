//! TCP: connect to a port; optionally send a line and look for a pattern
//! in what comes back (an SMTP banner, a Redis `+PONG`).

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{connect, socket_error, Progress};
use crate::inventory::checks::{defaults, TcpCheck};
use crate::model::check::quote;
use crate::model::CheckProblem;

pub(super) async fn run(p: &mut Progress, ip: IpAddr, c: &TcpCheck) {
    let Some(mut stream) = connect(p, SocketAddr::new(ip, c.port)).await else {
        return;
    };
    if c.send.is_none() && c.expect.is_none() {
        return;
    }
    p.begin("exchange");
    if let Some(line) = &c.send {
        let mut out = line.clone().into_bytes();
        out.extend_from_slice(b"\r\n");
        if let Err(e) = stream.write_all(&out).await {
            p.end();
            socket_error(p, &e);
            return;
        }
    }
    let Some(expect) = &c.expect else {
        p.end();
        return;
    };
    // Read until the pattern matches, the server closes, or the buffer
    // is full (the check's timeout bounds the wait).
    let mut got = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&got);
        if expect.0.is_match(&text) {
            p.end();
            return;
        }
        if got.len() >= defaults::MAX_BANNER_BYTES {
            break;
        }
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => {
                p.end();
                socket_error(p, &e);
                return;
            }
        }
    }
    p.end();
    p.problem(CheckProblem::Banner {
        expected: expect.0.as_str().to_string(),
        got: quote(String::from_utf8_lossy(&got).trim_end()),
    });
}
