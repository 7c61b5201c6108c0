//! Request quotas per account and IAM action: one keyed token bucket (GCRA, the
//! `governor` crate) per action, keyed by account id. Shared by the ECR API edge
//! (`ThrottlingException`) and the `/v2` gate (`429 TOOMANYREQUESTS`); both send
//! `Retry-After`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// A quota: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// The quotas of every action. Cheap to share (`Arc`).
pub struct RateLimits {
    by_action: HashMap<String, DefaultKeyedRateLimiter<String>>,
    default: Rate,
    default_limiters:
        parking_lot::Mutex<HashMap<String, std::sync::Arc<DefaultKeyedRateLimiter<String>>>>,
    clock: DefaultClock,
}

fn limiter(rate: Rate) -> DefaultKeyedRateLimiter<String> {
    let per_second = NonZeroU32::new(rate.per_second.max(1)).expect("positive");
    let burst = NonZeroU32::new(rate.burst.max(1)).expect("positive");
    RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
}

impl RateLimits {
    /// Quotas for the listed actions (`ecr:PutImage` → rate) and `default` for the rest.
    pub fn new(rates: impl IntoIterator<Item = (String, Rate)>, default: Rate) -> Self {
        RateLimits {
            by_action: rates
                .into_iter()
                .map(|(action, rate)| (action.to_ascii_lowercase(), limiter(rate)))
                .collect(),
            default,
            default_limiters: parking_lot::Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request of `action` by `account` from its bucket; `Err` carries how long
    /// to wait before the next request would be admitted.
    pub fn check(&self, action: &str, account: &str) -> Result<(), Duration> {
        let key = account.to_string();
        let verdict = match self.by_action.get(action.to_ascii_lowercase().as_str()) {
            Some(l) => l.check_key(&key),
            None => {
                let l = self
                    .default_limiters
                    .lock()
                    .entry(action.to_ascii_lowercase())
                    .or_insert_with(|| std::sync::Arc::new(limiter(self.default)))
                    .clone();
                l.check_key(&key)
            }
        };
        verdict.map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Whole seconds for a `Retry-After` header (at least 1).
    pub fn retry_after_secs(wait: Duration) -> u64 {
        wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_account_and_action_has_its_own_bucket() {
        let limits = RateLimits::new(
            [(
                "ecr:PutImage".to_string(),
                Rate {
                    per_second: 1,
                    burst: 3,
                },
            )],
            Rate {
                per_second: 1,
                burst: 1,
            },
        );
        for _ in 0..3 {
            assert!(limits.check("ecr:PutImage", "111111111111").is_ok());
        }
        let wait = limits.check("ecr:PutImage", "111111111111").unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert_eq!(RateLimits::retry_after_secs(wait), 1);
        // Another account, and the same account on another action, are unaffected.
        assert!(limits.check("ecr:PutImage", "222222222222").is_ok());
        assert!(
            limits.check("ECR:putimage", "222222222222").is_ok(),
            "actions are case-insensitive"
        );
        assert!(limits.check("ecr:ListImages", "111111111111").is_ok());
        assert!(limits.check("ecr:ListImages", "111111111111").is_err());
        assert!(limits.check("ecr:DescribeImages", "111111111111").is_ok());
    }
}
