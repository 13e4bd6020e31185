//! SNMP poller on snmp2 (v2c and v3), made robust around what snmp2 leaves
//! to its caller (LAB.md): every request has a timeout and retries; after a
//! timeout or a stale reply the session is rebuilt, so a late answer can
//! never be taken for the next request's; v3 engine discovery runs on every
//! new session and again after an agent reboot (`AuthUpdated`); walks use
//! GETBULK and stop on an OID that does not increase (counted).
//!
//! One [`DevicePoller`] per device, owned by that device's task: one request
//! in flight per device by construction. The interface index → name table
//! (ifName, ifAlias, ifDescr, ifType) is cached and walked again only when
//! sysUpTime goes back, ifNumber or ifTableLastChange change, or it is an
//! hour old (alias edits change neither).
//!
//! A poll of every interface is one side-by-side GETBULK walk of the
//! interface columns whose first request also carries the scalars
//! (sysUpTime, ifNumber, … as non-repeaters): the walk begins at the
//! columns' roots whatever the cache says, so it need not wait for them.
//! It stops at the last interface named, and asks each time for the rows
//! still expected, not for more: a 50-interface switch whose agent answers
//! at most 100 varbinds (net-snmp's default) is five requests.
//!
//! Secrets never appear in errors: snmp2's errors carry no credentials, and
//! ours are built from error kinds only.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use snmp2::v3::{Auth, AuthProtocol, Cipher, KeyExtension, Security};
use snmp2::{AsyncSession, Oid, Value, Varbinds};
use tokio::time::Instant;

use super::{EndQuery, Observation, Outcome, ProbeKind, Prober, Request};
use crate::inventory::{
    CustomKind, CustomOid, SnmpAuthProtocol, SnmpCredentials, SnmpPrivProtocol, SnmpSettings,
};
use crate::model::{EndName, EndStatus, EndUnknown};

/// Numeric OID arcs; `Vec` ordering is OID (lexicographic) order.
pub type Arcs = Vec<u64>;

const SYS_DESCR: &[u64] = &[1, 3, 6, 1, 2, 1, 1, 1, 0];
const SYS_OBJECT_ID: &[u64] = &[1, 3, 6, 1, 2, 1, 1, 2, 0];
const SYS_UPTIME: &[u64] = &[1, 3, 6, 1, 2, 1, 1, 3, 0];
const SYS_NAME: &[u64] = &[1, 3, 6, 1, 2, 1, 1, 5, 0];
const SYS_LOCATION: &[u64] = &[1, 3, 6, 1, 2, 1, 1, 6, 0];
const IF_NUMBER: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 1, 0];
const IF_TABLE_LAST_CHANGE: &[u64] = &[1, 3, 6, 1, 2, 1, 31, 1, 5, 0];
const IF_DESCR: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 2];
const IF_TYPE: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 3];
const IF_ADMIN_STATUS: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 7];
const IF_OPER_STATUS: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 8];
const IF_IN_DISCARDS: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 13];
const IF_IN_ERRORS: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 14];
const IF_OUT_DISCARDS: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 19];
const IF_OUT_ERRORS: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 20];
const IF_NAME: &[u64] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1];
const IF_HC_IN_OCTETS: &[u64] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6];
const IF_HC_OUT_OCTETS: &[u64] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 10];
const IF_HIGH_SPEED: &[u64] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 15];
const IF_ALIAS: &[u64] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18];
const HR_PROCESSOR_LOAD: &[u64] = &[1, 3, 6, 1, 2, 1, 25, 3, 3, 1, 2];
const HR_STORAGE_DESCR: &[u64] = &[1, 3, 6, 1, 2, 1, 25, 2, 3, 1, 3];
const HR_STORAGE_UNITS: &[u64] = &[1, 3, 6, 1, 2, 1, 25, 2, 3, 1, 4];
const HR_STORAGE_SIZE: &[u64] = &[1, 3, 6, 1, 2, 1, 25, 2, 3, 1, 5];
const HR_STORAGE_USED: &[u64] = &[1, 3, 6, 1, 2, 1, 25, 2, 3, 1, 6];

/// The per-poll interface columns, in [`IfCounters`] field order.
const IF_POLL_COLUMNS: [&[u64]; 9] = [
    IF_HC_IN_OCTETS,
    IF_HC_OUT_OCTETS,
    IF_IN_ERRORS,
    IF_OUT_ERRORS,
    IF_IN_DISCARDS,
    IF_OUT_DISCARDS,
    IF_OPER_STATUS,
    IF_ADMIN_STATUS,
    IF_HIGH_SPEED,
];

/// Varbinds per GET when polling a filtered set of interfaces.
const GET_BATCH: usize = 40;
/// A walk longer than this is cut (a broken agent looping on new OIDs).
const MAX_WALK_ROWS: usize = 100_000;
/// Re-walk interface names at least this often (ifAlias edits).
const NAME_CACHE_MAX_AGE: Duration = Duration::from_secs(3600);
/// sysUpTime is TimeTicks (1/100 s) in 32 bits: it wraps after ~497 days.
const TICKS_WRAP: u64 = 1 << 32;

/// A decoded SNMP value, owned.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Int(i64),
    Bytes(Vec<u8>),
    Oid(Arcs),
    Counter32(u32),
    Counter64(u64),
    Unsigned32(u32),
    Ticks(u32),
    Ip([u8; 4]),
    /// noSuchObject, noSuchInstance, endOfMibView, NULL.
    Missing,
    EndOfMib,
    Other,
}

impl Val {
    fn of(v: &Value<'_>) -> Val {
        match v {
            Value::Integer(i) => Val::Int(*i),
            Value::OctetString(b) => Val::Bytes(b.to_vec()),
            Value::ObjectIdentifier(o) => Val::Oid(arcs(o)),
            Value::Counter32(c) => Val::Counter32(*c),
            Value::Counter64(c) => Val::Counter64(*c),
            Value::Unsigned32(u) => Val::Unsigned32(*u),
            Value::Timeticks(t) => Val::Ticks(*t),
            Value::IpAddress(a) => Val::Ip(*a),
            Value::EndOfMibView => Val::EndOfMib,
            Value::NoSuchObject | Value::NoSuchInstance | Value::Null => Val::Missing,
            _ => Val::Other,
        }
    }

    /// Any numeric value as u64 (negative integers are not).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Val::Int(i) => u64::try_from(i).ok(),
            Val::Counter32(c) | Val::Unsigned32(c) | Val::Ticks(c) => Some(u64::from(c)),
            Val::Counter64(c) => Some(c),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Val::Int(i) => Some(i),
            _ => self.as_u64().and_then(|u| i64::try_from(u).ok()),
        }
    }

    /// Text for labels: UTF-8 (lossy) with control characters dropped.
    pub fn as_text(&self) -> String {
        match self {
            Val::Bytes(b) => String::from_utf8_lossy(b)
                .chars()
                .filter(|c| !c.is_control())
                .collect(),
            Val::Oid(a) => oid_string(a),
            Val::Missing | Val::EndOfMib | Val::Other => String::new(),
            v => v.as_i64().map(|i| i.to_string()).unwrap_or_default(),
        }
    }
}

