//! HTTP basic authentication against a web config's `basic_auth_users` (bcrypt hashes).
use std::{
    collections::{BTreeMap, HashSet},
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex},
};

use base64::Engine;
use hyper::header::HeaderValue;
use tokio::sync::Semaphore;

/// Credentials remembered as verified at most: a fleet's scrapers use one or two.
const VERIFIED_KEPT: usize = 64;

pub struct Users {
    hashes: BTreeMap<String, String>,
    /// Keyed hashes of (user, password) pairs bcrypt already accepted. bcrypt is slow on
    /// purpose (tens of ms at cost 10) and a scraper sends the same pair every few
    /// seconds; a random key means the set holds nothing a reader could test guesses on.
    verified: Mutex<HashSet<u64>>,
    key: RandomState,
    /// One bcrypt at a time: a flood of wrong passwords takes one core, not all of them.
    turn: Semaphore,
}

impl Users {
    /// Checks every hash now, so a bad one fails at start or reload, not at first use.
    pub(super) fn new(hashes: BTreeMap<String, String>) -> Result<Self, String> {
        for (user, hash) in &hashes {
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(format!(
                    "basic_auth_users.{user}: not a bcrypt hash (they start $2y$, $2b$ or \
                     $2a$); make one with `htpasswd -nbBC 10 '' PASSWORD | tr -d ':\\n'`"
                ));
            }
        }
        Ok(Self {
            hashes,
            verified: Mutex::default(),
            key: RandomState::new(),
            turn: Semaphore::new(1),
        })
    }

    /// Whether the request's `Authorization` header names a user with its password.
    pub(super) async fn allow(self: Arc<Self>, header: Option<HeaderValue>) -> bool {
        let Some((user, password)) = header.as_ref().and_then(credentials) else {
            return false;
        };
        let fingerprint = self.key.hash_one((&user, &password));
        if self.verified().contains(&fingerprint) {
            return true;
        }
        let known = self.hashes.contains_key(&user);
        // An unknown user costs a bcrypt too, so the time taken does not tell which
        // users exist.
        let Some(hash) = self
            .hashes
            .get(&user)
            .or_else(|| self.hashes.values().next())
            .cloned()
        else {
            return false;
        };
        let Ok(_turn) = self.turn.acquire().await else {
            return false;
        };
        let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        let allowed = known && matches;
        if allowed {
            let mut verified = self.verified();
            if verified.len() >= VERIFIED_KEPT {
                verified.clear();
            }
            verified.insert(fingerprint);
        }
        allowed
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `Basic base64(user:password)`, as RFC 7617 has it; anything else is no credentials.
fn credentials(header: &HeaderValue) -> Option<(String, String)> {
    let value = header.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(pairs: &[(&str, &str)]) -> Arc<Users> {
        let hashes = pairs
            .iter()
            .map(|(user, password)| (user.to_string(), bcrypt::hash(password, 4).unwrap()))
            .collect();
        Arc::new(Users::new(hashes).unwrap())
    }

    fn basic(user: &str, password: &str) -> Option<HeaderValue> {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Some(HeaderValue::from_str(&format!("Basic {token}")).unwrap())
    }

    #[tokio::test]
    async fn the_right_password_is_let_in_and_remembered() {
        let users = users(&[("prometheus", "s3cret:with:colons")]);
        assert!(
            Arc::clone(&users)
                .allow(basic("prometheus", "s3cret:with:colons"))
                .await
        );
        assert_eq!(users.verified().len(), 1);
        assert!(
            Arc::clone(&users)
                .allow(basic("prometheus", "s3cret:with:colons"))
                .await
        );
    }

    #[tokio::test]
    async fn a_wrong_password_an_unknown_user_or_none_is_refused() {
        let users = users(&[("prometheus", "s3cret")]);
        assert!(!Arc::clone(&users).allow(basic("prometheus", "s3cre")).await);
        assert!(!Arc::clone(&users).allow(basic("grafana", "s3cret")).await);
        assert!(!Arc::clone(&users).allow(None).await);
        let bearer = Some(HeaderValue::from_static("Bearer s3cret"));
        assert!(!Arc::clone(&users).allow(bearer).await);
        assert!(users.verified().is_empty());
    }
}
