//! The fleet dashboard: `GET /` as one server-rendered HTML page a receptionist or the
//! clinic chain's IT contractor can read at a glance. A verdict first, in words and colour;
//! then every agent, problems first; then storage; then (for admin tokens only) who may do
//! what and what the server refused. No JavaScript, no external resources, inline CSS,
//! refreshes every minute, readable on a phone.
//!
//! Agent reports are untrusted input (a compromised clinic server writes its own): every
//! string from a report, and every name from the configuration, goes through [`esc`].

use std::fmt::Write;

use arka_proto::html::{Clock, WallTime, BASE_CSS};
use arka_proto::server::Refusal;
use arka_proto::status::{
    esc, every, human_bytes, human_duration, thousands, AgentStatus, SourceKind, SourceState, TargetRole,
};
use arka_proto::{SourceStatus, TargetStatus};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::fleet::{AdminView, AgentRow, FleetView, RepoUsage};

const NS_PER_SEC: i64 = 1_000_000_000;

/// A report older than this means the agent itself may be down, whatever its sources'
/// RPOs. Agents push their report every minute and after every run (the agent's
/// `PUSH_EVERY`), so this is fifteen missed reports, not a slow link. The sources of a
/// silent agent also turn late on time (see [`assess`]); this adds the diagnosis.
pub const STALE_AFTER_SECS: u64 = 15 * 60;

/// This page's own rules, after [`BASE_CSS`].
const STYLE: &str = "\
main{max-width:1200px;margin:0 auto;padding:16px}\
.verdict ul{margin:12px 0 0;padding-left:1.3em;font-size:1.1em}\
.verdict li{margin:4px 0;overflow-wrap:anywhere}\
.meta{color:#555;margin:6px 2px 10px}\
.counts{margin:0 2px 18px;display:flex;gap:8px;flex-wrap:wrap}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(480px,100%),1fr));gap:14px;align-items:start}\
.card{background:#fff;border-radius:12px;padding:14px 18px;box-shadow:0 1px 3px rgba(0,0,0,.12);min-width:0}\
.card h3{margin:0 0 4px;font-size:1.25em;display:flex;justify-content:space-between;gap:8px;\
align-items:center;flex-wrap:wrap;overflow-wrap:anywhere}\
.card.failing{border-left:8px solid #b3261e}.card.late{border-left:8px solid #c2410c}\
.card.stale{border-left:8px solid #6d3fb5}.card.never{border-left:8px solid #8a8a8a}\
.card.ok{border-left:8px solid #1b7f3b}\
.card h4{margin:12px 0 2px;font-size:1em;color:#444}\
.sub{color:#555;margin:0 0 6px;overflow-wrap:anywhere}\
.problems{margin:6px 0;padding:8px 12px 8px 30px;background:#fdecea;border-radius:8px;color:#8c1d18}\
.warnings{margin:6px 0;padding:8px 12px 8px 30px;background:#fff4d6;border-radius:8px;color:#5c4100}\
.problems li,.warnings li{margin:2px 0;overflow-wrap:anywhere}\
.advice{margin:6px 0;color:#333}\
.panel{background:#fff;border-radius:12px;padding:6px 18px 10px;box-shadow:0 1px 3px rgba(0,0,0,.12);overflow-x:auto}\
th,td{text-align:left;vertical-align:top;padding:5px 10px 5px 0;border-top:1px solid #eee}\
thead th{border-top:none;font-weight:600;color:#444;font-size:.9em}\
td.num,th.num{text-align:right;white-space:nowrap}\
.badge.ok{background:#1b7f3b}.badge.failing{background:#b3261e}.badge.late{background:#c2410c}\
.badge.stale{background:#6d3fb5}.badge.never{background:#6b6b6b}.badge.busy{background:#1f5fbf}\
.badge.wait{background:#9a6700}\
.muted{color:#666}\
code{font:.95em ui-monospace,'DejaVu Sans Mono',monospace;overflow-wrap:anywhere}\
@media (max-width:600px){.verdict h1{font-size:1.6em}.verdict{padding:16px 18px}main{padding:10px}\
.card{padding:12px 12px}}";

