//! The ICMP engine: one thread paces every target's echo cycles from one
//! timer, sends what is due in batches, drains replies, errors and send
//! timestamps in batches, and sweeps deadlines — no task, future or
//! allocation per echo.
//!
//! - The thread waits in one `epoll_wait` (mio's `Poll`) whose timeout is
//!   the next event's time, so it wakes once per batch of echoes: a tokio
//!   timer would wake it a second time for a deadline more than 64 ms away
//!   (its wheel's next level) and write to the runtime's eventfd whenever
//!   the timer moved earlier.
//!
//! - Targets live in a slab of entries; a removed or changed target's
//!   slot gets a new generation, so events and echoes of the old one are
//!   recognised and dropped.
//! - Time is one timeline of events (a cycle due, an echo due, an echo's
//!   deadline: a heap for cycles, a FIFO per delay for the rest) under the
//!   poll's timeout; everything due within a millisecond is handled in one pass
//!   and its echoes leave in one `sendmmsg`. Events that no longer matter
//!   are dropped before the timer is armed.
//! - Pending echoes sit in a table of 65,536 slots per address family,
//!   indexed by sequence number: the engine hands out sequences, so a reply
//!   is matched by (address, sequence), and by the stamp in its payload.
//!
//! Owns: ICMP sockets, echo pacing, cycle scheduling of ICMP targets.
//! Must not touch: states (observations go to the live-state owner).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::mpsc as channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::mpsc;

use super::packet::{self, Read, STAMP_BYTES};
use super::socket::{Family, IcmpSocket, Incoming, Outgoing, Ready, RecvBufs, SendBufs};
use super::{summarize, Echo};
use crate::inventory::{Address, IcmpSettings};
use crate::probe::{spread_offset, RESOLVE_TIMEOUT};
use crate::probe::{FailureReason, IcmpOutcome, Observation, Outcome, ProbeKind};

/// Echoes due within this much of now leave in the same batch.
const SLACK: Duration = Duration::from_millis(1);
const SEQUENCES: usize = 1 << 16;
/// The poll's token for commands (the sockets' are their family index).
const COMMANDS: Token = Token(2);
/// Finished cycles go to the live-state owner at once, unless some went
/// less than this long ago: then they wait until this long after (or until
/// there are [`FORWARD_BATCH`]), so at 10,000 targets the owner's thread
/// wakes a hundred times a second, not once per cycle. A state changes at
/// most this much later.
const FORWARD_EVERY: Duration = Duration::from_millis(10);
const FORWARD_BATCH: usize = 256;
/// Cycles start on a grid of this step from the engine's epoch (each
/// target at its hash-spread offset, rounded down to the step), so the
/// targets of one step leave in one batch and one wake-up: at 10,000
/// targets every 10 s about 50 echoes a batch instead of one or two. A
/// burst is the grid step's share of the targets, to different hosts.
const GRID: Duration = Duration::from_millis(50);

/// What the scheduler asks of the engine.
#[derive(Debug)]
pub enum Command {
    /// Start probing a target, or replace its settings (a new cycle
    /// schedule; the old one's echoes are dropped).
    Set {
        id: String,
        address: Address,
        settings: IcmpSettings,
    },
    Remove(String),
    /// An echo cycle now, on demand (a dependency check).
    Check(String),
    ResolveInterval(Duration),
    /// A name lookup finished.
    Resolved {
        slot: u32,
        generation: u32,
        result: Result<IpAddr, FailureReason>,
    },
    /// End the engine's thread (in-flight echoes are dropped).
    Stop,
    /// Panic on the engine's thread (tests of its supervision).
    #[cfg(test)]
    Panic,
}

/// The scheduler's side of the engine.
#[derive(Clone)]
pub struct EngineHandle {
    commands: channel::Sender<Command>,
    waker: Arc<Waker>,
}

impl EngineHandle {
    pub fn send(&self, c: Command) {
        // Fails only once the engine has stopped (shutdown).
        if self.commands.send(c).is_ok() {
            if let Err(e) = self.waker.wake() {
                tracing::error!("cannot wake the ICMP engine: {e}");
            }
        }
    }
}

/// The metrics the engine keeps (handles onto the agent's registry; the
/// engine knows nothing else of it).
#[derive(Clone)]
pub struct EngineMetrics {
    /// How late each cycle started.
    pub schedule_lag: prometheus_client::metrics::histogram::Histogram,
    /// Cycles running now.
    pub probes_in_flight: prometheus_client::metrics::gauge::Gauge,
    /// Replies timed by the kernel's clocks, and in user space.
    pub kernel_clock: prometheus_client::metrics::counter::Counter,
    pub user_clock: prometheus_client::metrics::counter::Counter,
    /// `utkikk_icmp_socket_up` of IPv4 and IPv6: set to 0 when the
    /// engine stops for good.
    pub socket_up: [prometheus_client::metrics::gauge::Gauge; 2],
}

/// What opening the sockets found, for the one startup line.
#[derive(Debug, Clone)]
pub struct SocketReport {
    pub v4: Result<&'static str, FailureReason>,
    pub v6: Result<&'static str, FailureReason>,
    /// Whether the kernel timestamps our echoes (per family).
    pub kernel_timestamps: [bool; 2],
}

pub struct Engine {
    poll: Poll,
    sockets: [Result<IcmpSocket, FailureReason>; 2],
    send_bufs: SendBufs,
    recv_bufs: RecvBufs,
    book: Book,
}