pub fn oid_string(a: &[u64]) -> String {
    let parts: Vec<String> = a.iter().map(u64::to_string).collect();
    parts.join(".")
}

/// An OID's arcs, in one allocation for the usual lengths (an interface
/// column's row is 12 arcs; `collect` grew the vector three times).
fn arcs(o: &Oid<'_>) -> Arcs {
    let mut a = Vec::with_capacity(16);
    if let Some(i) = o.iter() {
        a.extend(i);
    }
    a
}

pub use crate::model::reason::{SnmpError, SNMP_ERROR_CODES};

/// error-status names of RFC 3416.
fn error_status_name(s: u32) -> String {
    const NAMES: [&str; 19] = [
        "noError",
        "tooBig",
        "noSuchName",
        "badValue",
        "readOnly",
        "genErr",
        "noAccess",
        "wrongType",
        "wrongLength",
        "wrongEncoding",
        "wrongValue",
        "noCreation",
        "inconsistentValue",
        "resourceUnavailable",
        "commitFailed",
        "undoFailed",
        "authorizationError",
        "notWritable",
        "inconsistentName",
    ];
    NAMES
        .get(s as usize)
        .map_or_else(|| format!("status {s}"), |n| (*n).to_string())
}

enum Op<'a> {
    Get(&'a [Oid<'a>]),
    /// GETBULK: the OIDs, how many of them are non-repeaters (first),
    /// max-repetitions.
    Bulk(&'a [Oid<'a>], u32, u32),
}

/// What one request attempt ended in.
enum Attempt<T> {
    /// The answer's varbinds, as the request's `decode` made them.
    Done(T),
    /// Retry at once, not counted (v3 engine state updated).
    Again,
    /// Rebuild the session and retry, counted.
    Rebuild,
    Fail(SnmpError),
}

/// Walk bookkeeping of one poll.
#[derive(Debug, Default, Clone, Copy)]
pub struct WalkStats {
    pub requests: u32,
    pub non_increasing: u32,
}

/// One device's SNMP session, rebuilt whenever its state is in doubt.
pub struct Session {
    addr: SocketAddr,
    settings: SnmpSettings,
    inner: Option<AsyncSession>,
    next_req_id: i32,
    pub stats: WalkStats,
}

impl Session {
    pub fn new(addr: SocketAddr, settings: SnmpSettings) -> Self {
        // Random-ish start so two agents (or a restart) do not reuse ids.
        let seed =
            (Utc::now().timestamp_subsec_nanos() as i32 ^ std::process::id() as i32) & 0x3fff_ffff;
        Session {
            addr,
            settings,
            inner: None,
            next_req_id: seed,
            stats: WalkStats::default(),
        }
    }

    /// Forget the session: the next request builds a new socket (fresh
    /// request ids, no stale replies) and, for v3, discovers the engine again.
    pub fn reset(&mut self) {
        self.inner = None;
    }

    async fn connect<T>(&mut self) -> Result<&mut AsyncSession, Attempt<T>> {
        if self.inner.is_none() {
            // Leave room: snmp2 counts request ids up from here.
            self.next_req_id = self.next_req_id.wrapping_add(1 << 20) & 0x3fff_ffff;
            let s = match &self.settings.credentials {
                SnmpCredentials::V2c { community } => {
                    AsyncSession::new_v2c(
                        self.addr,
                        community.expose().as_bytes(),
                        self.next_req_id,
                    )
                    .await
                }
                SnmpCredentials::V3 {
                    user,
                    auth,
                    privacy,
                    context,
                } => {
                    AsyncSession::new_v3(
                        self.addr,
                        self.next_req_id,
                        security(user, auth, privacy, context),
                    )
                    .await
                }
            };
            let mut s = s.map_err(|e| Attempt::Fail(socket_error(&e)))?;
            if matches!(self.settings.credentials, SnmpCredentials::V3 { .. }) {
                self.stats.requests += 1;
                match tokio::time::timeout(self.settings.timeout, s.init()).await {
                    Err(_) => return Err(Attempt::Rebuild),
                    Ok(Err(e)) => return Err(classify(e)),
                    Ok(Ok(())) => {}
                }
            }
            self.inner = Some(s);
        }
        self.inner.as_mut().ok_or(Attempt::Rebuild)
    }

