//! `[status]`: the status page's address and its token.

use std::net::SocketAddr;

use serde::Deserialize;
use toml::Spanned;

use super::{Secret, Validator, DEFAULT_BIND};

#[derive(Clone, Debug)]
pub struct Status {
    pub bind: SocketAddr,
    /// Required unless `bind` is a loopback address.
    pub token: Option<Secret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStatus {
    bind: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
}

impl Validator<'_> {
    pub(super) fn status(&mut self, raw: Option<&RawStatus>) -> Option<Status> {
        let bind = match raw.and_then(|r| r.bind.as_ref()) {
            Some(b) => self.check(b, |b| {
                b.trim().parse::<SocketAddr>().map_err(|_| {
                    format!("bind {b:?} is not an address and port: use e.g. \"127.0.0.1:8765\" or \"0.0.0.0:8765\"")
                })
            })?,
            None => DEFAULT_BIND.parse().expect("the default bind address parses"),
        };
        let token = match raw.and_then(|r| r.token_file.as_ref()) {
            Some(t) => Some(self.secret(t, "token_file")?),
            None => None,
        };
        if token.is_none() && !bind.ip().is_loopback() {
            let at = raw.and_then(|r| r.bind.as_ref()).map_or(0..0, Spanned::span);
            self.fail(
                at,
                format!(
                    "bind {bind} is reachable from other machines, so the status page needs a token: set \
                     token_file = \"/etc/arka/status.token\" (a file holding a long random secret, chmod 600), \
                     or bind to 127.0.0.1"
                ),
            );
            return None;
        }
        Some(Status { bind, token })
    }
}