/// Everything but the sockets and their buffers (borrowed apart while a
/// socket is drained straight into the book).
struct Book {
    /// Why a family has no socket.
    no_socket: [Option<FailureReason>; 2],
    /// Boxed: the slab grows by doubling, and its spare places cost a
    /// pointer each, not an entry (~300 bytes).
    entries: Vec<Option<Box<Entry>>>,
    free: Vec<u32>,
    index: HashMap<String, u32>,
    generation: u32,
    events: Timeline,
    pending: [Vec<Pending>; 2],
    next_seq: [u16; 2],
    next_stamp: u32,
    /// Echoes due and not yet handed to the kernel, per family.
    out: [Vec<Outgoing>; 2],
    /// Echoes the kernel refused in the last batch (kept for its capacity).
    failed: Vec<(u16, FailureReason)>,
    outbox: VecDeque<Observation>,
    /// When the outbox was last handed on.
    forwarded_at: Instant,
    /// Where every target's cycle grid starts.
    epoch: Instant,
    /// Cycles waiting for one of `max_in_flight` places.
    waiting: VecDeque<(u32, u32)>,
    in_flight: u32,
    max_in_flight: u32,
    /// Inside [`Book::release`]'s loop.
    releasing: bool,
    resolve_interval: Duration,
    resolver: mpsc::UnboundedSender<(u32, u32, String)>,
    observations: mpsc::Sender<Observation>,
    commands: channel::Receiver<Command>,
    metrics: EngineMetrics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A target's scheduled cycle is due.
    Cycle { slot: u32, generation: u32 },
    /// The next echo of a running cycle is due.
    Echo {
        slot: u32,
        generation: u32,
        cycle: u32,
    },
    /// An echo's deadline.
    Deadline { family: u8, seq: u16, stamp: u32 },
}

