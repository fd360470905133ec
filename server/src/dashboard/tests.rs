//! The dashboard's states, words and escaping, from hand-made fleet views.

use arka_proto::server::Refusal;
use arka_proto::status::{RunOutcome, SourceKind, SourceStatus, TargetRole, TargetStatus};

use super::*;
use crate::fleet::{RefusalRow, TokenRow};

const S: i64 = NS_PER_SEC;
const MIN: i64 = 60 * S;
const H: i64 = 60 * MIN;
/// 2023-11-14 22:13:20 UTC.
const NOW: i64 = 1_700_000_000 * S;

fn ok_source(name: &str, rpo_secs: u64, last_success_ns: i64) -> SourceStatus {
    let mut s = SourceStatus::new(name, SourceKind::Command, "every 1h", rpo_secs);
    s.started(last_success_ns - MIN);
    s.succeeded(
        last_success_ns,
        RunOutcome {
            snapshot: "1a2b3c4d".into(),
            duration_ms: 60_000,
            bytes: 10,
            bytes_new: 1,
            files: 1,
            ..Default::default()
        },
    );
    s
}

/// A report taken at `taken_ns` on the agent's clock, up since a day before.
fn report(taken_ns: i64, sources: Vec<SourceStatus>) -> AgentStatus {
    let mut st = AgentStatus::new("0.1.0", "reception-pc", taken_ns - 24 * H);
    st.sources = sources;
    st.reassess(taken_ns);
    st
}

fn row(name: &str, received_ns: Option<i64>, status: Option<AgentStatus>) -> AgentRow {
    AgentRow { token_name: name.into(), repos: vec![format!("{name}-repo")], received_ns, status }
}

fn view(agents: Vec<AgentRow>, admin: Option<AdminView>) -> FleetView {
    FleetView {
        now_ns: NOW,
        server_version: "0.1.0".into(),
        viewer: "admin".into(),
        agents,
        repos: vec![
            RepoUsage {
                name: "north".into(),
                bytes: 412 * (1 << 30) + 300 * (1 << 20),
                objects: 184_311,
                last_write_ns: Some(NOW - 12 * MIN),
                scanned: true,
            },
            RepoUsage { name: "south".into(), bytes: 0, objects: 0, last_write_ns: None, scanned: false },
        ],
        admin,
    }
}

fn admin_view() -> AdminView {
    AdminView {
        tokens: vec![
            TokenRow { name: "admin".into(), role: "admin", repos: vec!["*".into()] },
            TokenRow { name: "north".into(), role: "append", repos: vec!["north".into()] },
        ],
        refusal_counts: vec![(Refusal::Unauthenticated, 3), (Refusal::Exists, 0), (Refusal::Role, 1)],
        recent_refusals: vec![RefusalRow {
            at_ns: NOW - 5 * MIN,
            reason: Refusal::Role,
            token: Some("north".into()),
            remote: "192.168.1.10:51234".into(),
            method: "DELETE".into(),
            path: "/v1/repos/north/objects/snapshots/ab".into(),
        }],
    }
}

fn render_utc(v: &FleetView) -> String {
    render_in(v, &TimeZone::UTC)
}