    /// One try of `op`; an answer's varbinds go through `decode` while
    /// they are still the receive buffer's (nothing copied first).
    async fn attempt<T>(
        &mut self,
        op: &Op<'_>,
        decode: &mut impl FnMut(Varbinds<'_>) -> T,
    ) -> Attempt<T> {
        let timeout = self.settings.timeout;
        let session = match self.connect().await {
            Ok(s) => s,
            Err(a) => return a,
        };
        let (oids, bulk) = match op {
            Op::Get(l) => (*l, None),
            Op::Bulk(l, non_repeaters, reps) => (*l, Some((*non_repeaters, *reps))),
        };
        let refs: Vec<&Oid<'_>> = oids.iter().collect();
        let fut = async {
            let pdu = match bulk {
                None => session.get_many(&refs).await,
                Some((non_repeaters, reps)) => session.getbulk(&refs, non_repeaters, reps).await,
            };
            match pdu {
                Ok(pdu) if pdu.error_status != 0 => {
                    Attempt::Fail(SnmpError::Agent(error_status_name(pdu.error_status)))
                }
                Ok(pdu) => Attempt::Done(decode(pdu.varbinds)),
                Err(e) => classify(e),
            }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(a) => a,
            Err(_) => Attempt::Rebuild,
        }
    }

    async fn request<T>(
        &mut self,
        op: Op<'_>,
        mut decode: impl FnMut(Varbinds<'_>) -> T,
    ) -> Result<T, SnmpError> {
        let attempts = self.settings.retries + 1;
        let mut agains = 0;
        let mut tries = 0;
        let mut last_io = None;
        while tries < attempts {
            self.stats.requests += 1;
            match self.attempt(&op, &mut decode).await {
                Attempt::Done(v) => return Ok(v),
                Attempt::Again if agains < 3 => agains += 1,
                Attempt::Again | Attempt::Rebuild => {
                    self.reset();
                    tries += 1;
                    last_io = None;
                }
                // No socket here: the poll cannot run; trying again at
                // once would not help.
                Attempt::Fail(e @ SnmpError::Local(_)) => return Err(e),
                // Socket errors (an ICMP port unreachable: nothing listens)
                // may pass; retried like a timeout.
                Attempt::Fail(e @ SnmpError::Io(_)) => {
                    self.reset();
                    tries += 1;
                    last_io = Some(e);
                }
                Attempt::Fail(e) => {
                    // A failed v3 exchange leaves engine state in doubt.
                    self.reset();
                    return Err(e);
                }
            }
        }
        if let Some(e) = last_io {
            return Err(e);
        }
        // v2c agents drop a wrong community without a word. If the agent
        // answers an SNMPv3 engine discovery (which needs no credentials),
        // it is alive and listening: the silence is a refused community.
        if matches!(self.settings.credentials, SnmpCredentials::V2c { .. })
            && self.v3_discovery_answers().await
        {
            return Err(SnmpError::Auth(
                "no answer with this community, but the agent answers SNMPv3 discovery: the community is refused".into(),
            ));
        }
        Err(SnmpError::Timeout {
            attempts,
            timeout_ms: self.settings.timeout.as_millis() as u64,
        })
    }

    /// Whether the agent answers an unauthenticated SNMPv3 engine discovery.
    async fn v3_discovery_answers(&mut self) -> bool {
        self.stats.requests += 1;
        let security = Security::new(b"utkikk-discovery", b"").with_auth(Auth::NoAuthNoPriv);
        let Ok(mut probe) = AsyncSession::new_v3(self.addr, self.next_req_id, security).await
        else {
            return false;
        };
        match tokio::time::timeout(self.settings.timeout, probe.init()).await {
            Ok(Ok(())) => true,
            // Any decoded answer means something is listening; a socket
            // error or silence does not.
            Ok(Err(snmp2::Error::Receive | snmp2::Error::Send)) | Err(_) => false,
            Ok(Err(_)) => true,
        }
    }

    pub async fn get(&mut self, oids: &[Arcs]) -> Result<Vec<(Arcs, Val)>, SnmpError> {
        let oids = oids
            .iter()
            .map(|a| Oid::from(a).map_err(|_| SnmpError::Decode("bad OID".into())))
            .collect::<Result<Vec<_>, _>>()?;
        self.request(Op::Get(&oids), |vbs| {
            vbs.map(|(oid, val)| (arcs(&oid), Val::of(&val))).collect()
        })
        .await
    }

    /// Walk several table columns side by side with GETBULK: each request
    /// asks for the next rows of every column not yet finished. A column
    /// ends when it leaves its subtree, at endOfMibView, or on an OID that
    /// does not increase (a broken agent; counted). A row is its OID's
    /// last arc (the tables walked have one index) and its value; OIDs are
    /// compared in their encoded form as they arrive, not decoded.
    /// `rows`: how many rows to expect (0: unknown).
    pub async fn walk_columns(
        &mut self,
        roots: &[&[u64]],
        rows: usize,
    ) -> Result<Vec<Vec<(u64, Val)>>, SnmpError> {
        let mut walk = Walk::new(roots, rows)?;
        self.walk_rest(&mut walk).await?;
        Ok(walk.out)
    }

    /// One GETBULK of `walk`, with `scalars` (full instance OIDs such as
    /// `sysUpTime.0`) asked as its non-repeaters: each is a GETNEXT of
    /// its parent, so its value is the scalar's only when the OID that
    /// comes back is the scalar's (else `Missing`). The scalars' values,
    /// in order.
    async fn walk_request(
        &mut self,
        walk: &mut Walk,
        scalars: &[Oid<'_>],
    ) -> Result<Vec<Val>, SnmpError> {
        walk.active.clear();
        walk.active
            .extend((0..walk.roots.len()).filter(|&i| !walk.done[i]));
        let reps = walk.reps(self.settings.max_repetitions);
        let mut ask: Vec<Oid<'_>> = scalars
            .iter()
            .map(|s| parent(s))
            .collect::<Result<_, _>>()?;
        ask.extend(
            walk.active
                .iter()
                .map(|&i| Oid::new(Cow::Owned(walk.cursors[i].clone()))),
        );
        walk.progressed = false;
        let got = self
            .request(Op::Bulk(&ask, scalars.len() as u32, reps), |vbs| {
                walk.take(scalars, vbs)
            })
            .await;
        self.stats.non_increasing += std::mem::take(&mut walk.non_increasing);
        let (vals, n) = got?;
        if n <= scalars.len() || !walk.progressed || walk.rows > MAX_WALK_ROWS {
            walk.done.fill(true);
        }
        Ok(vals)
    }

    /// Request until every column of `walk` has ended.
    async fn walk_rest(&mut self, walk: &mut Walk) -> Result<(), SnmpError> {
        while walk.done.contains(&false) {
            self.walk_request(walk, &[]).await?;
        }
        Ok(())
    }
}

/// A scalar's parent (`sysUpTime` of `sysUpTime.0`): a GETNEXT of it
/// answers the scalar.
fn parent(scalar: &Oid<'_>) -> Result<Oid<'static>, SnmpError> {
    let bad = || SnmpError::Decode("bad OID".into());
    let mut a = arcs(scalar);
    a.pop().ok_or_else(bad)?;
    Oid::from(&a).map_err(|_| bad())
}

/// Where a walked OID stands against its column.
#[derive(Debug, PartialEq)]
enum Step {
    /// Outside the column's subtree (or an arc past 64 bits): it ended.
    Leaves,
    /// Not after the column's last row: a broken agent.
    Back,
    /// A new row, with its index (the OID's last arc).
    Row(u64),
}

/// `oid` against the column under `root` whose last row was `cursor`
/// (encoded; `root`'s own encoding before the first row). Both are under
/// the root, so what follows it is compared arc by arc: encoded bytes do
/// not sort as arcs do (arcs from 2^14 up take three bytes, but begin
/// with a smaller one than the largest two-byte arcs).
fn step(root: &Oid<'_>, cursor: &[u8], oid: &Oid<'_>) -> Step {
    if !oid.starts_with(root) {
        return Step::Leaves;
    }
    let skip = root.as_bytes().len();
    let rest = Oid::new_relative(Cow::Borrowed(&oid.as_bytes()[skip..]));
    let last = Oid::new_relative(Cow::Borrowed(cursor.get(skip..).unwrap_or_default()));
    let (Some(new), Some(old)) = (rest.iter(), last.iter()) else {
        return Step::Leaves;
    };
    if new.cmp(old) != std::cmp::Ordering::Greater {
        return Step::Back;
    }
    match rest.iter().and_then(Iterator::last) {
        Some(i) => Step::Row(i),
        None => Step::Back,
    }
}

/// A side-by-side walk's state between its requests.
struct Walk {
    roots: Vec<Oid<'static>>,
    out: Vec<Vec<(u64, Val)>>,
    /// A column's cursor: its last row's OID, encoded (the root before
    /// the first row).
    cursors: Vec<Vec<u8>>,
    done: Vec<bool>,
    /// The columns asked for in the request being answered, in order.
    active: Vec<usize>,
    non_increasing: u32,
    progressed: bool,
    rows: usize,
    /// Rows expected per column (0: unknown), to size requests.
    hint: usize,
    /// The last row wanted: a column reaching it is finished without
    /// another request to see it end.
    last: Option<u64>,
}

impl Walk {
    fn new(roots: &[&[u64]], hint: usize) -> Result<Walk, SnmpError> {
        let roots: Vec<Oid<'static>> = roots
            .iter()
            .map(|r| Oid::from(r).map_err(|_| SnmpError::Decode("bad OID".into())))
            .collect::<Result<_, _>>()?;
        Ok(Walk {
            out: (0..roots.len())
                .map(|_| Vec::with_capacity(hint.min(MAX_WALK_ROWS)))
                .collect(),
            cursors: roots.iter().map(|r| r.as_bytes().to_vec()).collect(),
            done: vec![false; roots.len()],
            active: Vec::with_capacity(roots.len()),
            roots,
            non_increasing: 0,
            progressed: false,
            rows: 0,
            hint,
            last: None,
        })
    }

    /// From now on rows after `last` are not wanted (`hint` of them in
    /// all); columns already there are finished.
    fn bound(&mut self, last: u64, hint: usize) {
        self.last = Some(last);
        self.hint = hint;
        for (out, done) in self.out.iter().zip(&mut self.done) {
            if out.last().is_some_and(|&(i, _)| i >= last) {
                *done = true;
            }
        }
    }

    /// Repetitions for the next request: what is still expected of the
    /// shortest active column (plus one to see it end, unless the last
    /// row is known), within `max` and about `max` × 10 varbinds in all.
    /// More rows than expected: the hint was wrong, ask for `max`.
    fn reps(&self, max: u32) -> u32 {
        let cap = (max * 10 / self.active.len().max(1) as u32).clamp(1, max);
        let got = self
            .active
            .iter()
            .map(|&c| self.out[c].len())
            .min()
            .unwrap_or(0);
        let want = match self.hint {
            0 => return cap,
            h if got > h => return cap,
            h => h - got + usize::from(self.last.is_none()),
        };
        u32::try_from(want).unwrap_or(cap).clamp(1, cap)
    }

    /// Take one answer: the values of `scalars` (its first varbinds), then
    /// the active columns' rows. The scalars' values, and how many
    /// varbinds there were.
    fn take(&mut self, scalars: &[Oid<'_>], vbs: Varbinds<'_>) -> (Vec<Val>, usize) {
        let mut vals = Vec::with_capacity(scalars.len());
        let mut n = 0;
        for (k, (oid, val)) in vbs.enumerate() {
            n += 1;
            if let Some(s) = scalars.get(k) {
                vals.push(if oid.as_bytes() == s.as_bytes() {
                    Val::of(&val)
                } else {
                    Val::Missing
                });
                continue;
            }
            let col = self.active[(k - scalars.len()) % self.active.len()];
            if self.done[col] {
                continue;
            }
            if matches!(val, Value::EndOfMibView) {
                self.done[col] = true;
                continue;
            }
            let index = match step(&self.roots[col], &self.cursors[col], &oid) {
                Step::Row(i) => i,
                Step::Leaves => {
                    self.done[col] = true;
                    continue;
                }
                Step::Back => {
                    self.non_increasing += 1;
                    self.done[col] = true;
                    continue;
                }
            };
            if let Some(last) = self.last {
                if index >= last {
                    self.done[col] = true;
                }
                if index > last {
                    continue;
                }
            }
            self.cursors[col].clear();
            self.cursors[col].extend_from_slice(oid.as_bytes());
            self.out[col].push((index, Val::of(&val)));
            self.progressed = true;
            self.rows += 1;
        }
        vals.resize(scalars.len(), Val::Missing);
        (vals, n)
    }
}

fn security(
    user: &str,
    auth: &Option<(SnmpAuthProtocol, crate::model::secret::Secret)>,
    privacy: &Option<(SnmpPrivProtocol, crate::model::secret::Secret)>,
    context: &str,
) -> Security {
    let Some((proto, pass)) = auth else {
        return Security::new(user.as_bytes(), b"")
            .with_auth(Auth::NoAuthNoPriv)
            .with_context_name(context);
    };
    let proto = match proto {
        SnmpAuthProtocol::Md5 => AuthProtocol::Md5,
        SnmpAuthProtocol::Sha1 => AuthProtocol::Sha1,
        SnmpAuthProtocol::Sha224 => AuthProtocol::Sha224,
        SnmpAuthProtocol::Sha256 => AuthProtocol::Sha256,
        SnmpAuthProtocol::Sha384 => AuthProtocol::Sha384,
        SnmpAuthProtocol::Sha512 => AuthProtocol::Sha512,
    };
    let mut sec = Security::new(user.as_bytes(), pass.expose().as_bytes())
        .with_auth_protocol(proto)
        .with_context_name(context);
    sec = match privacy {
        None => sec.with_auth(Auth::AuthNoPriv),
        Some((p, priv_pass)) => {
            let cipher = match p {
                SnmpPrivProtocol::Des => Cipher::Des,
                SnmpPrivProtocol::Aes128 => Cipher::Aes128,
                SnmpPrivProtocol::Aes192 => Cipher::Aes192,
                SnmpPrivProtocol::Aes256 => Cipher::Aes256,
            };
            let needs_extension = cipher.priv_key_needs_extension(&proto);
            let s = sec.with_auth(Auth::AuthPriv {
                cipher,
                privacy_password: priv_pass.expose().as_bytes().to_vec(),
            });
            // net-snmp's AES-192/256 extend short keys as Blumenthal does.
            if needs_extension {
                s.with_key_extension_method(KeyExtension::Blumenthal)
            } else {
                s
            }
        }
    };
    sec
}

/// A socket that could not be made: local when the agent lacks the
/// resources (descriptors, buffers, memory) or the right; otherwise (no
/// route to the address, say) as any socket error.
fn socket_error(e: &std::io::Error) -> SnmpError {
    use rustix::io::Errno;
    let local = [
        Errno::MFILE,
        Errno::NFILE,
        Errno::NOBUFS,
        Errno::NOMEM,
        Errno::ACCESS,
        Errno::PERM,
        Errno::AFNOSUPPORT,
    ];
    match Errno::from_io_error(e) {
        Some(n) if local.contains(&n) => SnmpError::Local(e.to_string()),
        _ => SnmpError::Io(e.to_string()),
    }
}

fn classify<T>(e: snmp2::Error) -> Attempt<T> {
    use snmp2::v3::AuthErrorKind as K;
    match e {
        snmp2::Error::AuthUpdated => Attempt::Again,
        // A late reply to an earlier request, or engine state that moved
        // (agent rebooted or replaced): start over with a new session.
        snmp2::Error::RequestIdMismatch
        | snmp2::Error::AuthFailure(
            K::EngineIdMismatch
            | K::EngineBootsMismatch
            | K::EngineTimeMismatch
            | K::MessageIdMismatch,
        ) => Attempt::Rebuild,
        snmp2::Error::AuthFailure(k) => Attempt::Fail(SnmpError::Auth(k.to_string())),
        snmp2::Error::CommunityMismatch => {
            Attempt::Fail(SnmpError::Auth("community mismatch".into()))
        }
        snmp2::Error::Send | snmp2::Error::Receive => Attempt::Fail(SnmpError::Io(e.to_string())),
        other => Attempt::Fail(SnmpError::Decode(other.to_string())),
    }
}

/// sysName, sysDescr and friends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SystemInfo {
    pub name: String,
    pub descr: String,
    pub object_id: String,
    pub location: String,
}

/// An interface's names, as the last walk of them read them: shared by
/// every poll until they are walked again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IfNames {
    /// The interface's index as text, made once for the `ifIndex` label.
    pub index_label: String,
    pub name: String,
    pub alias: String,
    pub descr: String,
    pub if_type: Option<u64>,
}

/// One interface, as polled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interface {
    pub index: u64,
    pub names: Arc<IfNames>,
    /// In [`IF_POLL_COLUMNS`] order: HC in/out octets, in/out errors, in/out
    /// discards, oper status, admin status, high speed (Mbit/s).
    pub values: [Option<u64>; 9],
}

impl Interface {
    pub fn in_octets(&self) -> Option<u64> {
        self.values[0]
    }
    pub fn out_octets(&self) -> Option<u64> {
        self.values[1]
    }
    pub fn oper_status(&self) -> Option<u64> {
        self.values[6]
    }
    pub fn admin_status(&self) -> Option<u64> {
        self.values[7]
    }
    pub fn high_speed_mbps(&self) -> Option<u64> {
        self.values[8]
    }
}

/// The names of the columns in `Interface::values`, snmp_exporter's if_mib
/// names, with whether each is a counter.
pub const IF_METRICS: [(&str, bool, &str); 9] = [
    ("ifHCInOctets", true, "The total number of octets received on the interface, including framing characters - 1.3.6.1.2.1.31.1.1.1.6"),
    ("ifHCOutOctets", true, "The total number of octets transmitted out of the interface, including framing characters - 1.3.6.1.2.1.31.1.1.1.10"),
    ("ifInErrors", true, "The number of inbound packets that contained errors preventing them from being deliverable to a higher-layer protocol - 1.3.6.1.2.1.2.2.1.14"),
    ("ifOutErrors", true, "The number of outbound packets that could not be transmitted because of errors - 1.3.6.1.2.1.2.2.1.20"),
    ("ifInDiscards", true, "The number of inbound packets which were chosen to be discarded even though no errors had been detected - 1.3.6.1.2.1.2.2.1.13"),
    ("ifOutDiscards", true, "The number of outbound packets which were chosen to be discarded even though no errors had been detected - 1.3.6.1.2.1.2.2.1.19"),
    ("ifOperStatus", false, "The current operational state of the interface - 1.3.6.1.2.1.2.2.1.8"),
    ("ifAdminStatus", false, "The desired state of the interface - 1.3.6.1.2.1.2.2.1.7"),
    ("ifHighSpeed", false, "An estimate of the interface's current bandwidth in units of 1,000,000 bits per second - 1.3.6.1.2.1.31.1.1.1.15"),
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Storage {
    pub index: u64,
    pub index_label: String,
    pub descr: String,
    pub allocation_units: u64,
    pub size: u64,
    pub used: u64,
}

/// Everything one successful poll saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceSnapshot {
    /// sysUpTime in 1/100 s.
    pub uptime_ticks: u64,
    pub system: Option<SystemInfo>,
    pub interfaces: Vec<Interface>,
    /// hrProcessorLoad by hrDeviceIndex (as label text).
    pub processors: Vec<(String, i64)>,
    pub storage: Vec<Storage>,
    /// Custom OIDs that answered with a number.
    pub custom: Vec<(CustomOid, f64)>,
}

/// The result of one poll.
#[derive(Debug, Clone)]
pub struct SnmpPoll {
    pub at: DateTime<Utc>,
    pub duration: Duration,
    pub result: Result<DeviceSnapshot, SnmpError>,
    /// sysUpTime went back since the last successful poll.
    pub rebooted: bool,
    /// Walks cut short by a non-increasing OID in this poll.
    pub non_increasing: u32,
    /// Requests sent, retries included.
    pub requests: u32,
}

/// A check on demand: does the agent answer (one GET of sysUpTime)?
#[derive(Debug, Clone)]
pub struct SnmpCheck {
    pub at: DateTime<Utc>,
    pub result: Result<(), SnmpError>,
    pub requests: u32,
}

/// The verdict of a link end from its interface as read (`None`: no
/// interface of that name). IF-MIB: ifOperStatus up(1) is up; an
/// interface shut (ifAdminStatus down(2)) is not a failure; any other
/// operational status while administratively up is.
pub fn end_status(device: &str, interface: &str, found: Option<&Interface>) -> EndStatus {
    let name = |if_index| EndName {
        device: device.to_string(),
        interface: interface.to_string(),
        if_index,
    };
    let Some(i) = found else {
        return EndStatus::Unknown {
            end: name(None),
            why: EndUnknown::NoSuchInterface,
        };
    };
    let end = name(Some(i.index));
    match (i.oper_status(), i.admin_status()) {
        (Some(IF_UP), _) => EndStatus::Up,
        (_, Some(IF_ADMIN_DOWN)) => EndStatus::AdminDown { end },
        (Some(oper_status), _) => EndStatus::Down { end, oper_status },
        (None, _) => EndStatus::Unknown {
            end,
            why: EndUnknown::NoOperStatus,
        },
    }
}

/// Find an interface by ifName first, then by ifAlias.
pub fn find_interface<'a>(interfaces: &'a [Interface], name: &str) -> Option<&'a Interface> {
    interfaces
        .iter()
        .find(|i| i.names.name == name)
        .or_else(|| interfaces.iter().find(|i| i.names.alias == name))
}