struct Entry {
    id: String,
    generation: u32,
    address: Address,
    settings: IcmpSettings,
    resolved: Option<(IpAddr, Instant)>,
    next_cycle: Instant,
    /// A scheduled cycle that could not start yet (one was running).
    want_cycle: Option<Instant>,
    want_check: bool,
    state: Busy,
    /// Counts cycles, so a late event of an earlier one is recognised.
    cycle_no: u32,
    cycle: Option<Cycle>,
    /// The echoes of the running cycle; kept between cycles.
    echoes: Vec<Echo>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Busy {
    Idle,
    /// Waiting for a place among the cycles in flight.
    Queued(Start),
    /// Has its place; waiting for the name lookup.
    Resolving(Start),
    Running,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Start {
    Scheduled(Instant),
    OnDemand,
}

struct Cycle {
    at: chrono::DateTime<Utc>,
    ip: IpAddr,
    on_demand: bool,
    sent: u32,
    outstanding: u32,
}

#[derive(Clone, Copy)]
struct Pending {
    live: bool,
    slot: u32,
    generation: u32,
    cycle: u32,
    echo: u16,
    stamp: u32,
    sent: Instant,
    tx_ns: u64,
}

impl Engine {
    /// Open the sockets and build the engine; start its thread with
    /// [`Engine::spawn`]. Name lookups are spawned on the tokio runtime
    /// this is called in. Fails only if the poll cannot be created.
    pub fn open(
        observations: mpsc::Sender<Observation>,
        metrics: EngineMetrics,
        max_in_flight: u32,
        resolve_interval: Duration,
    ) -> std::io::Result<(Engine, EngineHandle, SocketReport)> {
        let ident = (std::process::id() as u16).wrapping_mul(0x9e37);
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), COMMANDS)?);
        let register = |s: IcmpSocket, token: usize| {
            poll.registry()
                .register(&mut SourceFd(&s.raw_fd()), Token(token), Interest::READABLE)
                .map(|()| s)
                .map_err(|e| FailureReason::SendError {
                    message: format!("cannot poll the ICMP socket: {e}"),
                })
        };
        let v4 = IcmpSocket::open(Family::V4, ident).and_then(|s| register(s, 0));
        let v6 = IcmpSocket::open(Family::V6, ident).and_then(|s| register(s, 1));
        let report = SocketReport {
            v4: v4.as_ref().map(|s| s.kind.as_str()).map_err(Clone::clone),
            v6: v6.as_ref().map(|s| s.kind.as_str()).map_err(Clone::clone),
            kernel_timestamps: [
                v4.as_ref().is_ok_and(|s| s.timestamps),
                v6.as_ref().is_ok_and(|s| s.timestamps),
            ],
        };
        let (tx, commands) = channel::channel();
        let handle = EngineHandle {
            commands: tx,
            waker,
        };
        let (resolver, lookups) = mpsc::unbounded_channel();
        tokio::spawn(resolve_names(lookups, handle.clone()));
        let no_socket = [v4.as_ref().err().cloned(), v6.as_ref().err().cloned()];
        let book = Book {
            no_socket,
            entries: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            generation: 0,
            events: Timeline::default(),
            pending: [Vec::new(), Vec::new()],
            next_seq: [0, 0],
            next_stamp: ident.into(),
            out: [Vec::new(), Vec::new()],
            failed: Vec::new(),
            outbox: VecDeque::new(),
            forwarded_at: Instant::now(),
            epoch: Instant::now(),
            waiting: VecDeque::new(),
            in_flight: 0,
            max_in_flight: max_in_flight.max(1),
            releasing: false,
            resolve_interval,
            resolver,
            observations,
            commands,
            metrics,
        };
        let engine = Engine {
            poll,
            sockets: [v4, v6],
            send_bufs: SendBufs::default(),
            recv_bufs: RecvBufs::default(),
            book,
        };
        Ok((engine, handle, report))
    }

    /// Run the engine on a thread of its own until [`Command::Stop`] (or
    /// until the observations' receiver is gone).
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("utkikk-icmp".into())
            .spawn(move || self.supervise())
    }

    /// Run; if the loop ends other than by a stop (its wait on the
    /// sockets failed, or it panicked), every target it probed becomes
    /// `unmonitored` with the reason, instead of keeping the state of its
    /// last cycle while nothing is probed.
    fn supervise(mut self) {
        let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run()));
        let message = match ended {
            Ok(None) => return,
            Ok(Some(message)) => message,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("no message");
                format!("it panicked: {what}")
            }
        };
        tracing::error!(
            "the ICMP engine stopped ({message}); ICMP targets are unmonitored until the agent restarts"
        );
        self.book.abandon(&message);
    }

    /// Run until [`Command::Stop`] or until the observations' receiver is
    /// gone (`None`), or until the sockets cannot be waited for (why).
    fn run(&mut self) -> Option<String> {
        let mut events = Events::with_capacity(8);
        // What each socket still has to read (the poll is edge-triggered:
        // a socket not drained is not reported again).
        let mut ready = [Ready::default(); 2];
        loop {
            let mut next = self.book.next_live_event();
            // A socket whose buffer was full: try again in a millisecond
            // (waiting for writability would mean an epoll wake-up for
            // every packet sent).
            if self.book.out.iter().any(|o| !o.is_empty()) {
                let retry = Instant::now() + SLACK;
                next = Some(next.map_or(retry, |n| n.min(retry)));
            }
            // Cycles held back, or refused by a full queue.
            if !self.book.outbox.is_empty() {
                let due = self.book.forwarded_at + FORWARD_EVERY;
                next = Some(next.map_or(due, |n| n.min(due)));
            }
            let timeout = if ready.iter().any(|r| r.any()) {
                Some(Duration::ZERO)
            } else {
                next.map(|at| at.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Some(format!("it cannot wait for its sockets: {e}"));
                }
            }
            for ev in events.iter() {
                if let Some(r) = ready.get_mut(ev.token().0) {
                    r.errors |= ev.is_error();
                    r.packets |= ev.is_readable() || ev.is_read_closed();
                }
            }
            loop {
                match self.book.commands.try_recv() {
                    Ok(Command::Stop) | Err(channel::TryRecvError::Disconnected) => return None,
                    Ok(c) => self.book.command(c),
                    Err(channel::TryRecvError::Empty) => break,
                }
            }
            for (socket, r) in self.sockets.iter().zip(ready.iter_mut()) {
                if !r.any() {
                    continue;
                }
                *r = match socket {
                    Ok(s) => {
                        let book = &mut self.book;
                        s.drain(*r, &mut self.recv_bufs, |m| book.incoming(s, m))
                    }
                    Err(_) => Ready::default(),
                };
            }
            self.book.fire_due();
            self.flush();
            if !self.book.forward() {
                return None;
            }
        }
    }

    /// Hand the echoes due to the kernel, a batch per family.
    fn flush(&mut self) {
        for family in 0..2 {
            if self.book.out[family].is_empty() {
                continue;
            }
            let Ok(socket) = &self.sockets[family] else {
                continue;
            };
            let now = Instant::now();
            let book = &mut self.book;
            let batch = std::mem::take(&mut book.out[family]);
            let mut failed = std::mem::take(&mut book.failed);
            let table = &mut book.pending[family];
            let handled = socket.send(&batch, &mut self.send_bufs, |o, r| match r {
                Ok(()) => table[o.seq as usize].sent = now,
                Err(e) => failed.push((o.seq, send_failure(&e))),
            });
            let mut batch = batch;
            batch.drain(..handled);
            book.out[family] = batch;
            for (seq, reason) in failed.drain(..) {
                book.settle(family, seq, Echo::Lost(reason));
            }
            book.failed = failed;
        }
    }
}

impl Book {
    /// Hand finished cycles to the live-state owner while it takes them
    /// (unless they are held back: see [`FORWARD_EVERY`]); false once it
    /// is gone.
    fn forward(&mut self) -> bool {
        if self.outbox.is_empty() {
            return true;
        }
        let now = Instant::now();
        if self.outbox.len() < FORWARD_BATCH && now < self.forwarded_at + FORWARD_EVERY {
            return true;
        }
        self.forwarded_at = now;
        while let Some(o) = self.outbox.pop_front() {
            match self.observations.try_send(o) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(o)) => {
                    self.outbox.push_front(o);
                    return true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        true
    }

    /// The engine stops for good: what it finished goes out, then every
    /// target it probes is `unmonitored` (not run: engine stopped), and
    /// its sockets count as down.
    fn abandon(&mut self, message: &str) {
        for up in &self.metrics.socket_up {
            up.set(0);
        }
        self.metrics.probes_in_flight.set(0);
        let at = Utc::now();
        let stopped = self.entries.iter().flatten().map(|e| Observation {
            target: e.id.clone(),
            on_demand: false,
            outcome: Outcome::NotRun {
                probe: ProbeKind::Icmp,
                at,
                reason: FailureReason::EngineStopped {
                    message: message.to_string(),
                },
            },
        });
        // On this thread of its own, waiting for the owner is fine.
        for o in self.outbox.drain(..).chain(stopped) {
            if self.observations.blocking_send(o).is_err() {
                return;
            }
        }
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Set {
                id,
                address,
                settings,
            } => {
                self.remove(&id);
                self.insert(id, address, settings);
            }
            Command::Remove(id) => self.remove(&id),
            Command::Check(id) => {
                if let Some(&slot) = self.index.get(&id) {
                    if let Some(e) = self.entry_mut(slot, None) {
                        e.want_check = true;
                    }
                    self.try_start(slot);
                }
            }
            Command::ResolveInterval(i) => self.resolve_interval = i,
            // Handled by the loop.
            Command::Stop => {}
            #[cfg(test)]
            Command::Panic => panic!("asked to panic"),
            Command::Resolved {
                slot,
                generation,
                result,
            } => self.resolved(slot, generation, result),
        }
    }

