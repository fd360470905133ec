//! The agents' last status reports, kept in memory and in `data_dir/.server/agents/` so
//! the fleet view survives a restart. Agents are named by their token, never by what
//! they send.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use arka_proto::AgentStatus;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub received_ns: i64,
    pub status: AgentStatus,
}

pub struct AgentReports {
    dir: PathBuf,
    reports: Mutex<HashMap<String, Report>>,
}

impl AgentReports {
    /// Loads the saved reports; an unreadable one is skipped with a warning (the agent's
    /// next report replaces it).
    pub fn load(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut reports = HashMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            match std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Report>(&b).ok()) {
                Some(r) => {
                    reports.insert(name.to_string(), r);
                }
                None => tracing::warn!(agent = name, "a saved status report is unreadable; waiting for the next one"),
            }
        }
        Ok(Self { dir, reports: Mutex::new(reports) })
    }

    /// Records a report. `agent` is a token name, which the config restricts to safe
    /// file-name characters. The file is replaced atomically.
    pub fn record(&self, agent: &str, report: Report) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&report).map_err(std::io::Error::other)?;
        let path = self.dir.join(format!("{agent}.json"));
        let tmp = self.dir.join(format!("{agent}.json.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        self.reports.lock().unwrap().insert(agent.to_string(), report);
        Ok(())
    }

    pub fn get(&self, agent: &str) -> Option<Report> {
        self.reports.lock().unwrap().get(agent).cloned()
    }
}