/// IF-MIB ifOperStatus / ifAdminStatus `up(1)`; `down(2)` for admin.
const IF_UP: u64 = 1;
const IF_ADMIN_DOWN: u64 = 2;

struct NameCache {
    /// The interfaces polled, by index (values unset).
    rows: Vec<Interface>,
    if_number: Option<u64>,
    last_change: Option<u64>,
    fetched: Instant,
}

/// Polls one device, keeping what it learnt between polls.
pub struct DevicePoller {
    session: Session,
    settings: SnmpSettings,
    names: Option<NameCache>,
    /// sysUpTime and when it was read, from the last successful poll.
    last_uptime: Option<(u64, Instant)>,
}

impl DevicePoller {
    pub fn new(addr: SocketAddr, settings: SnmpSettings) -> Self {
        DevicePoller {
            session: Session::new(addr, settings.clone()),
            settings,
            names: None,
            last_uptime: None,
        }
    }

    pub async fn poll(&mut self) -> SnmpPoll {
        let at = Utc::now();
        let start = Instant::now();
        self.session.stats = WalkStats::default();
        let result = self.poll_inner().await;
        let rebooted = match &result {
            Ok((_, r)) => *r,
            Err(_) => false,
        };
        SnmpPoll {
            at,
            duration: start.elapsed(),
            result: result.map(|(s, _)| s),
            rebooted,
            non_increasing: self.session.stats.non_increasing,
            requests: self.session.stats.requests,
        }
    }