/// Where one agent stands, worst first (the order the page lists agents in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AgentState {
    /// A source's last run failed, or the last verify found damage.
    Failing,
    /// A source's newest successful backup is older than its RPO (or it never had one and
    /// the agent has been up longer than the RPO).
    Late,
    /// The last report is too old to trust: the agent, its computer or the network to
    /// this server may be down. What the report said is still shown.
    Stale,
    /// The token exists but no report has arrived.
    NeverReported,
    /// Every source within its RPO, nothing failed.
    Ok,
}

impl AgentState {
    pub const ALL: [AgentState; 5] = [Self::Failing, Self::Late, Self::Stale, Self::NeverReported, Self::Ok];

    /// The label for `/metrics` (`arka_server_agent_state{state="…"}`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Failing => "failing",
            Self::Late => "late",
            Self::Stale => "stale",
            Self::NeverReported => "never_reported",
            Self::Ok => "ok",
        }
    }

    /// The word on the badge.
    pub fn word(self) -> &'static str {
        match self {
            Self::Failing => "Failing",
            Self::Late => "Late",
            Self::Stale => "Not reporting",
            Self::NeverReported => "Never reported",
            Self::Ok => "OK",
        }
    }

    fn class(self) -> &'static str {
        match self {
            Self::Failing => "failing",
            Self::Late => "late",
            Self::Stale => "stale",
            Self::NeverReported => "never",
            Self::Ok => "ok",
        }
    }
}

/// One agent judged at the server's clock.
#[derive(Clone, Debug)]
pub struct Assessment {
    pub state: AgentState,
    /// The report moved to the server's "now" (see [`assess`]); `None` if it never reported.
    pub status: Option<AgentStatus>,
    /// How old the last report is, in seconds.
    pub report_age_secs: Option<u64>,
    /// In plain words, the most urgent first; empty for `Ok`.
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

/// Judges one agent at `now_ns` (the server's clock).
///
/// The report's own times come from the agent's clock, which may be off. So the report is
/// moved forward by its age *as the server measured it* (now − received), never by
/// comparing the two clocks: a report received just now from an agent whose clock is an
/// hour fast is still fresh, and a dead agent's backups go late on schedule.
pub fn assess(row: &AgentRow, now_ns: i64) -> Assessment {
    let Some(report) = &row.status else {
        return Assessment {
            state: AgentState::NeverReported,
            status: None,
            report_age_secs: None,
            problems: vec!["has never sent a report to this server".into()],
            warnings: Vec::new(),
        };
    };
    let age_ns = row.received_ns.map_or(0, |r| now_ns.saturating_sub(r).max(0));
    let mut st = report.clone();
    st.reassess(report.now_ns.saturating_add(age_ns));
    let age_secs = u64::try_from(age_ns / NS_PER_SEC).unwrap_or(0);
    let mut problems = st.problems();
    let warnings = st.warnings();
    let failing = st.sources.iter().any(|s| s.state == SourceState::Failed) || st.maintenance.damage_found();
    let state = if age_secs > STALE_AFTER_SECS {
        problems.insert(
            0,
            format!(
                "no report for {}: the agent may be stopped, its computer off, or the network to this server down",
                human_duration(age_secs)
            ),
        );
        AgentState::Stale
    } else if failing {
        AgentState::Failing
    } else if !problems.is_empty() {
        AgentState::Late
    } else {
        AgentState::Ok
    };
    Assessment { state, status: Some(st), report_age_secs: Some(age_secs), problems, warnings }
}

/// The whole page for one viewer, in the server's local time zone.
pub fn render(view: &FleetView) -> String {
    render_in(view, &TimeZone::system())
}

pub fn render_in(view: &FleetView, tz: &TimeZone) -> String {
    let wall = |ns| wall_time(ns, tz);
    let clock = Clock { now_ns: view.now_ns, wall: &wall };
    let mut agents: Vec<(&AgentRow, Assessment)> = view.agents.iter().map(|a| (a, assess(a, view.now_ns))).collect();
    agents.sort_by(|(a, x), (b, y)| x.state.cmp(&y.state).then_with(|| a.token_name.cmp(&b.token_name)));
    let attention = agents.iter().filter(|(_, a)| a.state != AgentState::Ok).count();

    let mut h = String::with_capacity(32 * 1024);
    let title = match attention {
        0 => "Backups OK".to_string(),
        n => format!("{n} need attention"),
    };
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"60\">\
         <title>{title} \u{2014} arka fleet</title><style>{BASE_CSS}{STYLE}</style></head>\n<body><main>\n"
    );
    verdict(&mut h, &agents, attention);
    let _ = writeln!(
        h,
        "<p class=\"meta\">Signed in as <strong>{}</strong> \u{b7} checked {} \u{b7} this page updates every minute</p>",
        esc(&view.viewer),
        esc(&clock.at(view.now_ns))
    );
    counts(&mut h, &agents);