/// (what, when the report arrived, the report, the state the dashboard must show)
type Case = (&'static str, Option<i64>, Option<AgentStatus>, AgentState);

fn assert_states(cases: Vec<Case>) {
    for (what, received, status, want) in cases {
        let a = assess(&row("a", received, status), NOW);
        assert_eq!(a.state, want, "{what}: {:?}", a.problems);
        assert_eq!(a.problems.is_empty(), want == AgentState::Ok, "{what}: {:?}", a.problems);
    }
}

fn failed_within_the_rpo() -> AgentStatus {
    let mut s = ok_source("db", 3_600, NOW - 30 * MIN);
    s.started(NOW - 5 * MIN);
    s.failed("the dump command exited with 1", 1_000);
    report(NOW, vec![s])
}

fn damaged() -> AgentStatus {
    let mut st = report(NOW, vec![ok_source("db", 3_600, NOW - 10 * MIN)]);
    st.maintenance.verify_damage = 2;
    st.maintenance.last_verify_ns = Some(NOW - H);
    st
}

fn unreachable_replica() -> AgentStatus {
    let mut st = report(NOW, vec![ok_source("db", 3_600, NOW - 10 * MIN)]);
    let mut t = TargetStatus::new("offsite", "s3://b/arka", TargetRole::Replica);
    t.reachable = false;
    st.targets.push(t);
    st
}

fn fresh_install() -> AgentStatus {
    let mut st = AgentStatus::new("0.1.0", "pc", NOW - 10 * MIN);
    st.sources = vec![SourceStatus::new("imaging", SourceKind::Files, "every 1h", 3_600)];
    st
}

#[test]
fn states_from_what_a_fresh_report_says() {
    assert_states(vec![
        (
            "a fresh report within the RPO",
            Some(NOW - MIN),
            Some(report(NOW - MIN, vec![ok_source("db", 3_600, NOW - 20 * MIN)])),
            AgentState::Ok,
        ),
        ("no report ever", None, None, AgentState::NeverReported),
        (
            "last success 5 h ago, RPO 1 h",
            Some(NOW),
            Some(report(NOW, vec![ok_source("db", 3_600, NOW - 5 * H)])),
            AgentState::Late,
        ),
        ("last run failed within the RPO", Some(NOW), Some(failed_within_the_rpo()), AgentState::Failing),
        ("verify found damage", Some(NOW), Some(damaged()), AgentState::Failing),
        ("only an unreachable replica", Some(NOW), Some(unreachable_replica()), AgentState::Ok),
        ("a fresh install waiting for its first backup", Some(NOW), Some(fresh_install()), AgentState::Ok),
    ]);
}

#[test]
fn states_from_how_old_the_report_is() {
    assert_states(vec![
        (
            "report 2 h old",
            Some(NOW - 2 * H),
            Some(report(NOW - 2 * H, vec![ok_source("db", 3_600, NOW - 2 * H - MIN)])),
            AgentState::Stale,
        ),
        (
            "report 14 min old, RPO 5 min",
            Some(NOW - 14 * MIN),
            Some(report(NOW - 14 * MIN, vec![ok_source("w", 300, NOW - 14 * MIN)])),
            AgentState::Late,
        ),
        (
            "report 16 min old, RPO 5 min",
            Some(NOW - 16 * MIN),
            Some(report(NOW - 16 * MIN, vec![ok_source("w", 300, NOW - 16 * MIN)])),
            AgentState::Stale,
        ),
        // A daily RPO does not make a silent agent look alive for days.
        (
            "report 16 min old, RPO 1 day",
            Some(NOW - 16 * MIN),
            Some(report(NOW - 16 * MIN, vec![ok_source("d", 86_400, NOW - H)])),
            AgentState::Stale,
        ),
        (
            "report 14 min old, RPO 1 day",
            Some(NOW - 14 * MIN),
            Some(report(NOW - 14 * MIN, vec![ok_source("d", 86_400, NOW - H)])),
            AgentState::Ok,
        ),
        // The report was fine when sent 10 min ago (last success 55 min before it), but
        // that success is now 65 min old: late, before the silence counts as stale.
        (
            "a silent agent's backups go late on time",
            Some(NOW - 10 * MIN),
            Some(report(NOW - 10 * MIN, vec![ok_source("db", 3_600, NOW - 65 * MIN)])),
            AgentState::Late,
        ),
    ]);
}

#[test]
fn states_on_the_servers_clock_when_the_agents_clock_is_an_hour_fast() {
    let fast = AgentStatus { now_ns: NOW + H, ..report(NOW + H, vec![ok_source("db", 3_600, NOW + H - 10 * MIN)]) };
    assert_states(vec![
        ("an agent clock an hour fast, fresh report", Some(NOW), Some(fast.clone()), AgentState::Ok),
        ("an agent clock an hour fast, report 2 h old", Some(NOW - 2 * H - MIN), Some(fast), AgentState::Stale),
    ]);
}

#[test]
fn a_stale_agent_says_why_first_and_keeps_its_report() {
    let st = report(NOW - 3 * H, vec![ok_source("db", 3_600, NOW - 3 * H - MIN)]);
    let a = assess(&row("north", Some(NOW - 3 * H), Some(st)), NOW);
    assert_eq!(a.state, AgentState::Stale);
    assert!(a.problems[0].starts_with("no report for 3 hours: the agent may be stopped"), "{:?}", a.problems);
    assert_eq!(a.problems[1], "db: last successful backup 3 hours ago (should be every hour)");
    assert_eq!(a.report_age_secs, Some(3 * 3_600));
}

#[test]
fn problems_come_first_and_the_verdict_names_them() {
    let v = view(
        vec![
            row("a-healthy", Some(NOW), Some(report(NOW, vec![ok_source("db", 3_600, NOW - 10 * MIN)]))),
            row("b-late", Some(NOW), Some(report(NOW, vec![ok_source("clinic-db", 3_600, NOW - 5 * H)]))),
            row("c-new", None, None),
        ],
        None,
    );
    let page = render_utc(&v);
    assert!(page.contains("2 of 3 computers need attention"), "{page}");
    assert!(page.contains(
        "<li><strong>b-late</strong>: clinic-db: last successful backup 5 hours ago (should be every hour)</li>"
    ));
    assert!(page.contains("<li><strong>c-new</strong>: has never sent a report to this server</li>"));
    let pos = |needle: &str| page.find(needle).unwrap_or_else(|| panic!("{needle} missing"));
    assert!(pos("<span>b-late</span>") < pos("<span>c-new</span>"));
    assert!(pos("<span>c-new</span>") < pos("<span>a-healthy</span>"));
    // Colour is never alone: every state has its word on a badge.
    for word in ["Late</span>", "Never reported</span>", "OK</span>", "1 late", "1 never reported", "1 ok"] {
        assert!(page.contains(word), "{word} missing");
    }
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"60\">"));
    assert!(
        !page.contains("<script") && !page.contains("src=") && !page.contains("href="),
        "external or active content"
    );
}