    /// Whether the agent answers now: one GET of sysUpTime (retried as
    /// any request), for a dependency check on demand.
    pub async fn check(&mut self) -> SnmpCheck {
        let at = Utc::now();
        self.session.stats = WalkStats::default();
        let result = self.session.get(&[SYS_UPTIME.to_vec()]).await.map(|_| ());
        SnmpCheck {
            at,
            result,
            requests: self.session.stats.requests,
        }
    }

    /// Read link ends now: ifOperStatus and ifAdminStatus of each end's
    /// interface, found by name in the interface table of the last poll
    /// (one GET for them all, not a whole poll). Before any poll has
    /// named the interfaces, an end is unknown.
    pub async fn read_ends(&mut self, device: &str, ends: &[EndQuery]) -> Vec<(usize, EndStatus)> {
        self.session.stats = WalkStats::default();
        // Not polled yet: name the interfaces first (a walk of the names).
        let mut failed = None;
        if self.names.is_none() && self.settings.modules.interfaces {
            match self.walk_names(None, None).await {
                Ok(cache) => self.names = Some(cache),
                Err(e) => failed = Some(e),
            }
        }
        let rows: Vec<Option<Interface>> = ends
            .iter()
            .map(|q| find_interface(&self.names.as_ref()?.rows, &q.interface).cloned())
            .collect();
        let not_polled = self.names.is_none();
        let mut oids: Vec<Arcs> = Vec::new();
        for r in rows.iter().flatten() {
            for col in [IF_OPER_STATUS, IF_ADMIN_STATUS] {
                let mut o = col.to_vec();
                o.push(r.index);
                oids.push(o);
            }
        }
        let got: Result<BTreeMap<Arcs, Val>, SnmpError> = if oids.is_empty() {
            Ok(BTreeMap::new())
        } else {
            self.session
                .get(&oids)
                .await
                .map(|v| v.into_iter().collect())
        };
        ends.iter()
            .zip(rows)
            .map(|(q, row)| {
                let unknown = |why| EndStatus::Unknown {
                    end: EndName {
                        device: device.to_string(),
                        interface: q.interface.clone(),
                        if_index: None,
                    },
                    why,
                };
                let status = match (&got, row, &failed) {
                    (_, None, Some(e)) => unknown(EndUnknown::PollFailed(e.clone())),
                    (_, None, None) if not_polled => unknown(EndUnknown::NotPolled),
                    (_, None, None) => end_status(device, &q.interface, None),
                    (Err(e), Some(_), _) => unknown(EndUnknown::PollFailed(e.clone())),
                    (Ok(vals), Some(mut r), _) => {
                        let v = |col: &[u64]| {
                            let mut o = col.to_vec();
                            o.push(r.index);
                            vals.get(&o).and_then(Val::as_u64)
                        };
                        r.values[6] = v(IF_OPER_STATUS);
                        r.values[7] = v(IF_ADMIN_STATUS);
                        end_status(device, &q.interface, Some(&r))
                    }
                };
                (q.end, status)
            })
            .collect()
    }

