//! The passwords a connection may use, for the CURRENT/NEXT rotation of the Redis and
//! PostgreSQL passwords (spec §11.4). The connection code asks [`Credentials::candidates`] on
//! every new connection (not only at start), tries them in that order, moves on to the next
//! only when the server refused the password, and reports the one that worked with
//! [`Credentials::worked`]; the secrets source replaces the values when they change
//! ([`Credentials::set`]). Only the names (`REDIS_PASS_NEXT`) are ever meant for a log line.

use crate::Secret;
use std::sync::RwLock;

/// One password and the name of the secret it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub password: Secret,
}

impl Candidate {
    pub fn new(name: impl Into<String>, password: Secret) -> Self {
        Self { name: name.into(), password }
    }
}

#[derive(Default)]
struct State {
    /// In the configured order: CURRENT, then NEXT.
    candidates: Vec<Candidate>,
    /// The name of the password the last successful connection used.
    working: Option<String>,
}

/// The candidate passwords of one server; share it (`Arc`) between the pool and the secrets
/// source that refreshes it.
#[derive(Default)]
pub struct Credentials {
    state: RwLock<State>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.read();
        let names: Vec<&str> = s.candidates.iter().map(|c| c.name.as_str()).collect();
        f.debug_struct("Credentials").field("candidates", &names).field("working", &s.working).finish()
    }
}

impl Credentials {
    /// Candidates in the order to try them; an empty password and a repeated value are left out.
    pub fn new(candidates: Vec<Candidate>) -> Self {
        let me = Self::default();
        me.set(candidates);
        me
    }

    /// One fixed password (or none: the URL's own, if any, applies).
    pub fn fixed(name: &str, password: Option<Secret>) -> Self {
        Self::new(password.into_iter().map(|p| Candidate::new(name, p)).collect())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the candidates (new values from the secrets source). The one that worked last
    /// keeps its place at the front while its name is still offered.
    pub fn set(&self, candidates: Vec<Candidate>) {
        let mut kept: Vec<Candidate> = Vec::with_capacity(candidates.len());
        for c in candidates {
            if !c.password.is_empty() && !kept.iter().any(|k| k.password == c.password) {
                kept.push(c);
            }
        }
        self.state.write().unwrap_or_else(|p| p.into_inner()).candidates = kept;
    }

    /// The passwords to try for a new connection: the one that worked last first, then the
    /// others in the configured order (so after CURRENT is refused, NEXT; after NEXT, CURRENT
    /// again). Empty: connect without a password of ours.
    pub fn candidates(&self) -> Vec<Candidate> {
        let s = self.read();
        let mut out = s.candidates.clone();
        if let Some(w) = &s.working
            && let Some(i) = out.iter().position(|c| &c.name == w)
        {
            let c = out.remove(i);
            out.insert(0, c);
        }
        out
    }

    /// Records that `name` worked. Returns the name used before when it was another one (the
    /// caller logs the switch), `Some("")` on the first success, `None` when nothing changed.
    pub fn worked(&self, name: &str) -> Option<String> {
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        match &s.working {
            Some(w) if w == name => None,
            previous => {
                let before = previous.clone().unwrap_or_default();
                s.working = Some(name.to_owned());
                Some(before)
            }
        }
    }

    /// The name of the password that worked last.
    pub fn working(&self) -> Option<String> {
        self.read().working.clone()
    }

    pub fn is_empty(&self) -> bool {
        self.read().candidates.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, pw: &str) -> Candidate {
        Candidate::new(name, Secret::new(pw))
    }

    fn names(cr: &Credentials) -> Vec<String> {
        cr.candidates().into_iter().map(|c| c.name).collect()
    }

    #[test]
    fn the_one_that_worked_goes_first() {
        let cr = Credentials::new(vec![c("CURRENT", "pw-a"), c("NEXT", "pw-b"), c("DUP", "pw-a"), c("EMPTY", "")]);
        assert_eq!(names(&cr), ["CURRENT", "NEXT"]);
        assert_eq!(cr.worked("CURRENT").as_deref(), Some(""));
        assert_eq!(cr.worked("CURRENT"), None);
        assert_eq!(cr.worked("NEXT").as_deref(), Some("CURRENT"));
        assert_eq!(names(&cr), ["NEXT", "CURRENT"]);
        // The operator moved the new password to CURRENT and cleared NEXT.
        cr.set(vec![c("CURRENT", "pw-b")]);
        assert_eq!(names(&cr), ["CURRENT"]);
        assert!(!format!("{cr:?}").contains("pw-"));
        assert!(Credentials::fixed("DB_PASS", None).is_empty());
    }
}