    fn insert(&mut self, id: String, address: Address, settings: IcmpSettings) {
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let interval = settings.interval.max(Duration::from_millis(1));
        let first = first_cycle(self.epoch, Instant::now(), &id, interval);
        let entry = Entry {
            id: id.clone(),
            generation,
            address,
            echoes: Vec::with_capacity(settings.count as usize),
            settings,
            resolved: None,
            next_cycle: first,
            want_cycle: None,
            want_check: false,
            state: Busy::Idle,
            cycle_no: 0,
            cycle: None,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.entries[s as usize] = Some(Box::new(entry));
                s
            }
            None => {
                self.entries.push(Some(Box::new(entry)));
                (self.entries.len() - 1) as u32
            }
        };
        self.index.insert(id, slot);
        self.events.at(first, Event::Cycle { slot, generation });
    }

    fn remove(&mut self, id: &str) {
        let Some(slot) = self.index.remove(id) else {
            return;
        };
        if let Some(e) = self.entries[slot as usize].take() {
            // Its place among the cycles in flight is given back; its
            // pending echoes and events die of the stale generation.
            if matches!(e.state, Busy::Running | Busy::Resolving(_)) {
                self.release();
            }
        }
        self.free.push(slot);
    }

    fn entry_mut(&mut self, slot: u32, generation: Option<u32>) -> Option<&mut Entry> {
        let e = self.entries.get_mut(slot as usize)?.as_mut()?;
        generation.is_none_or(|g| g == e.generation).then_some(e)
    }

    /// When the earliest event that still matters is due. Events that no
    /// longer do (the deadline of an echo already answered, the events of
    /// a removed target) are dropped from the top first, so they never
    /// wake the engine: most deadlines end this way.
    fn next_live_event(&mut self) -> Option<Instant> {
        while let Some((at, event)) = self.events.peek() {
            let live = match event {
                Event::Cycle { slot, generation } => {
                    self.entry_mut(slot, Some(generation)).is_some()
                }
                Event::Echo {
                    slot,
                    generation,
                    cycle,
                } => self
                    .entry_mut(slot, Some(generation))
                    .is_some_and(|e| e.cycle_no == cycle && e.cycle.is_some()),
                Event::Deadline { family, seq, stamp } => self.pending[family as usize]
                    .get(seq as usize)
                    .is_some_and(|p| p.live && p.stamp == stamp),
            };
            if live {
                return Some(at);
            }
            self.events.pop();
        }
        None
    }

    /// Everything due by now (and within the slack): cycles, echoes,
    /// deadlines.
    fn fire_due(&mut self) {
        let now = Instant::now();
        while let Some((at, event)) = self.events.peek() {
            if at > now + SLACK {
                break;
            }
            self.events.pop();
            match event {
                Event::Cycle { slot, generation } => self.cycle_due(slot, generation, now),
                Event::Echo {
                    slot,
                    generation,
                    cycle,
                } => {
                    let current = self
                        .entry_mut(slot, Some(generation))
                        .is_some_and(|e| e.cycle_no == cycle && e.cycle.is_some());
                    if current {
                        self.send_echo(slot, now);
                    }
                }
                Event::Deadline { family, seq, stamp } => {
                    let live = self.pending[family as usize]
                        .get(seq as usize)
                        .is_some_and(|p| p.live && p.stamp == stamp);
                    if live {
                        self.settle(family as usize, seq, Echo::Lost(FailureReason::Timeout));
                    }
                }
            }
        }
    }

    fn cycle_due(&mut self, slot: u32, generation: u32, now: Instant) {
        let Some(e) = self.entry_mut(slot, Some(generation)) else {
            return;
        };
        let scheduled = e.next_cycle;
        let interval = e.settings.interval.max(Duration::from_millis(1));
        // Missed cycles are skipped, not run in a burst.
        let mut next = scheduled + interval;
        while next <= now {
            next += interval;
        }
        e.next_cycle = next;
        e.want_cycle = Some(scheduled);
        self.events
            .again(next, interval, Event::Cycle { slot, generation });
        self.try_start(slot);
    }

    /// Start what the target wants (a check first, then a scheduled
    /// cycle) if it is idle and a place is free.
    fn try_start(&mut self, slot: u32) {
        let full = self.in_flight >= self.max_in_flight;
        let Some(e) = self.entry_mut(slot, None) else {
            return;
        };
        if e.state != Busy::Idle {
            return;
        }
        let start = if std::mem::take(&mut e.want_check) {
            Start::OnDemand
        } else if let Some(at) = e.want_cycle.take() {
            Start::Scheduled(at)
        } else {
            return;
        };
        if full {
            e.state = Busy::Queued(start);
            let g = e.generation;
            self.waiting.push_back((slot, g));
            return;
        }
        self.in_flight += 1;
        self.metrics.probes_in_flight.inc();
        self.with_address(slot, start);
    }

    /// A place in flight is free again: the longest waiting cycles get
    /// the free places. A cycle that ends at once (no socket for its
    /// family) releases again from inside this loop: that inner call only
    /// counts, and this loop goes on, so the stack never grows with the
    /// queue.
    fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.metrics.probes_in_flight.dec();
        if self.releasing {
            return;
        }
        self.releasing = true;
        while self.in_flight < self.max_in_flight {
            let Some((slot, g)) = self.waiting.pop_front() else {
                break;
            };
            let Some(e) = self.entry_mut(slot, Some(g)) else {
                continue;
            };
            let Busy::Queued(start) = e.state else {
                continue;
            };
            e.state = Busy::Idle;
            self.in_flight += 1;
            self.metrics.probes_in_flight.inc();
            self.with_address(slot, start);
        }
        self.releasing = false;
    }

    /// Begin the cycle at once for a literal address or a fresh lookup;
    /// otherwise look the name up first.
    fn with_address(&mut self, slot: u32, start: Start) {
        let interval = self.resolve_interval;
        let Some(e) = self.entry_mut(slot, None) else {
            return;
        };
        let name = match &e.address {
            Address::Ip(ip) => {
                let ip = *ip;
                return self.begin(slot, ip, start);
            }
            Address::Host(name) => name.clone(),
        };
        if let Some((ip, at)) = e.resolved {
            if at.elapsed() < interval {
                return self.begin(slot, ip, start);
            }
        }
        e.state = Busy::Resolving(start);
        let g = e.generation;
        let _ = self.resolver.send((slot, g, name));
    }

    fn resolved(&mut self, slot: u32, generation: u32, result: Result<IpAddr, FailureReason>) {
        let Some(e) = self.entry_mut(slot, Some(generation)) else {
            return;
        };
        let Busy::Resolving(start) = e.state else {
            return;
        };
        match result {
            Ok(ip) => {
                e.resolved = Some((ip, Instant::now()));
                self.begin(slot, ip, start);
            }
            Err(reason) => {
                e.resolved = None;
                let o = Observation {
                    target: e.id.clone(),
                    on_demand: start == Start::OnDemand,
                    outcome: Outcome::NotRun {
                        probe: ProbeKind::Icmp,
                        at: Utc::now(),
                        reason,
                    },
                };
                self.end(slot, o);
            }
        }
    }

    fn begin(&mut self, slot: u32, ip: IpAddr, start: Start) {
        let now = Instant::now();
        if let Start::Scheduled(at) = start {
            self.metrics
                .schedule_lag
                .observe(now.saturating_duration_since(at).as_secs_f64());
        }
        let family = Family::of(&ip);
        let no_socket = self.no_socket[family.index()].clone();
        let Some(e) = self.entry_mut(slot, None) else {
            return;
        };
        let at = Utc::now();
        if let Some(reason) = no_socket {
            let mut o = IcmpOutcome::not_run(at, reason);
            o.address = Some(ip);
            let o = Observation {
                target: e.id.clone(),
                on_demand: start == Start::OnDemand,
                outcome: Outcome::Icmp(o),
            };
            return self.end(slot, o);
        }
        e.state = Busy::Running;
        e.cycle_no = e.cycle_no.wrapping_add(1);
        e.echoes.clear();
        e.echoes.resize(e.settings.count as usize, Echo::Waiting);
        e.cycle = Some(Cycle {
            at,
            ip,
            on_demand: start == Start::OnDemand,
            sent: 0,
            outstanding: 0,
        });
        if e.settings.count == 0 {
            return self.finish(slot);
        }
        self.send_echo(slot, now);
    }

    /// Queue the next echo of the target's cycle for sending, with its
    /// deadline; schedule the one after.
    fn send_echo(&mut self, slot: u32, now: Instant) {
        let Some(e) = self.entries.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let Some(c) = e.cycle.as_mut() else { return };
        let family = Family::of(&c.ip).index();
        let echo = c.sent;
        c.sent += 1;
        c.outstanding += 1;
        let (generation, cycle_no) = (e.generation, e.cycle_no);
        let settings = &e.settings;
        if c.sent < settings.count {
            self.events.after(
                now,
                settings.spacing,
                Event::Echo {
                    slot,
                    generation,
                    cycle: cycle_no,
                },
            );
        }
        let (ip, timeout, payload) = (c.ip, settings.timeout, settings.payload_bytes);
        // A free sequence number: the next one, unless still in flight.
        let table = &mut self.pending[family];
        if table.is_empty() {
            // At the family's first echo (3 MB: an agent without IPv6
            // targets never has the IPv6 one).
            let empty = Pending {
                live: false,
                slot: 0,
                generation: 0,
                cycle: 0,
                echo: 0,
                stamp: 0,
                sent: now,
                tx_ns: 0,
            };
            table.resize(SEQUENCES, empty);
        }
        let mut seq = self.next_seq[family];
        let mut tries = 0;
        while table[seq as usize].live && tries < SEQUENCES {
            seq = seq.wrapping_add(1);
            tries += 1;
        }
        if tries == SEQUENCES {
            // 65,536 echoes of this family in flight: count this one lost
            // rather than confuse replies.
            c.outstanding -= 1;
            e.echoes[echo as usize] = Echo::Lost(FailureReason::SendError {
                message: "too many echoes in flight".into(),
            });
            return;
        }
        self.next_seq[family] = seq.wrapping_add(1);
        self.next_stamp = self.next_stamp.wrapping_add(1);
        let stamp = self.next_stamp;
        table[seq as usize] = Pending {
            live: true,
            slot,
            generation,
            cycle: cycle_no,
            echo: echo as u16,
            stamp,
            sent: now,
            tx_ns: 0,
        };
        self.out[family].push(Outgoing {
            dst: ip,
            seq,
            stamp,
            payload,
        });
        self.events.after(
            now,
            timeout,
            Event::Deadline {
                family: family as u8,
                seq,
                stamp,
            },
        );
    }

    /// A message read from `socket`.
    fn incoming(&mut self, socket: &IcmpSocket, m: Incoming<'_>) {
        let family = socket.family;
        let f = family.index();
        match m {
            Incoming::Packet { from, data, rx_ns } => {
                match packet::read(family, socket.kind, socket.ident, data) {
                    Some(Read::Reply { seq, stamp }) => {
                        let Some(p) = self.matching(f, seq, from) else {
                            return;
                        };
                        let payload = self.payload_of(&p);
                        if payload >= STAMP_BYTES && stamp.is_some_and(|s| s != p.stamp) {
                            return; // a late reply to an older echo
                        }
                        let echo = match rx_ns {
                            Some(rx) if p.tx_ns > 0 && rx >= p.tx_ns => Echo::Reply {
                                rtt: Duration::from_nanos(rx - p.tx_ns),
                                kernel: true,
                            },
                            _ => Echo::Reply {
                                rtt: p.sent.elapsed(),
                                kernel: false,
                            },
                        };
                        self.settle(f, seq, echo);
                    }
                    Some(Read::Error {
                        dst,
                        seq,
                        icmp_type,
                        code,
                    }) if self.matching(f, seq, dst).is_some() => {
                        let reason = FailureReason::IcmpUnreachable {
                            from,
                            icmp_type,
                            code,
                        };
                        self.settle(f, seq, Echo::Lost(reason));
                    }
                    Some(Read::Error { .. }) | None => {}
                }
            }
            Incoming::Sent { data, tx_ns } => {
                if let Some((dst, seq)) = packet::sent_echo(family, data) {
                    if self.matching(f, seq, dst).is_some() {
                        self.pending[f][seq as usize].tx_ns = tx_ns;
                    }
                }
            }
            Incoming::Error {
                dst,
                offender,
                icmp_type,
                code,
                data,
            } => {
                let Some(seq) = packet::quoted_seq(family, data) else {
                    return;
                };
                if self.matching(f, seq, dst).is_some() {
                    let reason = FailureReason::IcmpUnreachable {
                        from: offender.unwrap_or(dst),
                        icmp_type,
                        code,
                    };
                    self.settle(f, seq, Echo::Lost(reason));
                }
            }
        }
    }

    /// The pending echo `seq` if it is live and went to `addr`.
    fn matching(&self, family: usize, seq: u16, addr: IpAddr) -> Option<Pending> {
        let p = *self.pending[family].get(seq as usize)?;
        if !p.live {
            return None;
        }
        let e = self.entries.get(p.slot as usize)?.as_ref()?;
        let c = e.cycle.as_ref()?;
        (e.generation == p.generation && e.cycle_no == p.cycle && c.ip == addr).then_some(p)
    }

    fn payload_of(&self, p: &Pending) -> u32 {
        self.entries
            .get(p.slot as usize)
            .and_then(Option::as_ref)
            .map_or(0, |e| e.settings.payload_bytes)
    }

    /// An echo's fate is known: free its sequence, record it, and finish
    /// the cycle when it was the last.
    fn settle(&mut self, family: usize, seq: u16, echo: Echo) {
        let p = self.pending[family][seq as usize];
        self.pending[family][seq as usize].live = false;
        if let Echo::Reply { kernel, .. } = &echo {
            if *kernel {
                self.metrics.kernel_clock.inc();
            } else {
                self.metrics.user_clock.inc();
            }
        }
        let Some(e) = self.entry_mut(p.slot, Some(p.generation)) else {
            return;
        };
        if e.cycle_no != p.cycle {
            return;
        }
        let Some(c) = e.cycle.as_mut() else { return };
        if let Some(slot) = e.echoes.get_mut(p.echo as usize) {
            *slot = echo;
        }
        c.outstanding = c.outstanding.saturating_sub(1);
        if c.outstanding == 0 && c.sent >= e.settings.count {
            self.finish(p.slot);
        }
    }

    fn finish(&mut self, slot: u32) {
        let Some(e) = self.entry_mut(slot, None) else {
            return;
        };
        let Some(c) = e.cycle.take() else { return };
        let outcome = summarize(c.at, c.ip, &e.echoes);
        let o = Observation {
            target: e.id.clone(),
            on_demand: c.on_demand,
            outcome: Outcome::Icmp(outcome),
        };
        self.end(slot, o);
    }

    /// A cycle ended (or could not run): send what it found, give back its
    /// place, and start what the target wants next.
    fn end(&mut self, slot: u32, o: Observation) {
        if let Some(e) = self.entry_mut(slot, None) {
            e.state = Busy::Idle;
            e.cycle = None;
        }
        self.outbox.push_back(o);
        self.release();
        self.try_start(slot);
    }
}