    async fn poll_inner(&mut self) -> Result<(DeviceSnapshot, bool), SnmpError> {
        let m = self.settings.modules;
        let mut scalars: Vec<&[u64]> = vec![SYS_UPTIME];
        if m.interfaces {
            scalars.extend([IF_NUMBER, IF_TABLE_LAST_CHANGE]);
        }
        if m.system {
            scalars.extend([SYS_NAME, SYS_DESCR, SYS_OBJECT_ID, SYS_LOCATION]);
        }
        let scalar_oids = scalars
            .iter()
            .map(|o| Oid::from(o).map_err(|_| SnmpError::Decode("bad OID".into())))
            .collect::<Result<Vec<_>, _>>()?;
        // When every interface is read, the scalars ride on the first
        // request of the interface walk (which starts at the columns'
        // roots whatever the name cache says): one round trip fewer.
        let walk_all = m.interfaces && self.settings.interfaces.is_empty();
        let cached = self.names.as_ref().map_or(0, |c| c.rows.len());
        let mut walk = Walk::new(if walk_all { &IF_POLL_COLUMNS } else { &[] }, cached)?;
        let vals = self.session.walk_request(&mut walk, &scalar_oids).await?;
        let value = |o: &[u64]| {
            scalars
                .iter()
                .position(|s| *s == o)
                .and_then(|k| vals.get(k))
                .cloned()
                .unwrap_or(Val::Missing)
        };
        let uptime = value(SYS_UPTIME)
            .as_u64()
            .ok_or_else(|| SnmpError::Decode("no sysUpTime".into()))?;
        let now = Instant::now();
        let rebooted = self
            .last_uptime
            .is_some_and(|(prev, then)| went_back(prev, uptime, now.duration_since(then)));
        let mut snap = DeviceSnapshot {
            uptime_ticks: uptime,
            ..Default::default()
        };
        if m.system {
            snap.system = Some(SystemInfo {
                name: value(SYS_NAME).as_text(),
                descr: value(SYS_DESCR).as_text(),
                object_id: value(SYS_OBJECT_ID).as_text(),
                location: value(SYS_LOCATION).as_text(),
            });
        }
        if m.interfaces {
            let if_number = value(IF_NUMBER).as_u64();
            let last_change = value(IF_TABLE_LAST_CHANGE).as_u64();
            let stale = match &self.names {
                None => true,
                Some(c) => {
                    rebooted
                        || c.if_number != if_number
                        || c.last_change != last_change
                        || c.fetched.elapsed() > NAME_CACHE_MAX_AGE
                }
            };
            if stale {
                self.names = Some(self.walk_names(if_number, last_change).await?);
            }
            snap.interfaces = if walk_all {
                self.walk_interfaces(walk).await?
            } else {
                self.get_interfaces().await?
            };
        }
        if m.host_resources {
            let cols = self.session.walk_columns(&[HR_PROCESSOR_LOAD], 0).await?;
            snap.processors = cols[0]
                .iter()
                .filter_map(|(i, v)| Some((i.to_string(), v.as_i64()?)))
                .collect();
            let cols = self
                .session
                .walk_columns(
                    &[
                        HR_STORAGE_DESCR,
                        HR_STORAGE_UNITS,
                        HR_STORAGE_SIZE,
                        HR_STORAGE_USED,
                    ],
                    0,
                )
                .await?;
            let mut rows: BTreeMap<u64, Storage> = BTreeMap::new();
            for (c, col) in cols.iter().enumerate() {
                for &(idx, ref v) in col {
                    let r = rows.entry(idx).or_insert_with(|| Storage {
                        index: idx,
                        index_label: idx.to_string(),
                        ..Default::default()
                    });
                    match c {
                        0 => r.descr = v.as_text(),
                        1 => r.allocation_units = v.as_u64().unwrap_or(0),
                        2 => r.size = v.as_u64().unwrap_or(0),
                        _ => r.used = v.as_u64().unwrap_or(0),
                    }
                }
            }
            snap.storage = rows.into_values().collect();
        }
        if !self.settings.custom.is_empty() {
            let oids: Vec<Arcs> = self.settings.custom.iter().map(|c| c.oid.clone()).collect();
            let mut got: BTreeMap<Arcs, Val> = BTreeMap::new();
            for chunk in oids.chunks(GET_BATCH) {
                got.extend(self.session.get(chunk).await?);
            }
            for c in &self.settings.custom {
                let v = got.get(&c.oid).and_then(|v| match v {
                    Val::Counter64(x) if c.kind == CustomKind::Counter => Some(wrap53(*x)),
                    v => v.as_i64().map(|i| i as f64),
                });
                if let Some(v) = v {
                    snap.custom.push((c.clone(), v));
                }
            }
        }
        self.last_uptime = Some((uptime, now));
        Ok((snap, rebooted))
    }