#[test]
fn a_healthy_fleet_says_so() {
    let v = view(vec![row("a", Some(NOW), Some(report(NOW, vec![ok_source("db", 3_600, NOW - MIN)])))], None);
    let page = render_utc(&v);
    assert!(
        page.contains("The computer&#39;s backups are up to date")
            || page.contains("The computer's backups are up to date")
    );
    assert!(page.contains("Nothing needs to be done."));
    assert!(!page.contains("need attention"));
}

#[test]
fn hostile_report_text_is_escaped_everywhere() {
    let evil = "<script>alert(1)</script><img src=x onerror=\"alert(2)\">'&";
    let mut st = report(NOW, vec![ok_source(evil, 3_600, NOW - 5 * H)]);
    st.hostname = evil.into();
    st.version = evil.into();
    st.sources[0].state = SourceState::Failed;
    st.sources[0].last_error = Some(evil.into());
    let mut t = TargetStatus::new(evil, "https://nas/x", TargetRole::Replica);
    t.url_display = evil.into();
    t.last_error = Some(evil.into());
    t.reachable = false;
    st.targets.push(t);
    st.maintenance.last_error = Some(evil.into());
    let mut admin = admin_view();
    admin.recent_refusals[0].path = evil.into();
    admin.recent_refusals[0].remote = evil.into();
    admin.recent_refusals[0].method = evil.into();
    admin.recent_refusals[0].token = Some(evil.into());
    let mut v = view(vec![row(evil, Some(NOW), Some(st))], Some(admin));
    v.viewer = evil.into();
    v.server_version = evil.into();
    v.repos[0].name = evil.into();
    let page = render_utc(&v);
    assert!(!page.contains("<script") && !page.contains("<img"), "markup from a report reached the page");
    assert!(!page.contains("onerror=\"") && !page.contains("'&<"));
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;&#39;&amp;")
    );
}