/// Events in time order. A target's first cycle is placed at random in
/// its interval, so it goes into a heap. Echo and deadline events are
/// pushed at "now + a delay" and the delays are few (a spacing, a
/// timeout), so each delay has a FIFO that is in order by construction;
/// so does each interval for the cycles after the first (each is pushed
/// one interval after the one just taken, and those are taken in time
/// order). O(1), and no walk down a heap of tens of thousands of events
/// (which showed as the engine's largest cost at 10,000 targets).
#[derive(Default)]
struct Timeline {
    heap: BinaryHeap<Reverse<(Instant, Event)>>,
    fifos: Vec<Fifo>,
}

/// Events pushed at one delay (`exact`: at their own time, a recurring
/// event's next; otherwise never before the last one pushed).
struct Fifo {
    delay: Duration,
    exact: bool,
    queue: VecDeque<(Instant, Event)>,
}

impl Timeline {
    fn at(&mut self, at: Instant, e: Event) {
        self.heap.push(Reverse((at, e)));
    }

    fn fifo(&mut self, delay: Duration, exact: bool) -> &mut VecDeque<(Instant, Event)> {
        let i = match self
            .fifos
            .iter()
            .position(|f| f.delay == delay && f.exact == exact)
        {
            Some(i) => i,
            None => {
                self.fifos.push(Fifo {
                    delay,
                    exact,
                    queue: VecDeque::new(),
                });
                self.fifos.len() - 1
            }
        };
        &mut self.fifos[i].queue
    }

