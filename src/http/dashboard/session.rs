//! Dashboard sessions: after a sign-in, the browser holds only a random session id (an
//! HttpOnly, SameSite=Strict cookie); the server maps it, in memory, to the account or to
//! the operator role until it expires. Neither the API key nor the admin token is kept:
//! the map is keyed by the SHA-256 of the session id, so not even the id is stored.

use axum::http::header::COOKIE;
use axum::http::HeaderMap;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::AccountId;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "lethe_dashboard";
/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(3600);
/// At most this many sessions are kept; past it the oldest make room.
const MAX_SESSIONS: usize = 10_000;

/// Who a session belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A customer: this account only.
    Customer(AccountId),
    /// An operator: every account, and the platform's operations.
    Operator,
}

#[derive(Debug)]
struct Session {
    role: Role,
    expires: Instant,
}

/// The sessions of one server, by the SHA-256 of their id.
#[derive(Debug)]
pub struct Sessions {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    ttl: Duration,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new(SESSION_TTL)
    }
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new session for `role`; returns its id (256 random bits, hex), which only the
    /// cookie holds.
    pub fn create(&self, role: Role) -> String {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let id = hex::encode(bytes);
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.retain(|_, s| s.expires > now);
        while sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| *k);
            match oldest {
                Some(key) => sessions.remove(&key),
                None => break,
            };
        }
        sessions.insert(
            digest(&id),
            Session {
                role,
                expires: now + self.ttl,
            },
        );
        id
    }

    /// The role of a live session; an expired one is forgotten.
    pub fn role(&self, id: &str) -> Option<Role> {
        let key = digest(id);
        let mut sessions = self.lock();
        match sessions.get(&key) {
            Some(s) if s.expires > Instant::now() => Some(s.role),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends a session (sign-out).
    pub fn remove(&self, id: &str) {
        self.lock().remove(&digest(id));
    }
}

/// The session id the request's cookies carry, if any.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE_NAME && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// The `Set-Cookie` value that starts a session: HttpOnly, SameSite=Strict, scoped to
/// the dashboard, `Secure` when the server speaks TLS.
pub fn set_cookie(id: &str, secure: bool, ttl: Duration) -> String {
    format!(
        "{COOKIE_NAME}={id}; Path=/dashboard; Max-Age={}; HttpOnly; SameSite=Strict{}",
        ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends it.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE_NAME}=; Path=/dashboard; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_session_maps_its_id_to_its_role_until_it_expires() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let account = uuid::Uuid::new_v4();
        let id = sessions.create(Role::Customer(account));
        assert_eq!(id.len(), 64);
        assert_eq!(sessions.role(&id), Some(Role::Customer(account)));
        assert_eq!(sessions.role("not-a-session"), None);
        sessions.remove(&id);
        assert_eq!(sessions.role(&id), None);

        let expired = Sessions::new(Duration::ZERO);
        let id = expired.create(Role::Operator);
        assert_eq!(expired.role(&id), None);
    }

    #[test]
    fn the_cookie_is_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_static("a=1; lethe_dashboard=abc; b=2"),
        );
        assert_eq!(session_id(&headers).as_deref(), Some("abc"));
        assert_eq!(session_id(&HeaderMap::new()), None);
        let cookie = set_cookie("abc", false, SESSION_TTL);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(set_cookie("abc", true, SESSION_TTL).ends_with("; Secure"));
    }
}