    async fn walk_names(
        &mut self,
        if_number: Option<u64>,
        last_change: Option<u64>,
    ) -> Result<NameCache, SnmpError> {
        let cols = self
            .session
            .walk_columns(
                &[IF_DESCR, IF_TYPE, IF_NAME, IF_ALIAS],
                if_number.map_or(0, |n| n as usize),
            )
            .await?;
        let mut names: BTreeMap<u64, IfNames> = BTreeMap::new();
        for (c, col) in cols.iter().enumerate() {
            for &(idx, ref v) in col {
                let r = names.entry(idx).or_insert_with(|| IfNames {
                    index_label: idx.to_string(),
                    ..Default::default()
                });
                match c {
                    0 => r.descr = v.as_text(),
                    1 => r.if_type = v.as_u64(),
                    2 => r.name = v.as_text(),
                    _ => r.alias = v.as_text(),
                }
            }
        }
        let filter = &self.settings.interfaces;
        let rows = names
            .into_iter()
            .filter(|(_, r)| {
                filter.admits(
                    &r.name,
                    &r.alias,
                    r.if_type.and_then(|t| u32::try_from(t).ok()),
                )
            })
            .map(|(index, names)| Interface {
                index,
                names: Arc::new(names),
                values: [None; 9],
            })
            .collect();
        Ok(NameCache {
            rows,
            if_number,
            last_change,
            fetched: Instant::now(),
        })
    }

    /// The counters and states of every interface: the rest of `walk`
    /// (begun with the poll's scalars), up to the last interface named.
    async fn walk_interfaces(&mut self, mut walk: Walk) -> Result<Vec<Interface>, SnmpError> {
        let cached = self.names.as_ref().map_or(&[][..], |c| &c.rows[..]);
        if let Some(last) = cached.last() {
            walk.bound(last.index, cached.len());
        }
        self.session.walk_rest(&mut walk).await?;
        let mut rows = self
            .names
            .as_ref()
            .map_or_else(Vec::new, |c| c.rows.clone());
        for (c, col) in walk.out.iter().enumerate() {
            for (i, v) in col {
                if let Some(r) = row_mut(&mut rows, *i) {
                    r.values[c] = value_of(c, v);
                }
            }
        }
        Ok(rows)
    }

    /// The counters and states of the interfaces a filter selected: GETs
    /// for just their rows (a 500-port chassis is not walked whole).
    async fn get_interfaces(&mut self) -> Result<Vec<Interface>, SnmpError> {
        let Some(cache) = &self.names else {
            return Ok(Vec::new());
        };
        let mut rows = cache.rows.clone();
        let wanted: Vec<(usize, u64, Arcs)> = rows
            .iter()
            .map(|r| r.index)
            .flat_map(|i| {
                IF_POLL_COLUMNS.iter().enumerate().map(move |(c, col)| {
                    let mut o = col.to_vec();
                    o.push(i);
                    (c, i, o)
                })
            })
            .collect();
        for chunk in wanted.chunks(GET_BATCH) {
            let oids: Vec<Arcs> = chunk.iter().map(|(_, _, o)| o.clone()).collect();
            let got: BTreeMap<Arcs, Val> = self.session.get(&oids).await?.into_iter().collect();
            for (c, i, o) in chunk {
                if let (Some(v), Some(r)) = (got.get(o), row_mut(&mut rows, *i)) {
                    r.values[*c] = value_of(*c, v);
                }
            }
        }
        Ok(rows)
    }
}

/// The row of interface `index` in `rows` (sorted by index).
fn row_mut(rows: &mut [Interface], index: u64) -> Option<&mut Interface> {
    let k = rows.binary_search_by_key(&index, |r| r.index).ok()?;
    rows.get_mut(k)
}

fn value_of(column: usize, v: &Val) -> Option<u64> {
    match v {
        Val::Counter64(x) if IF_METRICS[column].1 => Some(wrap53(*x) as u64),
        v => v.as_u64(),
    }
}

/// Counter64 values are reduced modulo 2^53, as snmp_exporter does by
/// default: every value below 2^53 is exact in a float64, and `rate()`
/// reads the wrap as one counter reset.
pub fn wrap53(x: u64) -> f64 {
    (x % (1u64 << 53)) as f64
}

/// Whether sysUpTime went back between two reads `elapsed` apart: a
/// reboot (or an agent restart). A 32-bit wrap is not: the old value plus
/// the elapsed time must have passed 2^32.
pub fn went_back(prev: u64, now: u64, elapsed: Duration) -> bool {
    if now >= prev {
        return false;
    }
    let expected = prev + (elapsed.as_millis() as u64) / 10;
    // Allow a minute of clock slack around the wrap.
    expected + 6_000 < TICKS_WRAP
}