    fn after(&mut self, now: Instant, delay: Duration, e: Event) {
        let q = self.fifo(delay, false);
        // Never before the last one: the FIFO stays in order even when
        // callers' clocks were read a moment apart.
        let at = q
            .back()
            .map_or(now + delay, |(last, _)| (*last).max(now + delay));
        q.push_back((at, e));
    }

    /// An event that recurs every `period`, next at `at`: kept exactly
    /// (a cycle is not moved); the heap takes the rare one that would
    /// come before its FIFO's last (a cycle that skipped missed ones).
    fn again(&mut self, at: Instant, period: Duration, e: Event) {
        let q = self.fifo(period, true);
        if q.back().is_none_or(|(last, _)| *last <= at) {
            q.push_back((at, e));
        } else {
            self.at(at, e);
        }
    }

    /// The earliest event, and where it is.
    fn peek(&self) -> Option<(Instant, Event)> {
        let mut best = self.heap.peek().map(|Reverse(x)| *x);
        for f in &self.fifos {
            if let Some(&(at, e)) = f.queue.front() {
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, e));
                }
            }
        }
        best
    }

    /// Remove the earliest event (the one [`Timeline::peek`] returned).
    fn pop(&mut self) {
        let heap = self.heap.peek().map(|Reverse((at, _))| *at);
        let fifo = self
            .fifos
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.queue.front().map(|(at, _)| (*at, i)))
            .min();
        match (heap, fifo) {
            (Some(h), Some((f, i))) if f < h => {
                self.fifos[i].queue.pop_front();
            }
            (None, Some((_, i))) => {
                self.fifos[i].queue.pop_front();
            }
            _ => {
                self.heap.pop();
            }
        }
    }
}

