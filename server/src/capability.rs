//! Who may do what: the one table mapping a token's role to the actions it may take.
//! Handlers ask [`allows`] and answer a "no" with [`denial`]; no handler compares roles
//! itself. Which repositories a token reaches is the other half of every decision
//! (`Token::reaches`), and "every repository" is itself a row of this table.

use arka_proto::layout::{ObjectKey, ObjectKind};

use crate::config::Role;

/// The kind of object a request names, for the object rows of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Config,
    Content(ObjectKind),
}

impl From<&ObjectKey> for Kind {
    fn from(key: &ObjectKey) -> Self {
        match key {
            ObjectKey::Config => Self::Config,
            ObjectKey::Content { kind, .. } => Self::Content(*kind),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `GET` or `HEAD` of one object.
    Get(Kind),
    /// `GET` of a repository's object list.
    List,
    /// `PUT` of a new object (never an overwrite: storage refuses those for every role).
    Put(Kind),
    Delete(Kind),
    /// `PUT /v1/agents/status`.
    PushStatus,
    /// `GET /`: the agents and repositories the token shares a repository with.
    ViewFleet,
    /// The dashboard's access and refusal views, and every agent whatever its repositories.
    ViewAdmin,
    /// `GET /metrics`, which covers every repository.
    ReadMetrics,
    /// Reach every repository, whatever the token's `repos` say.
    EveryRepository,
}

/// The table. Append tokens live on clinic servers, where ransomware would find them: they
/// create and read, never delete, so a stolen one cannot destroy a backup. Deleting is
/// pruning, done by a maintain token kept on the NAS.
pub fn allows(role: Role, action: Action) -> bool {
    use Role::{Admin, Append, Maintain};
    let roles: &[Role] = match action {
        Action::Get(_) | Action::List | Action::Put(_) => &[Append, Maintain, Admin],
        Action::Delete(_) => &[Maintain, Admin],
        Action::PushStatus | Action::ViewFleet => &[Append, Maintain, Admin],
        Action::ReadMetrics => &[Maintain, Admin],
        Action::ViewAdmin | Action::EveryRepository => &[Admin],
    };
    roles.contains(&role)
}

/// What a refused token is told: what it tried, and which token would do.
pub fn denial(token_name: &str, role: Role, action: Action) -> String {
    match action {
        Action::Delete(_) => format!(
            "token {token_name:?} has role {}, which never deletes: prune with a maintain token on the NAS",
            role.name()
        ),
        Action::ReadMetrics => "metrics cover every repository: use a maintain or admin token".into(),
        other => format!("token {token_name:?} has role {}, which may not {other:?}", role.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table as the operations guide and the example config describe the roles.
    #[test]
    fn roles_may_do_what_the_documentation_says() {
        let kinds = std::iter::once(Kind::Config).chain(ObjectKind::ALL.into_iter().map(Kind::Content));
        for kind in kinds {
            for role in [Role::Append, Role::Maintain, Role::Admin] {
                assert!(allows(role, Action::Get(kind)) && allows(role, Action::Put(kind)), "{role:?} {kind:?}");
                assert_eq!(allows(role, Action::Delete(kind)), role != Role::Append, "{role:?} {kind:?}");
            }
        }
        let rows: [(Action, [bool; 3]); 6] = [
            //                          append maintain admin
            (Action::List, [true, true, true]),
            (Action::PushStatus, [true, true, true]),
            (Action::ViewFleet, [true, true, true]),
            (Action::ReadMetrics, [false, true, true]),
            (Action::ViewAdmin, [false, false, true]),
            (Action::EveryRepository, [false, false, true]),
        ];
        for (action, want) in rows {
            let got = [Role::Append, Role::Maintain, Role::Admin].map(|r| allows(r, action));
            assert_eq!(got, want, "{action:?}");
        }
    }

    #[test]
    fn denials_say_which_token_would_do() {
        let d = denial("north", Role::Append, Action::Delete(Kind::Config));
        assert_eq!(d, "token \"north\" has role append, which never deletes: prune with a maintain token on the NAS");
        assert!(denial("north", Role::Append, Action::ReadMetrics).contains("use a maintain or admin token"));
    }
}