/// The SNMP prober of one device: its scheduled poll, a light check on
/// demand, and reads of link ends on it. The session is rebuilt when the
/// device's address changes.
pub struct SnmpProber {
    target: String,
    settings: SnmpSettings,
    poller: Option<(std::net::IpAddr, DevicePoller)>,
}

impl SnmpProber {
    pub fn new(target: &str, settings: SnmpSettings) -> Self {
        SnmpProber {
            target: target.to_string(),
            settings,
            poller: None,
        }
    }
}

impl Prober for SnmpProber {
    fn kind(&self) -> ProbeKind {
        ProbeKind::Snmp
    }

    async fn run(&mut self, ip: std::net::IpAddr, request: Request) -> Vec<Observation> {
        if self.poller.as_ref().is_none_or(|(p, _)| *p != ip) {
            let addr = SocketAddr::new(ip, self.settings.port);
            self.poller = Some((ip, DevicePoller::new(addr, self.settings.clone())));
        }
        let Some((_, device)) = self.poller.as_mut() else {
            return Vec::new();
        };
        let on_demand = request != Request::Cycle;
        let observe = |target: &str, outcome| Observation {
            target: target.to_string(),
            on_demand,
            outcome,
        };
        match request {
            Request::Cycle => vec![observe(&self.target, Outcome::Snmp(device.poll().await))],
            Request::Check => vec![observe(
                &self.target,
                Outcome::SnmpCheck(device.check().await),
            )],
            Request::ReadEnds(ends) => {
                let at = Utc::now();
                let read = device.read_ends(&self.target, &ends).await;
                ends.iter()
                    .zip(read)
                    .map(|(q, (end, status))| {
                        observe(&q.link, Outcome::LinkEnd { at, end, status })
                    })
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn no_socket_here_is_local_not_the_device() {
        let emfile = std::io::Error::from_raw_os_error(24);
        assert!(matches!(socket_error(&emfile), SnmpError::Local(_)));
        let unreachable = std::io::Error::from_raw_os_error(101);
        assert!(matches!(socket_error(&unreachable), SnmpError::Io(_)));
    }

    use super::*;

    #[test]
    fn uptime_going_back_is_a_reboot_but_a_wrap_is_not() {
        let min = Duration::from_secs(60);
        assert!(!went_back(1000, 7000, min));
        assert!(went_back(500_000, 100, min));
        // 2^32 - 1000 ticks, a minute later reads 5000: wrapped.
        assert!(!went_back(TICKS_WRAP - 1000, 5000, min));
    }

    #[test]
    fn counter64_wraps_at_2_pow_53() {
        assert_eq!(wrap53(5), 5.0);
        assert_eq!(wrap53((1 << 53) + 7), 7.0);
        assert_eq!(wrap53(u64::MAX), ((1u64 << 53) - 1) as f64);
    }

    #[test]
    fn a_walk_steps_by_arcs_not_by_encoded_bytes() {
        let root: Arcs = vec![1, 3, 6, 1, 2, 1, 2, 2, 1, 10];
        let oid = |tail: &[u64]| {
            let mut a = root.clone();
            a.extend_from_slice(tail);
            Oid::from(&a).expect("an OID")
        };
        let r = Oid::from(&root).expect("an OID");
        // The first row, after the root itself.
        assert_eq!(step(&r, r.as_bytes(), &oid(&[2])), Step::Row(2));
        // 16,384 is encoded 81 80 00: after 16,383 (FF 7F) though its
        // first byte is smaller.
        let c = oid(&[16_383]);
        assert_eq!(step(&r, c.as_bytes(), &oid(&[16_384])), Step::Row(16_384));
        assert_eq!(
            step(&r, c.as_bytes(), &oid(&[1_000_001])),
            Step::Row(1_000_001)
        );
        let c = oid(&[16_384]);
        assert_eq!(step(&r, c.as_bytes(), &oid(&[16_383])), Step::Back);
        assert_eq!(step(&r, c.as_bytes(), &oid(&[16_384])), Step::Back);
        // A longer row under a smaller one still goes forward.
        let c = oid(&[5]);
        assert_eq!(step(&r, c.as_bytes(), &oid(&[5, 1])), Step::Row(1));
        // The next column (…10 → …11), and the root itself, end it.
        let next = Oid::from(&[1, 3, 6, 1, 2, 1, 2, 2, 1, 11, 1]).expect("an OID");
        assert_eq!(step(&r, c.as_bytes(), &next), Step::Leaves);
        assert_eq!(step(&r, c.as_bytes(), &r), Step::Back);
        // Arc 129 (81 01) ends with the byte of arc 1: not under …6.1.
        let one = Oid::from(&[1, 3, 6, 1]).expect("an OID");
        let other = Oid::from(&[1, 3, 6, 129, 5]).expect("an OID");
        assert_eq!(step(&one, one.as_bytes(), &other), Step::Leaves);
    }

    #[test]
    fn a_walk_asks_for_the_rows_it_still_expects() {
        let mut w = Walk::new(&IF_POLL_COLUMNS, 0).expect("a walk");
        w.active.extend(0..9);
        // Nothing known: max_repetitions, within about ten times it in
        // varbinds in all (9 columns × 25 = 225 < 250).
        assert_eq!(w.reps(25), 25);
        // 49 rows expected, the last unknown: one more to see each end.
        w.hint = 49;
        assert_eq!(w.reps(100), 50);
        for col in &mut w.out {
            col.extend((1..=44).map(|i| (i, Val::Missing)));
        }
        assert_eq!(w.reps(25), 6);
        // The last row known (index 49): five rows, no look past it.
        w.bound(49, 49);
        assert_eq!(w.reps(25), 5);
        assert!(!w.done.contains(&true));
        // A column already at the last row is finished.
        w.out[3].push((49, Val::Missing));
        w.bound(49, 49);
        assert!(w.done[3] && !w.done[2]);
        // More rows than expected: the hint was wrong, ask for the most.
        for col in &mut w.out {
            col.extend((50..60).map(|i| (i, Val::Missing)));
        }
        assert_eq!(w.reps(25), 25);
    }

    #[test]
    fn a_scalar_is_asked_as_the_next_oid_after_its_parent() {
        let up = Oid::from(SYS_UPTIME).expect("an OID");
        let p = parent(&up).expect("a parent");
        assert_eq!(arcs(&p), vec![1, 3, 6, 1, 2, 1, 1, 3]);
    }

    #[test]
    fn oid_order_is_vec_order() {
        let a: Arcs = vec![1, 3, 6, 1, 2, 1, 2, 2, 1, 2, 9];
        let b: Arcs = vec![1, 3, 6, 1, 2, 1, 2, 2, 1, 2, 10];
        assert!(a < b);
        assert!(b.starts_with(IF_DESCR));
    }
}
