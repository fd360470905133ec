//! Serves the agent's status endpoint with a realistic sample report, for the browser test
//! (`tests/tests/status_page.rs`) and for screenshots of the page.
//!
//! ```sh
//! cargo run -p arka-agent --example status_demo -- [ADDR] [--token TOKEN] [--healthy]
//! ```
//! ADDR defaults to 127.0.0.1:8765 (port 0 picks a free one). The first line on stdout is
//! `status page: http://HOST:PORT/`. Without `--healthy` the database dump is five hours
//! late; the imaging archive is up to date and the offsite replica has a backlog.

use std::net::SocketAddr;
use std::sync::Arc;

use arka_agent::service::status::{serve_on, StatusBoard};
use arka_proto::status::{AgentStatus, RunOutcome, SourceKind, SourceStatus, TargetRole, TargetStatus};

const S: i64 = 1_000_000_000;
const MIN: i64 = 60 * S;
const H: i64 = 60 * MIN;
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn main() -> anyhow::Result<()> {
    let mut addr: SocketAddr = "127.0.0.1:8765".parse()?;
    let mut token = None;
    let mut healthy = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--token" => token = Some(args.next().ok_or_else(|| anyhow::anyhow!("--token needs a value"))?),
            "--healthy" => healthy = true,
            other => addr = other.parse().map_err(|e| anyhow::anyhow!("{other:?} is not an address: {e}"))?,
        }
    }
    let board = Arc::new(StatusBoard::new(sample(now_ns(), healthy)));
    // The buttons work; nothing runs behind them here.
    for name in ["imaging", "clinic-db", "scanned-documents"] {
        let _ = board.run_now().register(name);
    }
    tokio::runtime::Runtime::new()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("status page: http://{}/", listener.local_addr()?);
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        serve_on(listener, board, token, shutdown).await?;
        Ok(())
    })
}

fn now_ns() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

/// A dental clinic's agent at `now`: the imaging archive backed up 12 minutes ago, the
/// practice database last dumped 5 hours ago (unless `healthy`), scanned documents being
/// backed up right now, and an offsite copy a few snapshots behind.
fn sample(now: i64, healthy: bool) -> AgentStatus {
    let mut st = AgentStatus::new(env!("CARGO_PKG_VERSION"), "reception-pc", now - 3 * 24 * H - 2 * H);

    let mut imaging = SourceStatus::new("imaging", SourceKind::Files, "every 1h", 3_600);
    imaging.started(now - 12 * MIN - 4 * MIN);
    imaging.succeeded(
        now - 12 * MIN,
        RunOutcome {
            snapshot: "5e1f0c2a".into(),
            duration_ms: 4 * 60_000 + 12_000,
            bytes: 412 * GIB + 300 * MIB,
            bytes_new: 1_350 * MIB,
            files: 184_311,
            ..Default::default()
        },
    );
    imaging.next_run_ns = Some(now + 48 * MIN);

    let db_ago = if healthy { 35 * MIN } else { 5 * H + 10 * MIN };
    let mut db = SourceStatus::new("clinic-db", SourceKind::Command, "every 1h", 3_600);
    db.started(now - db_ago - 90 * S);
    db.succeeded(
        now - db_ago,
        RunOutcome {
            snapshot: "a90c7d13".into(),
            duration_ms: 88_000,
            bytes: 2_240 * MIB,
            bytes_new: 61 * MIB,
            files: 1,
            ..Default::default()
        },
    );
    db.next_run_ns = Some(now + 25 * MIN);

    let mut documents = SourceStatus::new("scanned-documents", SourceKind::Files, "daily 02:00", 26 * 3_600);
    documents.started(now - 20 * 24 * H);
    documents.succeeded(
        now - 20 * H,
        RunOutcome {
            snapshot: "77b2e0f4".into(),
            duration_ms: 41_000,
            bytes: 18 * GIB,
            bytes_new: 220 * MIB,
            files: 9_402,
            ..Default::default()
        },
    );
    documents.started(now - 2 * MIN);
    past_days(&mut imaging, &mut db, &mut documents, now, db_ago, healthy);
    st.sources = vec![imaging, db, documents];

    let mut nas = TargetStatus::new("nas", "/mnt/nas/arka", TargetRole::Primary);
    nas.last_sync_ns = Some(now - 12 * MIN);
    nas.stored_bytes = Some(391 * GIB);
    let mut offsite = TargetStatus::new("offsite", "s3://AKIAEXAMPLE:secret@clinic-offsite/arka", TargetRole::Replica);
    offsite.last_sync_ns = Some(now - 2 * H - 40 * MIN);
    offsite.backlog_snapshots = 3;
    offsite.backlog_bytes = 1_680 * MIB;
    offsite.stored_bytes = Some(389 * GIB);
    st.targets = vec![nas, offsite];

    let m = &mut st.maintenance;
    m.last_verify_ns = Some(now - 21 * H);
    m.last_restore_ns = Some(now - 12 * 24 * H - 3 * H);
    m.next_verify_ns = Some(now + 3 * H);
    m.last_forget_ns = Some(now - 21 * H - 20 * MIN);
    m.last_prune_ns = Some(now - 21 * H - 15 * MIN);
    m.next_forget_ns = Some(now + 3 * H - 20 * MIN);
    st.reassess(now);
    st
}

/// Fills the last 30 days of `s`: `day(d)` for `d` days ago gives ((ok, failed), bytes added).
fn history(s: &mut SourceStatus, now: i64, day: impl Fn(u64) -> ((u32, u32), u64)) {
    let tz = jiff::tz::TimeZone::system();
    let today = jiff::Timestamp::from_nanosecond(i128::from(now)).expect("now").to_zoned(tz).date();
    let mut size = 380 * GIB;
    for back in (0..30u64).rev() {
        let date = today.checked_sub(jiff::Span::new().days(back as i64)).expect("a date 30 days ago");
        let ((ok, failed), added) = day(back);
        size += added;
        let record = s.day_mut(&date.to_string());
        (record.ok, record.failed, record.added_bytes, record.size_bytes) = (ok, failed, added, Some(size));
    }
}

/// The sources' last 30 days and where each is protected.
fn past_days(
    imaging: &mut SourceStatus,
    db: &mut SourceStatus,
    documents: &mut SourceStatus,
    now: i64,
    db_ago: i64,
    healthy: bool,
) {
    history(imaging, now, |d| (if d == 9 { (0, 3) } else { (24, 0) }, (800 + (d * 37 % 11) * 120) * MIB));
    history(db, now, |d| (if d == 0 && !healthy { (19, 0) } else { (24, 0) }, (55 + d % 7 * 3) * MIB));
    history(documents, now, |d| ((1, 0), if d % 7 < 2 { 0 } else { (150 + d * 13 % 90) * MIB }));
    if !healthy {
        db.days.last_mut().expect("history").late = true;
    }
    imaging.copied_to("nas", now - 12 * MIN - 4 * MIN);
    imaging.copied_to("offsite", now - 3 * H);
    db.copied_to("nas", now - db_ago - 90 * S);
    db.copied_to("offsite", now - db_ago - 90 * S);
    documents.copied_to("nas", now - 20 * H - 41 * S);
    documents.copied_to("offsite", now - 20 * H - 41 * S);
}