    h.push_str("<h2>Computers backed up</h2>\n<div class=\"grid\">\n");
    if agents.is_empty() {
        h.push_str("<p>No agents are configured on this server (an agent is a token with the append role).</p>\n");
    }
    for (row, a) in &agents {
        agent_card(&mut h, row, a, &clock);
    }
    h.push_str("</div>\n");
    storage(&mut h, &view.repos, &clock);
    if let Some(admin) = &view.admin {
        admin_section(&mut h, admin, &clock);
    }
    let _ = write!(h, "<footer>arka-server {}</footer>\n</main></body></html>\n", esc(&view.server_version));
    h
}

fn verdict(h: &mut String, agents: &[(&AgentRow, Assessment)], attention: usize) {
    if attention == 0 {
        let what = match agents.len() {
            0 => "No computers to watch yet".to_string(),
            1 => "\u{2713} The computer's backups are up to date".to_string(),
            n => format!("\u{2713} All {n} computers' backups are up to date"),
        };
        let _ = writeln!(h, "<header class=\"verdict ok\"><h1>{what}</h1><p>Nothing needs to be done.</p></header>");
        return;
    }
    let head = if agents.len() == 1 {
        "\u{26a0} Backups need attention".to_string()
    } else {
        format!("\u{26a0} {attention} of {} computers need attention", agents.len())
    };
    let _ = write!(h, "<header class=\"verdict bad\"><h1>{head}</h1><ul>");
    for (row, a) in agents.iter().filter(|(_, a)| a.state != AgentState::Ok) {
        for p in &a.problems {
            let _ = write!(h, "<li><strong>{}</strong>: {}</li>", esc(&row.token_name), esc(p));
        }
    }
    h.push_str("</ul><p>Please tell your IT contact.</p></header>\n");
}

/// "1 failing · 1 late · 2 OK" as badges, so colour is never the only signal.
fn counts(h: &mut String, agents: &[(&AgentRow, Assessment)]) {
    if agents.is_empty() {
        return;
    }
    h.push_str("<p class=\"counts\">");
    for state in AgentState::ALL {
        let n = agents.iter().filter(|(_, a)| a.state == state).count();
        if n > 0 {
            let _ = write!(h, "<span class=\"badge {}\">{n} {}</span>", state.class(), state.word().to_lowercase());
        }
    }
    h.push_str("</p>\n");
}

fn agent_card(h: &mut String, row: &AgentRow, a: &Assessment, clock: &Clock) {
    let class = a.state.class();
    let _ = write!(
        h,
        "<section class=\"card {class}\"><h3><span>{}</span><span class=\"badge {class}\">{}</span></h3>",
        esc(&row.token_name),
        a.state.word()
    );
    let repos = repo_list(&row.repos);
    let Some(st) = &a.status else {
        let _ = writeln!(
            h,
            "<p class=\"sub\">Repository: {repos}</p><p class=\"advice\">This agent has not sent a report yet. \
             If it is installed, check that its configuration has this server as a target with the token \
             named <strong>{}</strong>, and that the agent is running and can reach this server.</p></section>",
            esc(&row.token_name)
        );
        return;
    };
    let received = row.received_ns.map_or_else(|| "unknown".to_string(), |t| clock.relative(t));
    let _ = write!(
        h,
        "<p class=\"sub\">Computer <strong>{}</strong> \u{b7} last report {received} \u{b7} repository: {repos} \
         \u{b7} arka {}</p>",
        esc(&st.hostname),
        esc(&st.version)
    );
    list(h, "problems", &a.problems);
    list(h, "warnings", &a.warnings);
    if a.state == AgentState::Stale {
        h.push_str("<p class=\"advice\">What the agent said in its last report, with times moved on to now:</p>");
    }
    // The report's times are on the agent's clock, which `assess` moved to `st.now_ns`
    // for the server's now: take the difference off to show them on the server's clock.
    let skew = st.now_ns.saturating_sub(clock.now_ns);
    let at = |t: i64| clock.relative(t.saturating_sub(skew));
    sources_table(h, st, &at);
    targets_table(h, &st.targets, &at);
    h.push_str("</section>\n");
}

