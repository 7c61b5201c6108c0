//! Authentication and authorization failures: their reason, derived in this one place
//! from the error code each edge puts on its response ([`berth_types::telemetry::ErrorCode`]),
//! and a log of failed logins bounded to one line per source address per minute plus a
//! summary each minute. Nothing secret is logged: no credentials, no key ids.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why a request was refused, if it was refused by authentication or authorization.
/// `had_credentials` tells a `/v2` 401 for a missing `Authorization` header (the normal
/// first step of every Docker client) from one for credentials that did not verify.
pub fn reason(code: &str, had_credentials: bool) -> Option<&'static str> {
    Some(match code {
        // OCI (the /v2 gate and its token endpoint).
        "UNAUTHORIZED" if had_credentials => "bad_credentials",
        "UNAUTHORIZED" => "missing_credentials",
        "DENIED" => "denied",
        // AWS JSON 1.1 (ECR) and Query (IAM, STS) codes for the same SigV4 failures.
        "MissingAuthenticationTokenException" | "MissingAuthenticationToken" => {
            "missing_credentials"
        }
        "IncompleteSignatureException" | "IncompleteSignature" => "malformed_credentials",
        "UnrecognizedClientException" | "InvalidClientTokenId" => "unknown_key",
        "ExpiredTokenException" | "ExpiredToken" | "RequestExpired" => "expired",
        "InvalidSignatureException" | "SignatureDoesNotMatch" => "bad_signature",
        "AccessDeniedException" | "AccessDenied" => "denied",
        _ => return None,
    })
}

/// A failed login: credentials were presented and did not verify. Missing credentials
/// (a client's first, anonymous try) and authorization denials are not logins.
pub fn is_failed_login(reason: &str) -> bool {
    matches!(
        reason,
        "bad_credentials" | "malformed_credentials" | "unknown_key" | "expired" | "bad_signature"
    )
}

/// How long a source address stays quiet in the log after a line about it.
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most; past it new addresses are only summarised.
const MAX_SOURCES: usize = 10_000;

/// The failed-login log. Only refused requests touch its lock.
#[derive(Default)]
pub struct FailedLogins {
    last_logged: parking_lot::Mutex<HashMap<Option<IpAddr>, Instant>>,
    since_summary: AtomicU64,
    unlogged: AtomicU64,
}

impl FailedLogins {
    pub fn record(&self, source: Option<IpAddr>, edge: &str, reason: &str, request_id: &str) {
        self.since_summary.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut last = self.last_logged.lock();
        let quiet = last
            .get(&source)
            .is_some_and(|t| now.duration_since(*t) < WINDOW);
        if quiet || (last.len() >= MAX_SOURCES && !last.contains_key(&source)) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        last.insert(source, now);
        drop(last);
        let source = source.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        tracing::warn!(
            %source,
            edge,
            reason,
            request_id,
            "failed login (further ones from this address are summarised for a minute)"
        );
    }

    /// Logs how many failed logins the last period saw (if any) and forgets addresses
    /// whose quiet minute is over. Returns (failed logins, of which not logged singly).
    pub fn summarise(&self) -> (u64, u64) {
        let total = self.since_summary.swap(0, Ordering::Relaxed);
        let unlogged = self.unlogged.swap(0, Ordering::Relaxed);
        let now = Instant::now();
        let sources = {
            let mut last = self.last_logged.lock();
            last.retain(|_, t| now.duration_since(*t) < WINDOW);
            last.len()
        };
        if total > 0 {
            tracing::warn!(
                failed_logins = total,
                not_logged_singly = unlogged,
                recent_sources = sources,
                "failed logins in the last minute"
            );
        }
        (total, unlogged)
    }

    /// Runs [`FailedLogins::summarise`] every minute.
    pub fn spawn_summary(self: std::sync::Arc<Self>) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + WINDOW, WINDOW);
            loop {
                tick.tick().await;
                self.summarise();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_come_from_every_edges_codes() {
        assert_eq!(reason("UNAUTHORIZED", false), Some("missing_credentials"));
        assert_eq!(reason("UNAUTHORIZED", true), Some("bad_credentials"));
        assert_eq!(
            reason("UnrecognizedClientException", true),
            Some("unknown_key")
        );
        assert_eq!(reason("InvalidClientTokenId", true), Some("unknown_key"));
        assert_eq!(reason("SignatureDoesNotMatch", true), Some("bad_signature"));
        assert_eq!(reason("AccessDeniedException", true), Some("denied"));
        assert_eq!(reason("MANIFEST_UNKNOWN", true), None);
        assert!(is_failed_login("bad_signature"));
        assert!(!is_failed_login("missing_credentials") && !is_failed_login("denied"));
    }

    #[test]
    fn one_line_per_source_per_minute_and_all_counted() {
        let log = FailedLogins::default();
        let a = Some("192.0.2.1".parse().unwrap());
        let b = Some("192.0.2.2".parse().unwrap());
        for _ in 0..5 {
            log.record(a, "oci", "bad_credentials", "r1");
        }
        log.record(b, "ecr", "unknown_key", "r2");
        // 6 failures: the first of each source logged, 4 only counted.
        assert_eq!(log.summarise(), (6, 4));
        assert_eq!(log.summarise(), (0, 0));
    }
}
