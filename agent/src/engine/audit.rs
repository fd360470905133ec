//! The audit trail: every operation on a repository appends a record naming the record
//! before it (`audit/<id>`, format in `arka_proto::audit`), and `verify_chain` checks that
//! nothing was altered, removed or reordered.
//!
//! Appending costs one listing plus the download of records this machine has not seen: a
//! small local memory (`audit-*.cbor` in the cache directory) maps the IDs of records
//! already checked to their sequence numbers. The memory is a hint for speed, but it is
//! also evidence: IDs are never dropped from it, so a record this machine once saw that
//! later disappears (the newest one included) is reported by `verify_chain`.
//!
//! Concurrent appenders can both extend the same record (a fork). That is not tampering:
//! the next append continues from the record with the highest sequence number (ties broken
//! by ID) and verification reports the fork as a warning.

mod pending;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use arka_proto::audit::{self as format, AuditRecord};
use arka_proto::ObjectId;
pub use arka_proto::Operation;

use crate::error::{Error, Result};
use crate::repo::{check_object_id, Repository};
use crate::store::{Location, ObjectKind};

/// How many records to fetch at once.
const LOAD_CONCURRENCY: usize = 8;
/// How long `Entry::record` waits for the store before giving up on the record.
const RECORD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// How far a record's time may lie before its predecessor's (clocks of different hosts
/// disagree a little) before verification calls it a problem.
pub const CLOCK_TOLERANCE_NS: i64 = 15 * 60 * 1_000_000_000;

/// Who ran an operation, as its audit record names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub host: String,
    pub user: String,
}

impl Actor {
    /// A person at the command line: this machine's host name and their OS user.
    pub fn cli() -> Self {
        Self { host: crate::platform::hostname(), user: crate::platform::username() }
    }

    /// The agent service: the host name its configuration gives, and the user `service`.
    pub fn service(hostname: &str) -> Self {
        Self { host: hostname.to_string(), user: "service".to_string() }
    }
}

/// One operation to record. Build it, then `append` (errors returned) or `record`
/// (errors logged: a successful operation never fails because its record could not be
/// written).
#[derive(Clone, Debug)]
pub struct Entry {
    operation: Operation,
    snapshots: Vec<ObjectId>,
    counts: BTreeMap<String, u64>,
    detail: Option<String>,
    cache_dir: Option<PathBuf>,
    actor: Option<Actor>,
}

impl Entry {
    pub fn new(operation: Operation) -> Self {
        Self { operation, snapshots: Vec::new(), counts: BTreeMap::new(), detail: None, cache_dir: None, actor: None }
    }

    pub fn snapshots(mut self, ids: impl IntoIterator<Item = ObjectId>) -> Self {
        self.snapshots.extend(ids);
        self
    }

    pub fn count(mut self, name: &str, n: u64) -> Self {
        self.counts.insert(name.to_string(), n);
        self
    }