fn list(h: &mut String, class: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = write!(h, "<ul class=\"{class}\">");
    for i in items {
        let _ = write!(h, "<li>{}</li>", esc(i));
    }
    h.push_str("</ul>");
}

fn sources_table(h: &mut String, st: &AgentStatus, at: &dyn Fn(i64) -> String) {
    h.push_str("<h4>What is backed up</h4>");
    if st.sources.is_empty() {
        h.push_str("<p class=\"muted\">No sources are configured on this agent.</p>");
        return;
    }
    h.push_str("<table><thead><tr><th>Source</th><th>Last backup</th><th>State</th></tr></thead><tbody>");
    for s in &st.sources {
        let past = s.past_rpo(st.now_ns, st.started_ns);
        let (class, word) = source_badge(s, past);
        let what = match s.kind {
            SourceKind::Files => "files",
            SourceKind::Command => "database dump",
        };
        let last = match s.last_success_ns {
            Some(t) if past => format!("<span class=\"err\">{}</span>", at(t)),
            Some(t) => at(t),
            None => "never".into(),
        };
        let _ = write!(
            h,
            "<tr><td>{}<br><span class=\"muted\">{what}</span></td>\
             <td>{last}<br><span class=\"muted\">should be {}</span></td>\
             <td><span class=\"badge {class}\">{word}</span></td></tr>",
            esc(&s.name),
            esc(&every(s.rpo_secs)),
        );
        // A failed run's error is already among the problems above the table.
        if let (Some(e), false) = (&s.last_error, s.state == SourceState::Failed) {
            let _ = write!(h, "<tr><td></td><td colspan=\"2\"><span class=\"err\">Error: {}</span></td></tr>", esc(e));
        }
    }
    h.push_str("</tbody></table>");
}

/// The same words as the agent's own page, so both read alike.
fn source_badge(s: &SourceStatus, past: bool) -> (&'static str, &'static str) {
    match s.state {
        SourceState::Ok => ("ok", "Up to date"),
        SourceState::Running if past => ("late", "Backing up now (late)"),
        SourceState::Running => ("busy", "Backing up now"),
        SourceState::Late => ("late", "Late"),
        SourceState::Failed => ("failing", "Failed"),
        SourceState::Never if past => ("late", "Never backed up"),
        SourceState::Never => ("never", "Waiting for first backup"),
    }
}

fn targets_table(h: &mut String, targets: &[TargetStatus], at: &dyn Fn(i64) -> String) {
    if targets.is_empty() {
        return;
    }
    h.push_str("<h4>Where the copies are</h4><table><thead><tr><th>Copy</th><th>Last copy</th><th>State</th></tr></thead><tbody>");
    for t in targets {
        let (class, word) = match (t.reachable, t.backlog_snapshots) {
            (false, _) => ("failing", "Cannot be reached"),
            (true, 0) => ("ok", "Up to date"),
            (true, _) => ("busy", "Copying"),
        };
        let role = match t.role {
            TargetRole::Primary => "main copy",
            TargetRole::Replica => "extra copy",
        };
        let last = match (t.last_sync_ns, t.role) {
            (Some(ts), _) => at(ts),
            (None, TargetRole::Primary) => "no backup yet".into(),
            (None, TargetRole::Replica) => "not copied yet".into(),
        };
        let waiting = match (t.role, t.backlog_snapshots) {
            (TargetRole::Primary, _) => String::new(),
            (_, 0) => "<br><span class=\"muted\">nothing waiting</span>".into(),
            (_, n) => format!(
                "<br>{} waiting",
                esc(&format!("{n} backup{} ({})", if n == 1 { "" } else { "s" }, human_bytes(t.backlog_bytes)))
            ),
        };
        let _ = write!(
            h,
            "<tr><td>{} <span class=\"muted\">({role})</span><br><code>{}</code></td><td>{last}{waiting}</td>\
             <td><span class=\"badge {class}\">{word}</span></td></tr>",
            esc(&t.name),
            esc(&t.url_display)
        );
        if let Some(e) = &t.last_error {
            let _ = write!(h, "<tr><td colspan=\"3\"><span class=\"err\">Error: {}</span></td></tr>", esc(e));
        }
    }
    h.push_str("</tbody></table>");
}

