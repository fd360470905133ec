//! Bearer tokens. Secrets are read once at start, kept only as keyed BLAKE3 hashes under
//! a per-process random key, and compared in constant time against every token, so
//! neither the secret nor which token nearly matched leaks through timing or memory dumps.

use base64::Engine;

use crate::capability::{self, Action};
use crate::config::{RepoScope, Role, TokenConfig, MIN_SECRET_LEN};

/// A token the server knows. Holds no secret.
#[derive(Clone, Debug)]
pub struct Token {
    pub name: String,
    pub role: Role,
    pub repos: RepoScope,
    hash: blake3::Hash,
}

impl Token {
    /// Whether the token may touch `repo` at all; what it may do there is
    /// [`capability::allows`]'s answer.
    pub fn reaches(&self, repo: &str) -> bool {
        capability::allows(self.role, Action::EveryRepository) || self.repos.allows(repo)
    }
}

pub struct Tokens {
    key: [u8; 32],
    list: Vec<Token>,
}

impl Tokens {
    /// Reads every secret file. Secrets shorter than [`MIN_SECRET_LEN`] and secrets shared
    /// by two tokens are refused: either would make a token guessable or ambiguous.
    pub fn load(configs: &[TokenConfig]) -> Result<Self, String> {
        let key: [u8; 32] = rand::random();
        let mut list: Vec<Token> = Vec::new();
        for t in configs {
            let text = std::fs::read_to_string(&t.secret_file)
                .map_err(|e| format!("token {:?}: cannot read {}: {e}", t.name, t.secret_file.display()))?;
            let secret = text.trim();
            if secret.len() < MIN_SECRET_LEN {
                return Err(format!(
                    "token {:?}: the secret in {} is shorter than {MIN_SECRET_LEN} characters: \
                     make one with `arka-server token new {}`",
                    t.name,
                    t.secret_file.display(),
                    t.secret_file.display()
                ));
            }
            let hash = blake3::keyed_hash(&key, secret.as_bytes());
            if let Some(other) = list.iter().find(|o| o.hash == hash) {
                return Err(format!(
                    "tokens {:?} and {:?} have the same secret: give each its own",
                    other.name, t.name
                ));
            }
            list.push(Token { name: t.name.clone(), role: t.role, repos: t.repos.clone(), hash });
        }
        Ok(Self { key, list })
    }

    pub fn all(&self) -> &[Token] {
        &self.list
    }

    /// The token an `Authorization` header value names: `Bearer SECRET`, or HTTP Basic
    /// with the secret as the password (what a browser sends for the dashboard).
    pub fn authenticate(&self, header: Option<&str>) -> Option<&Token> {
        let secret = secret_from_header(header?)?;
        let hash = blake3::keyed_hash(&self.key, secret.trim().as_bytes());
        // `blake3::Hash` compares in constant time; visit every token so the time taken
        // does not depend on which one matched.
        let mut found = None;
        for t in &self.list {
            if t.hash == hash {
                found = Some(t);
            }
        }
        found
    }
}

fn secret_from_header(value: &str) -> Option<String> {
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(rest.to_string())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        Some(text.split_once(':')?.1.to_string())
    } else {
        None
    }
}

/// A new random secret: 32 bytes, URL-safe base64 (43 characters).
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tokens(secrets: &[(&str, Role, &str)]) -> (tempfile::TempDir, Result<Tokens, String>) {
        let dir = tempfile::tempdir().unwrap();
        let configs: Vec<TokenConfig> = secrets
            .iter()
            .map(|(name, role, secret)| {
                let p: PathBuf = dir.path().join(name);
                std::fs::write(&p, format!("{secret}\n")).unwrap();
                TokenConfig {
                    name: name.to_string(),
                    role: *role,
                    repos: RepoScope::Only(vec!["r".into()]),
                    secret_file: p,
                }
            })
            .collect();
        let t = Tokens::load(&configs);
        (dir, t)
    }

    #[test]
    fn bearer_and_basic_find_the_token_and_nothing_else_does() {
        let (a, b) = (new_secret(), new_secret());
        let (_d, t) = tokens(&[("agent", Role::Append, &a), ("nas", Role::Maintain, &b)]);
        let t = t.unwrap();
        assert_eq!(t.authenticate(Some(&format!("Bearer {a}"))).unwrap().name, "agent");
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("anyone:{b}"));
        assert_eq!(t.authenticate(Some(&format!("Basic {basic}"))).unwrap().name, "nas");
        for bad in [None, Some(""), Some("Bearer"), Some("Bearer x"), Some(a.as_str()), Some("Token abc")] {
            assert!(t.authenticate(bad).is_none(), "{bad:?}");
        }
        assert!(t.authenticate(Some(&format!("Bearer {}", &a[..a.len() - 1]))).is_none());
    }

    #[test]
    fn short_and_shared_secrets_are_refused() {
        let (_d, t) = tokens(&[("a", Role::Append, "short")]);
        assert!(t.err().unwrap().contains("arka-server token new"));
        let s = new_secret();
        let (_d, t) = tokens(&[("a", Role::Append, &s), ("b", Role::Admin, &s)]);
        assert!(t.err().unwrap().contains("same secret"));
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let s = new_secret();
        let (_d, t) = tokens(&[("a", Role::Append, &s)]);
        let shown = format!("{:?}", t.unwrap().all());
        assert!(!shown.contains(&s));
    }
}
