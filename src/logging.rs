//! Log lines for the systemd journal. journald reads a service's stderr
//! line by line and takes a leading `<N>` as the line's syslog priority
//! (`SyslogLevelPrefix=`, on by default), so each line is written as
//! `<4>level=warn msg=…` and `journalctl -p warning -u utkikk` shows
//! warnings and errors only. The journal stamps each line with its own
//! time, so the lines carry no `ts=`.
//!
//! Without `--log.format`, the agent writes this format when its stderr
//! is the journal (`JOURNAL_STREAM` names the stream stderr is, as
//! systemd sets it) and logfmt with `ts=` otherwise.

use std::io::Write;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// The syslog priority of a tracing level: error 3, warning 4, info 6,
/// debug and trace 7 (notice, 5, has no tracing level).
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Whether stderr is the journal stream systemd named in
/// `JOURNAL_STREAM` (`device:inode`, decimal).
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(m) => dev.parse() == Ok(m.dev()) && ino.parse() == Ok(m.ino()),
        Err(_) => false,
    }
}

/// Makes a [`Prefixed`] writer on stderr for each event, with the event's
/// priority.
#[derive(Debug, Clone, Copy, Default)]
pub struct JournalStderr;

impl<'a> MakeWriter<'a> for JournalStderr {
    type Writer = Prefixed<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Prefixed::new(6, std::io::stderr())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Prefixed::new(priority(meta.level()), std::io::stderr())
    }
}

/// Collects one event's text and writes it when dropped, each line
/// behind `<priority>`, in one write (lines of concurrent events do not
/// interleave).
#[derive(Debug)]
pub struct Prefixed<W: Write> {
    priority: u8,
    buf: Vec<u8>,
    out: W,
}

impl<W: Write> Prefixed<W> {
    pub fn new(priority: u8, out: W) -> Self {
        Prefixed {
            priority,
            buf: Vec::new(),
            out,
        }
    }

    fn emit(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let prefix = format!("<{}>", self.priority);
        let mut text = Vec::with_capacity(self.buf.len() + 8);
        for line in self.buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            text.extend_from_slice(prefix.as_bytes());
            text.extend_from_slice(line);
            text.push(b'\n');
        }
        self.buf.clear();
        self.out.write_all(&text)?;
        self.out.flush()
    }
}

impl<W: Write> Write for Prefixed<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for Prefixed<W> {
    fn drop(&mut self) {
        // Nowhere to report a failed write of the log itself.
        let _ = self.emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_gets_its_priority_in_one_write() {
        let mut out = Vec::new();
        {
            let mut w = Prefixed::new(priority(&Level::WARN), &mut out);
            w.write_all(b"level=warn msg=\"a\"").unwrap();
            w.write_all(b"\nsecond line\n").unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<4>level=warn msg=\"a\"\n<4>second line\n"
        );
        let mut out = Vec::new();
        drop(Prefixed::new(3, &mut out));
        assert!(out.is_empty(), "nothing written, nothing sent");
        assert_eq!(
            [
                Level::ERROR,
                Level::WARN,
                Level::INFO,
                Level::DEBUG,
                Level::TRACE
            ]
            .map(|l| priority(&l)),
            [3, 4, 6, 7, 7]
        );
    }
}
