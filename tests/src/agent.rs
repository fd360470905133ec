//! `arka agent run --config FILE` as a child process of a test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Fixture;

/// A free TCP port on loopback (for the agent's status page).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The running agent; killed if the test ends without stopping it.
pub struct AgentProcess {
    child: Child,
    log: PathBuf,
}

impl AgentProcess {
    pub fn start(fx: &Fixture, config: &Path) -> Self {
        Self::start_with_env(fx, config, &[])
    }

    /// Started with extra environment (e.g. the `AWS_*` settings of an S3 target).
    pub fn start_with_env(fx: &Fixture, config: &Path, env: &[(&str, String)]) -> Self {
        let log = fx.path("agent.log");
        let mut cmd: Command = fx.command();
        cmd.args(["agent", "run", "--config"]).arg(config).stdout(Stdio::null());
        cmd.stderr(std::fs::File::create(&log).expect("agent log"));
        cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        Self { child: cmd.spawn().expect("start arka agent"), log }
    }

    /// What the agent has said on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status, which must come within `secs`.
    pub fn terminate(mut self, secs: u64) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "the agent did not stop within {secs} s of SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