    /// A short note. Never put a file name here: records are readable with the agent key.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Where the local memory lives (default: `backup::default_cache_dir()`).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Who ran it (default: `Actor::cli()`).
    pub fn by(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Appends the record after the current head; returns its ID.
    pub async fn append(self, repo: &Repository) -> Result<ObjectId> {
        let cache_dir = self.cache_dir.clone().unwrap_or_else(crate::engine::backup::default_cache_dir);
        let memory_file = memory_path(&cache_dir, repo);
        let mut memory = LocalMemory::load(&memory_file);
        let head = find_head(repo, &mut memory).await?;
        // Records earlier operations could not write go first, in the order they happened.
        let head = match pending::write_kept(repo, &pending::path(&memory_file), &mut memory, head).await {
            Ok(head) => head,
            Err(e) => {
                // Some may have been written: remember them.
                if let Err(e) = memory.save(&memory_file) {
                    tracing::warn!("could not save the audit memory: {e}");
                }
                return Err(e);
            }
        };
        let record = self.into_record(head);
        let id = repo.put_object(ObjectKind::Audit, record.encode(repo.key.meta_key())?).await?;
        memory.known.insert(id, record.seq);
        if let Err(e) = memory.save(&memory_file) {
            tracing::warn!("could not save the audit memory: {e}");
        }
        Ok(id)
    }

    /// Like `append`, but a failure is only logged (no secrets, no file names) and the
    /// record is kept on this machine, to be written before the next one; a store that
    /// stopped answering delays the finished operation by at most `RECORD_TIMEOUT`.
    pub async fn record(self, repo: &Repository) -> Option<ObjectId> {
        let kept = self.clone();
        let why = match tokio::time::timeout(RECORD_TIMEOUT, self.append(repo)).await {
            Ok(Ok(id)) => return Some(id),
            Ok(Err(e)) => reason(&e),
            Err(_) => format!("the store did not answer for {} s", RECORD_TIMEOUT.as_secs()),
        };
        let cache_dir = kept.cache_dir.clone().unwrap_or_else(crate::engine::backup::default_cache_dir);
        let saved = pending::keep(&pending::path(&memory_path(&cache_dir, repo)), &kept);
        tracing::warn!("{}", pending::unwritten_message(&kept, &why, saved));
        None
    }

    /// The record that follows `head`, cut to the format's limits.
    fn into_record(self, head: Option<(u64, ObjectId)>) -> AuditRecord {
        let actor = self.actor.unwrap_or_else(Actor::cli);
        let mut counts = self.counts;
        let mut snapshots = self.snapshots;
        if snapshots.len() > format::MAX_SNAPSHOTS {
            counts.insert("snapshots_total".into(), snapshots.len() as u64);
            snapshots.truncate(format::MAX_SNAPSHOTS);
        }
        counts.retain(|k, _| !k.is_empty() && k.len() <= format::MAX_COUNT_NAME_LEN);
        while counts.len() > format::MAX_COUNTS {
            counts.pop_last();
        }
        AuditRecord {
            seq: head.map_or(0, |(seq, _)| seq + 1),
            prev: head.map(|(_, id)| id),
            time_ns: jiff::Timestamp::now().as_nanosecond() as i64,
            host: cut(actor.host, format::MAX_NAME_LEN),
            user: cut(actor.user, format::MAX_NAME_LEN),
            operation: self.operation,
            snapshots,
            counts,
            detail: self.detail.map(|d| cut(d, format::MAX_DETAIL_LEN)),
            program: format!("arka {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Why a record could not be written, without the advice of a failed backup ("nothing was
/// committed"): the operation it records did commit.
fn reason(e: &Error) -> String {
    match e {
        Error::Store { op, key, source, .. } => format!("{op} {key}: {}", crate::error::store_reason(source)),
        e => e.to_string(),
    }
}

/// Cuts `s` to at most `max` bytes, at a character boundary.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The current head (highest seq, then highest ID) among the records that authenticate.
/// Lists once and downloads only records `memory` does not know, adding them to it.
async fn find_head(repo: &Repository, memory: &mut LocalMemory) -> Result<Option<(u64, ObjectId)>> {
    let detailed = repo.store.list_detailed(ObjectKind::Audit).await?;
    let stored: HashMap<ObjectId, i64> = detailed.iter().map(|l| (l.id, l.stored_at_ns)).collect();
    let listed: HashSet<ObjectId> = stored.keys().copied().collect();
    let vanished = memory.known.keys().filter(|id| !listed.contains(id)).count();
    if vanished > 0 {
        tracing::warn!("{vanished} audit records seen before are gone from the repository; run `arka audit verify`");
    }
    let unknown: Vec<ObjectId> = listed.iter().filter(|id| !memory.known.contains_key(id)).copied().collect();
    let fetched: Vec<(ObjectId, Option<AuditRecord>)> = futures::stream::iter(unknown)
        .map(|id| {
            let at = stored.get(&id).copied();
            async move { Ok::<_, Error>((id, readable(load_record_at(repo, id, at).await, &id)?)) }
        })
        .buffer_unordered(LOAD_CONCURRENCY)
        .try_collect()
        .await?;
    for (id, record) in fetched {
        if let Some(r) = record {
            memory.known.insert(id, r.seq);
        }
    }
    Ok(listed.iter().filter_map(|id| memory.known.get(id).map(|&seq| (seq, *id))).max())
}

/// A damaged or forged record is `None` (never chained onto); a storage failure is an error.
fn readable(result: Result<AuditRecord>, id: &ObjectId) -> Result<Option<AuditRecord>> {
    match result {
        Ok(r) => Ok(Some(r)),
        Err(e @ (Error::Corrupt { .. } | Error::Format(_))) => {
            tracing::warn!("audit record {} is unreadable ({e}); not appending after it", id.short());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Reads, checks and opens one record.
pub async fn load_record(repo: &Repository, id: ObjectId) -> Result<AuditRecord> {
    load_record_at(repo, id, None).await
}

/// Like `load_record`, given when the store recorded it (from a listing): a record a
/// retired agent key wrote after its retirement is refused (`repo::retired`).
async fn load_record_at(repo: &Repository, id: ObjectId, stored_at_ns: Option<i64>) -> Result<AuditRecord> {
    let key = ObjectKind::Audit.key(&id);
    let bytes = repo.store.get(&key).await?;
    check_object_id(&key, &id, &bytes)?;
    repo.open_meta(ObjectKind::Audit, &id, stored_at_ns, |k| AuditRecord::decode(k, &bytes)).await
}

/// Every record under `audit/`, read and checked.
#[derive(Debug, Default)]
pub struct AuditLog {
    /// Records that authenticate, sorted by (seq, time, ID).
    pub records: Vec<(ObjectId, AuditRecord)>,
    /// Objects that are damaged, altered or do not authenticate, with the reason.
    pub unreadable: Vec<(ObjectId, String)>,
}

/// Reads every audit record. Damaged ones are collected, not fatal; a storage failure is.
pub async fn load_all(repo: &Repository) -> Result<AuditLog> {
    let listed = repo.store.list_detailed(ObjectKind::Audit).await?;
    let results: Vec<(ObjectId, Result<AuditRecord>)> = futures::stream::iter(listed)
        .map(|l| async move { (l.id, load_record_at(repo, l.id, Some(l.stored_at_ns)).await) })
        .buffer_unordered(LOAD_CONCURRENCY)
        .collect()
        .await;
    let mut log = AuditLog::default();
    for (id, result) in results {
        match result {
            Ok(r) => log.records.push((id, r)),
            Err(Error::Corrupt { reason, .. }) => log.unreadable.push((id, reason)),
            Err(Error::Format(e)) => log.unreadable.push((id, e.to_string())),
            Err(e) => return Err(e),
        }
    }
    log.records.sort_by_key(|(id, r)| (r.seq, r.time_ns, *id));
    log.unreadable.sort_by_key(|(id, _)| *id);
    Ok(log)
}

/// What this machine remembers of one repository's audit records: ID → seq of every
/// record it wrote or checked. IDs are never removed (see the module comment).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LocalMemory {
    pub known: BTreeMap<ObjectId, u64>,
}

impl LocalMemory {
    /// A missing or unreadable file is an empty memory.
    pub fn load(path: &Path) -> Self {
        crate::repo::local_state::load(path)
    }

    /// Saves, merged with what is on disk now, so concurrent runs lose nothing.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut merged = Self::load(path);
        merged.known.extend(self.known.iter().map(|(id, seq)| (*id, *seq)));
        crate::repo::local_state::save(path, &merged)
    }
}

/// The memory file of `repo` as reached at its current location: one per repository and
/// location, since a copy made by `arka sync` may rightly lag behind its source.
pub fn memory_path(cache_dir: &Path, repo: &Repository) -> PathBuf {
    let location = match Location::parse(&repo.store.display) {
        Ok(Location::Local(p)) => format!("file://{}", std::path::absolute(&p).unwrap_or(p).display()),
        Ok(Location::S3 { bucket, prefix }) => format!("s3://{bucket}/{prefix}"),
        Ok(Location::Server { base, repo }) => format!("arka+{base}/{repo}"),
        Err(_) => repo.store.display.clone(),
    };
    let h = blake3::hash(location.as_bytes());
    cache_dir.join(repo.config.repo_id.to_hex()).join(format!("audit-{}.cbor", &h.to_hex()[..16]))
}

/// One problem or warning, naming the record it is about when there is one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The record's ID (64 hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub message: String,
}

impl Finding {
    fn about(id: &ObjectId, seq: Option<u64>, message: String) -> Self {
        Self { record: Some(id.to_hex()), seq, message }
    }

    fn general(message: String) -> Self {
        Self { record: None, seq: None, message }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.record, self.seq) {
            (Some(id), Some(seq)) => write!(f, "record {} (seq {seq}): {}", &id[..8], self.message),
            (Some(id), None) => write!(f, "record {}: {}", &id[..8], self.message),
            _ => f.write_str(&self.message),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ChainReport {
    /// Records that authenticate.
    pub records: usize,
    pub head_seq: Option<u64>,
    pub head_id: Option<String>,
    /// Tampering or damage: the chain is not intact.
    pub problems: Vec<Finding>,
    /// Not tampering (forks from concurrent writers), but worth knowing.
    pub warnings: Vec<Finding>,
}

impl ChainReport {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the chain: every record authenticates and matches its name; exactly one chain
/// start; every `prev` exists with seq one less and a time not much later; no seq is
/// missing; and nothing `remembered` (ID → seq, this machine's memory) has disappeared.
pub fn verify_chain(log: &AuditLog, remembered: &BTreeMap<ObjectId, u64>) -> ChainReport {
    let mut report = ChainReport { records: log.records.len(), ..Default::default() };
    let by_id: HashMap<ObjectId, &AuditRecord> = log.records.iter().map(|(id, r)| (*id, r)).collect();
    let damaged: HashSet<ObjectId> = log.unreadable.iter().map(|(id, _)| *id).collect();
    for (id, reason) in &log.unreadable {
        report.problems.push(Finding::about(id, None, format!("altered or damaged: {reason}")));
    }
    if let Some((id, r)) = log.records.iter().max_by_key(|(id, r)| (r.seq, *id)) {
        report.head_seq = Some(r.seq);
        report.head_id = Some(id.to_hex());
    }
    check_links(log, &by_id, &damaged, &mut report);
    check_seq_gaps(log, &mut report);
    check_forks(log, &mut report);
    check_remembered(remembered, &by_id, &damaged, report.head_seq, &mut report.problems);
    report
}

/// The start of the chain, and each record against the one it names as previous.
fn check_links(
    log: &AuditLog,
    by_id: &HashMap<ObjectId, &AuditRecord>,
    damaged: &HashSet<ObjectId>,
    report: &mut ChainReport,
) {
    let starts: Vec<&ObjectId> = log.records.iter().filter(|(_, r)| r.prev.is_none()).map(|(id, _)| id).collect();
    if starts.is_empty() && !log.records.is_empty() {
        report.problems.push(Finding::general(
            "the first record (seq 0) is missing or damaged: records were removed or altered".into(),
        ));
    }
    if starts.len() > 1 {
        let names: Vec<String> = starts.iter().map(|id| id.short()).collect();
        report.warnings.push(Finding::general(format!(
            "{} first records ({}): written concurrently when the repository was new",
            starts.len(),
            names.join(", ")
        )));
    }
    for (id, r) in &log.records {
        let Some(prev) = r.prev else { continue };
        let Some(p) = by_id.get(&prev) else {
            let why = if damaged.contains(&prev) {
                format!("follows record {}, which is altered or damaged", prev.short())
            } else {
                format!("the record before it ({}) is missing: records were removed", prev.short())
            };
            report.problems.push(Finding::about(id, Some(r.seq), why));
            continue;
        };
        if r.seq != p.seq.wrapping_add(1) {
            report.problems.push(Finding::about(
                id,
                Some(r.seq),
                format!("follows record {} with seq {}: sequence numbers do not match", prev.short(), p.seq),
            ));
        }
        if r.time_ns < p.time_ns.saturating_sub(CLOCK_TOLERANCE_NS) {
            let minutes = (p.time_ns - r.time_ns) / 60_000_000_000;
            report.problems.push(Finding::about(
                id,
                Some(r.seq),
                format!(
                    "its time is {minutes} min before that of the record it follows ({}): \
                     forged, or the clock of {} went back",
                    prev.short(),
                    r.host
                ),
            ));
        }
    }
}

/// Every seq from 0 to the highest must be present.
fn check_seq_gaps(log: &AuditLog, report: &mut ChainReport) {
    let mut expected = 0u64;
    let mut seqs: Vec<u64> = log.records.iter().map(|(_, r)| r.seq).collect();
    seqs.dedup();
    for seq in seqs {
        if seq > expected {
            let range = if seq - 1 == expected { format!("{expected}") } else { format!("{expected} to {}", seq - 1) };
            report.problems.push(Finding::general(format!(
                "no readable record with seq {range}: records were removed or altered"
            )));
        }
        expected = seq.saturating_add(1);
    }
}

/// Records sharing a predecessor: concurrent writers, not tampering.
fn check_forks(log: &AuditLog, report: &mut ChainReport) {
    let mut children: BTreeMap<ObjectId, Vec<&ObjectId>> = BTreeMap::new();
    for (id, r) in &log.records {
        if let Some(prev) = r.prev {
            children.entry(prev).or_default().push(id);
        }
    }
    for (prev, kids) in children.iter().filter(|(_, k)| k.len() > 1) {
        let names: Vec<String> = kids.iter().map(|id| id.short()).collect();
        report.warnings.push(Finding::about(
            prev,
            None,
            format!(
                "fork: {} records follow it ({}), written concurrently; the chain continues from the one with the highest seq",
                kids.len(),
                names.join(", ")
            ),
        ));
    }
}

/// Records this machine saw before must still be there.
fn check_remembered(
    remembered: &BTreeMap<ObjectId, u64>,
    by_id: &HashMap<ObjectId, &AuditRecord>,
    damaged: &HashSet<ObjectId>,
    head_seq: Option<u64>,
    problems: &mut Vec<Finding>,
) {
    let gone: Vec<(&ObjectId, u64)> = remembered
        .iter()
        .filter(|(id, _)| !by_id.contains_key(id) && !damaged.contains(id))
        .map(|(id, seq)| (id, *seq))
        .collect();
    for (id, seq) in gone {
        let from_end = head_seq.is_none_or(|head| seq > head);
        let message = if from_end {
            format!(
                "this machine saw this record before and it is gone; the newest record now has {}: \
                 records were removed from the end",
                head_seq.map_or("no seq (none left)".to_string(), |s| format!("seq {s}"))
            )
        } else {
            "this machine saw this record before and it is gone: records were removed".to_string()
        };
        problems.push(Finding::about(id, Some(seq), message));
    }
}

/// Loads every record, checks the chain against this machine's memory, then remembers the
/// records that authenticate (so their later removal is detected).
pub async fn verify(repo: &Repository, cache_dir: &Path) -> Result<(AuditLog, ChainReport)> {
    let memory_file = memory_path(cache_dir, repo);
    let mut memory = LocalMemory::load(&memory_file);
    let log = load_all(repo).await?;
    let report = verify_chain(&log, &memory.known);
    memory.known.extend(log.records.iter().map(|(id, r)| (*id, r.seq)));
    if let Err(e) = memory.save(&memory_file) {
        tracing::warn!("could not save the audit memory: {e}");
    }
    Ok((log, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;

    fn rec(seq: u64, prev: Option<ObjectId>, time_ns: i64) -> AuditRecord {
        AuditRecord {
            seq,
            prev,
            time_ns,
            host: "h".into(),
            user: "u".into(),
            operation: Operation::Backup,
            snapshots: vec![],
            counts: BTreeMap::new(),
            detail: None,
            program: "test".into(),
        }
    }

    fn id(n: u8) -> ObjectId {
        ObjectId([n; 32])
    }

    /// A straight chain of `n` records with IDs 1..=n, one minute apart.
    fn chain(n: u8) -> AuditLog {
        let records = (1..=n).map(|i| (id(i), rec(i as u64 - 1, (i > 1).then(|| id(i - 1)), i as i64 * MIN))).collect();
        AuditLog { records, unreadable: vec![] }
    }

    fn messages(findings: &[Finding]) -> String {
        findings.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn an_intact_chain_has_no_findings() {
        let report = verify_chain(&chain(5), &BTreeMap::new());
        assert!(report.is_intact() && report.warnings.is_empty(), "{report:?}");
        assert_eq!((report.records, report.head_seq), (5, Some(4)));
        assert!(verify_chain(&AuditLog::default(), &BTreeMap::new()).is_intact());
    }

    #[test]
    fn a_removed_middle_record_is_named() {
        let mut log = chain(5);
        log.records.remove(2);
        let report = verify_chain(&log, &BTreeMap::new());
        let text = messages(&report.problems);
        assert!(text.contains(&format!("record {} (seq 3)", &id(4).to_hex()[..8])), "{text}");
        assert!(text.contains("no readable record with seq 2"), "{text}");
    }

    #[test]
    fn a_removed_first_record_is_a_problem() {
        let mut log = chain(3);
        log.records.remove(0);
        assert!(messages(&verify_chain(&log, &BTreeMap::new()).problems).contains("first record"));
    }

    #[test]
    fn removal_from_the_end_needs_the_memory() {
        let full = chain(4);
        let remembered: BTreeMap<ObjectId, u64> = full.records.iter().map(|(id, r)| (*id, r.seq)).collect();
        let mut log = full;
        log.records.pop();
        assert!(verify_chain(&log, &BTreeMap::new()).is_intact(), "without memory the end looks intact");
        let report = verify_chain(&log, &remembered);
        assert_eq!(report.problems.len(), 1, "{report:?}");
        assert_eq!(report.problems[0].record, Some(id(4).to_hex()));
        assert!(report.problems[0].message.contains("removed from the end"));
    }

    #[test]
    fn a_fork_is_a_warning_and_the_head_is_the_highest_seq() {
        let mut log = chain(3);
        log.records.push((id(9), rec(2, Some(id(2)), 3 * MIN)));
        log.records.push((id(10), rec(3, Some(id(9)), 4 * MIN)));
        let report = verify_chain(&log, &BTreeMap::new());
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.warnings.len(), 1);
        assert!(report.warnings[0].message.contains("fork"));
        assert_eq!(report.head_id, Some(id(10).to_hex()));
    }

    #[test]
    fn damaged_records_mismatched_seqs_and_clocks_going_back_are_problems() {
        let mut log = chain(5);
        log.unreadable.push((id(2), "content does not match its hash".into()));
        log.records.remove(1);
        log.records[2].1.seq = 7;
        log.records[3].1.time_ns = -100 * MIN;
        let report = verify_chain(&log, &BTreeMap::new());
        let text = messages(&report.problems);
        assert!(text.contains("altered or damaged"), "{text}");
        assert!(text.contains("which is altered or damaged"), "{text}");
        assert!(text.contains("sequence numbers do not match"), "{text}");
        assert!(text.contains("clock of h went back"), "{text}");
        let mut small_skew = chain(3);
        small_skew.records[2].1.time_ns = small_skew.records[1].1.time_ns - 5 * MIN;
        assert!(verify_chain(&small_skew, &BTreeMap::new()).is_intact());
    }

    #[test]
    fn records_are_cut_to_the_format_limits() {
        let mut e = Entry::new(Operation::Forget).detail("x".repeat(format::MAX_DETAIL_LEN + 10));
        e.snapshots = vec![id(1); format::MAX_SNAPSHOTS + 1];
        let r = e.into_record(Some((4, id(3))));
        assert_eq!((r.seq, r.prev), (5, Some(id(3))));
        assert_eq!(r.counts["snapshots_total"], format::MAX_SNAPSHOTS as u64 + 1);
        r.encode(&[1; 32]).unwrap();
        assert_eq!(cut("żółw".into(), 3), "ż");
    }

    #[test]
    fn memory_round_trips_and_merges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.cbor");
        let a = LocalMemory { known: [(id(1), 0)].into() };
        a.save(&path).unwrap();
        let b = LocalMemory { known: [(id(2), 1)].into() };
        b.save(&path).unwrap();
        assert_eq!(LocalMemory::load(&path).known, [(id(1), 0), (id(2), 1)].into());
        std::fs::write(&path, b"garbage").unwrap();
        assert!(LocalMemory::load(&path).known.is_empty());
    }

    #[tokio::test]
    async fn appends_chain_and_reuse_the_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path().join("repo").to_str().unwrap(), true).unwrap();
        let recipient = arka_proto::RecoveryIdentities::generate().recipients();
        let (repo, _) = Repository::init(store, &recipient, None).await.unwrap();
        let cache = dir.path().join("cache");
        let first = Entry::new(Operation::Init).cache_dir(&cache).append(&repo).await.unwrap();
        let second = Entry::new(Operation::Backup).count("files", 3).cache_dir(&cache).append(&repo).await.unwrap();
        // Without the memory the head is found by reading the records.
        let other_cache = dir.path().join("elsewhere");
        let third = Entry::new(Operation::Verify).cache_dir(&other_cache).append(&repo).await.unwrap();
        let (log, report) = verify(&repo, &cache).await.unwrap();
        assert!(report.is_intact() && report.warnings.is_empty(), "{report:?}");
        let chain: Vec<(ObjectId, u64, Option<ObjectId>)> =
            log.records.iter().map(|(id, r)| (*id, r.seq, r.prev)).collect();
        assert_eq!(chain, [(first, 0, None), (second, 1, Some(first)), (third, 2, Some(second))]);
        assert_eq!(log.records[1].1.counts["files"], 3);
    }
}