/// A target's first cycle: its hash-spread offset in the interval, rounded
/// down to the [`GRID`], from the epoch; the first such time from `now` on.
fn first_cycle(epoch: Instant, now: Instant, id: &str, interval: Duration) -> Instant {
    let offset = spread_offset(id, interval);
    let step = GRID.as_nanos();
    let offset = Duration::from_nanos((offset.as_nanos() / step * step) as u64);
    let period = interval.as_nanos().max(1);
    let since = now.saturating_duration_since(epoch).as_nanos();
    let into = (since + period - offset.as_nanos() % period) % period;
    let wait = if into == 0 { 0 } else { period - into };
    now + Duration::from_nanos(wait as u64)
}

fn send_failure(e: &std::io::Error) -> FailureReason {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NetworkUnreachable
        | ErrorKind::HostUnreachable
        | ErrorKind::AddrNotAvailable => FailureReason::NoRoute,
        _ => FailureReason::SendError {
            message: e.to_string(),
        },
    }
}

/// Name lookups for the engine, each on its own task (they are rare: one
/// per name per resolve interval) so a slow resolver delays only its own
/// target.
async fn resolve_names(
    mut lookups: mpsc::UnboundedReceiver<(u32, u32, String)>,
    back: EngineHandle,
) {
    while let Some((slot, generation, name)) = lookups.recv().await {
        let back = back.clone();
        tokio::spawn(async move {
            let lookup =
                tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, 0))).await;
            let result = match lookup {
                Ok(Ok(mut addrs)) => addrs
                    .next()
                    .map(|a| a.ip())
                    .ok_or(FailureReason::ResolveFailed),
                _ => Err(FailureReason::ResolveFailed),
            };
            back.send(Command::Resolved {
                slot,
                generation,
                result,
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cycle(slot: u32) -> Event {
        Event::Cycle {
            slot,
            generation: 0,
        }
    }

    // A panic on the engine's thread leaves no target in the state of
    // its last cycle: each gets a not-run observation (engine stopped,
    // so `unmonitored`), and the sockets count as down. No echo is sent:
    // the targets' first cycles are hours away.
    #[test]
    fn a_panicking_engine_leaves_its_targets_unmonitored() {
        use prometheus_client::metrics::{counter::Counter, gauge::Gauge, histogram::Histogram};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let _in_rt = rt.enter();
        let metrics = EngineMetrics {
            schedule_lag: Histogram::new([1.0]),
            probes_in_flight: Gauge::default(),
            kernel_clock: Counter::default(),
            user_clock: Counter::default(),
            socket_up: [Gauge::default(), Gauge::default()],
        };
        for up in &metrics.socket_up {
            up.set(1);
        }
        let (tx, mut rx) = mpsc::channel(4);
        let (engine, handle, _) =
            Engine::open(tx, metrics.clone(), 8, Duration::from_secs(300)).expect("an engine");
        let settings = IcmpSettings {
            enabled: true,
            interval: Duration::from_secs(86_400),
            count: 1,
            spacing: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            payload_bytes: 56,
        };
        for (id, ip) in [("a", "198.51.100.1"), ("b", "2001:db8::1")] {
            handle.send(Command::Set {
                id: id.to_string(),
                address: Address::Ip(ip.parse().expect("an address")),
                settings: settings.clone(),
            });
        }
        let thread = engine.spawn().expect("a thread");
        handle.send(Command::Panic);
        let mut stopped = Vec::new();
        rt.block_on(async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while stopped.len() < 2 {
                let o = tokio::time::timeout_at(deadline, rx.recv())
                    .await
                    .expect("both targets reported before the deadline")
                    .expect("the engine sends before it ends");
                if let Outcome::NotRun { probe, reason, .. } = &o.outcome {
                    assert_eq!(*probe, ProbeKind::Icmp);
                    assert!(reason.is_probe_error(), "{reason}");
                    assert_eq!(reason.code(), "engine_stopped");
                    assert!(
                        reason.to_string().contains("panicked: asked to panic"),
                        "{reason}"
                    );
                    stopped.push(o.target);
                }
            }
        });
        stopped.sort();
        assert_eq!(stopped, ["a", "b"]);
        assert!(thread.join().is_ok(), "the panic is caught on the thread");
        assert!(metrics.socket_up.iter().all(|up| up.get() == 0));
    }

    #[test]
    fn first_cycles_are_on_the_grid_inside_one_interval_and_in_phase() {
        let epoch = Instant::now();
        let interval = Duration::from_secs(10);
        for (i, later) in [0u64, 1, 7_345, 10_000, 123_456].into_iter().enumerate() {
            let now = epoch + Duration::from_millis(later);
            let id = format!("target-{i}");
            let first = first_cycle(epoch, now, &id, interval);
            assert!(first >= now && first < now + interval, "{id} at {later} ms");
            // On the grid, counted from the epoch, and at the target's own
            // phase whenever it is added.
            let phase = first.duration_since(epoch).as_nanos() % interval.as_nanos();
            assert_eq!(phase % GRID.as_nanos(), 0, "{id}");
            let own = spread_offset(&id, interval).as_nanos();
            assert_eq!(phase, own / GRID.as_nanos() * GRID.as_nanos(), "{id}");
        }
        // An interval shorter than the grid step: every cycle at the epoch's
        // phase, one interval apart.
        let short = Duration::from_millis(20);
        let now = epoch + Duration::from_millis(35);
        let first = first_cycle(epoch, now, "x", short);
        assert_eq!(first, epoch + Duration::from_millis(40));
    }

    /// Every event left, as (time after `t0`, slot), in the order taken.
    fn drain(t: &mut Timeline, t0: Instant) -> Vec<(Duration, u32)> {
        let mut seen = Vec::new();
        while let Some((at, e)) = t.peek() {
            t.pop();
            let Event::Cycle { slot, .. } = e else {
                unreachable!()
            };
            seen.push((at - t0, slot));
        }
        seen
    }

    #[test]
    fn the_timeline_gives_events_in_time_order_across_heap_and_fifos() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut t = Timeline::default();
        t.at(t0 + ms(30), cycle(3));
        t.at(t0 + ms(5), cycle(0));
        t.after(t0, ms(10), cycle(1));
        t.after(t0 + ms(10), ms(10), cycle(2));
        t.after(t0, ms(1000), cycle(9));
        // Read a moment early: still after the last one of its FIFO.
        t.after(t0 + ms(5), ms(10), cycle(4));
        t.at(t0 + ms(25), cycle(5));
        let seen = drain(&mut t, t0);
        let order: Vec<u32> = seen.iter().map(|(_, s)| *s).collect();
        assert_eq!(order, vec![0, 1, 2, 4, 5, 3, 9]);
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
        assert_eq!(seen[3].0, ms(20), "clamped to its FIFO's last");
    }

    // Recurring events keep their exact times, also one that would come
    // before its period's last (it goes to the heap), and come out in
    // time order with the rest.
    #[test]
    fn recurring_events_keep_their_times_and_order() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let period = ms(1000);
        let mut t = Timeline::default();
        t.again(t0 + ms(1000), period, cycle(0));
        t.again(t0 + ms(1500), period, cycle(1));
        // Skipped missed cycles: before the FIFO's last.
        t.again(t0 + ms(1200), period, cycle(2));
        t.after(t0, ms(1000), cycle(3));
        t.at(t0 + ms(1100), cycle(4));
        t.again(t0 + ms(1500), period, cycle(5));
        let seen = drain(&mut t, t0);
        assert_eq!(
            seen,
            vec![
                (ms(1000), 0),
                (ms(1000), 3),
                (ms(1100), 4),
                (ms(1200), 2),
                (ms(1500), 1),
                (ms(1500), 5)
            ]
        );
    }
}