fn storage(h: &mut String, repos: &[RepoUsage], clock: &Clock) {
    h.push_str("<h2>Storage on this server</h2>\n<div class=\"panel\">");
    if repos.is_empty() {
        h.push_str("<p>No repositories.</p></div>\n");
        return;
    }
    h.push_str(
        "<table><thead><tr><th>Repository</th><th class=\"num\">Space used</th><th class=\"num\">Objects</th>\
         <th>Last write</th></tr></thead><tbody>",
    );
    for r in repos {
        let (bytes, objects) = if r.scanned {
            (esc(&human_bytes(r.bytes)), thousands(r.objects))
        } else {
            ("<span class=\"muted\">counting\u{2026}</span>".to_string(), String::new())
        };
        let last = r
            .last_write_ns
            .map_or_else(|| "<span class=\"muted\">none since the server started</span>".into(), |t| clock.relative(t));
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{bytes}</td><td class=\"num\">{objects}</td><td>{last}</td></tr>",
            esc(&r.name)
        );
    }
    h.push_str("</tbody></table></div>\n");
}

fn admin_section(h: &mut String, admin: &AdminView, clock: &Clock) {
    h.push_str("<h2>Access (shown to administrators only)</h2>\n<div class=\"panel\">");
    h.push_str("<table><thead><tr><th>Token</th><th>Role</th><th>Repositories</th></tr></thead><tbody>");
    for t in &admin.tokens {
        let repos = repo_list(&t.repos);
        let _ = write!(h, "<tr><td>{}</td><td>{}</td><td>{repos}</td></tr>", esc(&t.name), esc(t.role));
    }
    h.push_str("</tbody></table></div>\n");

    h.push_str("<h2>Refused requests since the server started</h2>\n<div class=\"panel\">");
    let counted: Vec<_> = admin.refusal_counts.iter().filter(|(_, n)| *n > 0).collect();
    if counted.is_empty() {
        h.push_str("<p>None.</p>");
    } else {
        h.push_str("<table><thead><tr><th>Reason</th><th class=\"num\">Count</th></tr></thead><tbody>");
        for (reason, n) in counted {
            let _ = write!(
                h,
                "<tr><td>{} <code class=\"muted\">{}</code></td><td class=\"num\">{}</td></tr>",
                refusal_words(*reason),
                reason.name(),
                thousands(*n)
            );
        }
        h.push_str("</tbody></table>");
    }
    if !admin.recent_refusals.is_empty() {
        h.push_str(
            "<h4>Most recent</h4><table><thead><tr><th>When</th><th>Reason</th><th>Token</th><th>From</th>\
             <th>Request</th></tr></thead><tbody>",
        );
        for r in &admin.recent_refusals {
            let token = r.token.as_deref().map_or_else(|| "<span class=\"muted\">none</span>".to_string(), esc);
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{token}</td><td><code>{}</code></td><td><code>{} {}</code></td></tr>",
                clock.relative(r.at_ns),
                esc(r.reason.name()),
                esc(&r.remote),
                esc(&r.method),
                esc(&r.path)
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</div>\n");
}

/// Repository names as the config lists them, `*` being every repository; escaped.
fn repo_list(repos: &[String]) -> String {
    if repos.iter().any(|r| r == "*") {
        return "all".into();
    }
    if repos.is_empty() {
        return "<span class=\"muted\">none</span>".into();
    }
    repos.iter().map(|r| esc(r)).collect::<Vec<_>>().join(", ")
}

fn refusal_words(r: Refusal) -> &'static str {
    match r {
        Refusal::Unauthenticated => "no token, or one this server does not know",
        Refusal::WrongRepo => "a token used on a repository it is not for",
        Refusal::Role => "not allowed for the token's role (such as a delete with an append token)",
        Refusal::Exists => "an attempt to overwrite a stored object",
        Refusal::BadKey => "a malformed repository name or object key",
        Refusal::TooLarge => "a request body over the size limit",
        Refusal::HashMismatch => "data that did not match its name (damaged on the way?)",
        Refusal::BadRequest => "a malformed request",
    }
}

/// The viewer's wall clock in `tz`, for [`Clock`].
fn wall_time(ns: i64, tz: &TimeZone) -> Option<WallTime> {
    let t = Timestamp::from_nanosecond(i128::from(ns)).ok()?.to_zoned(tz.clone());
    Some(WallTime { year: t.year(), month: t.month(), day: t.day(), hour: t.hour(), minute: t.minute() })
}

#[cfg(test)]
mod tests;