#[test]
fn the_admin_section_is_only_for_admins() {
    let agents = || vec![row("north", None, None)];
    let plain = render_utc(&view(agents(), None));
    for admin_only in ["Access (shown to administrators only)", "Refused requests", "192.168.1.10"] {
        assert!(!plain.contains(admin_only), "{admin_only} shown to a non-admin");
    }
    let admin = render_utc(&view(agents(), Some(admin_view())));
    for shown in [
        "Access (shown to administrators only)",
        "<td>north</td><td>append</td><td>north</td>",
        "<td>admin</td><td>admin</td><td>all</td>",
        "no token, or one this server does not know <code class=\"muted\">unauthenticated</code></td><td class=\"num\">3</td>",
        "<code>DELETE /v1/repos/north/objects/snapshots/ab</code>",
        "5 minutes ago",
    ] {
        assert!(admin.contains(shown), "{shown} missing:\n{admin}");
    }
    assert!(!admin.contains("<code class=\"muted\">exists</code>"), "reasons never seen are left out");
}

#[test]
fn sizes_counts_and_ages_read_like_words() {
    let page = render_utc(&view(vec![], None));
    assert!(page.contains("<td>north</td><td class=\"num\">412.3 GiB</td><td class=\"num\">184,311</td>"), "{page}");
    assert!(page.contains("12 minutes ago <span class=\"when\">(today 22:01)</span>"));
    assert!(page.contains("counting\u{2026}") && page.contains("none since the server started"));
    assert!(page.contains("No agents are configured"));
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1_234_567), "1,234,567");
    let wall = |ns| wall_time(ns, &TimeZone::UTC);
    let clock = Clock { now_ns: NOW, wall: &wall };
    assert_eq!(clock.at(NOW - 23 * H), "yesterday 23:13");
    assert_eq!(clock.at(NOW - 3 * 24 * H), "Sat 11 Nov 22:13");
    assert_eq!(clock.at(NOW - 400 * 24 * H), "10 Oct 2022 22:13");
}

#[test]
fn report_times_are_shown_on_the_servers_clock() {
    // The agent's clock is an hour fast: its backup 10 minutes ago reads as 22:03 UTC.
    let st = report(NOW + H, vec![ok_source("db", 3_600, NOW + H - 10 * MIN)]);
    let page = render_utc(&view(vec![row("a", Some(NOW - 2 * MIN), Some(st))], None));
    assert!(page.contains("12 minutes ago <span class=\"when\">(today 22:01)</span>"), "{page}");
    assert!(page.contains("last report 2 minutes ago <span class=\"when\">(today 22:11)</span>"), "{page}");
}

/// Writes a sample page to `target/fleet-sample.html` to look at in a browser:
/// `cargo test -p arka-server dashboard::tests::write_sample -- --ignored`.
#[test]
#[ignore]
fn write_sample() {
    let mut failing = report(NOW, vec![ok_source("clinic-db", 3_600, NOW - 5 * H)]);
    failing.hostname = "south-reception".into();
    failing.sources[0].started(NOW - 20 * MIN);
    failing.sources[0].failed("pg_dump: connection to server failed: FATAL: password authentication failed", 4_000);
    let mut imaging = SourceStatus::new("imaging", SourceKind::Files, "every 15m", 900);
    imaging.started(NOW - 30 * MIN);
    imaging.succeeded(NOW - 25 * MIN, RunOutcome::default());
    failing.sources.push(imaging);
    let mut off = TargetStatus::new("offsite", "s3://clinic-offsite/arka", TargetRole::Replica);
    off.reachable = false;
    off.backlog_snapshots = 3;
    off.backlog_bytes = 1_700_000_000;
    failing.targets.push(TargetStatus::new("nas", "arka+https://nas.local:8443/south", TargetRole::Primary));
    failing.targets.push(off);
    failing.reassess(NOW);
    let healthy = report(NOW - MIN, vec![ok_source("clinic-db", 3_600, NOW - 20 * MIN)]);
    let stale = report(NOW - 3 * H, vec![ok_source("clinic-db", 3_600, NOW - 3 * H - 10 * MIN)]);
    let v = view(
        vec![
            row("north", Some(NOW - MIN), Some(healthy)),
            row("south", Some(NOW), Some(failing)),
            row("east", None, None),
            row("west", Some(NOW - 3 * H), Some(stale)),
        ],
        Some(admin_view()),
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fleet-sample.html");
    std::fs::write(&out, render(&v)).unwrap();
    eprintln!("wrote {}", out.display());
}
