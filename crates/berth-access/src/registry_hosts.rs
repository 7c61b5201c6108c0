//! Which account's registry a `/v2` request addresses, and the host name of each
//! account's registry.
//!
//! Every account owns one registry namespace. With `[registry] base_domain` set (say
//! `registry.example.com`), the registry of account `123456789012` is the host
//! `123456789012.registry.example.com` (ECR's `<account>.dkr.ecr.<region>.amazonaws.com`
//! is the same scheme with `base_domain = "dkr.ecr.<region>.amazonaws.com"`). Any other
//! host name, and every host when `base_domain` is unset, addresses the default account
//! (`[registry] account_id`). The ECR API needs no host: it names the registry with
//! `registryId`.

use berth_types::AccountId;

/// Host-based routing of registries; see the module docs.
#[derive(Debug, Clone)]
pub struct RegistryHosts {
    default_account: AccountId,
    /// Lowercase, without a leading dot.
    base_domain: Option<String>,
}

impl RegistryHosts {
    pub fn new(default_account: AccountId, base_domain: Option<&str>) -> Self {
        let base_domain = base_domain
            .map(|d| d.trim().trim_start_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty());
        RegistryHosts {
            default_account,
            base_domain,
        }
    }

    pub fn default_account(&self) -> AccountId {
        self.default_account
    }

    /// The account whose registry `host` (a `Host` header: name and optional port)
    /// names.
    pub fn account_of_host(&self, host: Option<&str>) -> AccountId {
        let (Some(base), Some(host)) = (&self.base_domain, host) else {
            return self.default_account;
        };
        let name = strip_port(host);
        let Some((label, rest)) = name.split_once('.') else {
            return self.default_account;
        };
        if !rest.eq_ignore_ascii_case(base) {
            return self.default_account;
        }
        label.parse().unwrap_or(self.default_account)
    }

    /// `host[:port]` of `account`'s registry, as seen by a client that reached this
    /// server at `request_host` (whose port is kept). Without `base_domain` every
    /// account's registry is `request_host`, which `/v2` serves as the default account's:
    /// other registries are then reachable through the ECR API only.
    pub fn host_of(&self, account: AccountId, request_host: &str) -> String {
        match &self.base_domain {
            Some(base) => match port_of(request_host) {
                Some(port) => format!("{account}.{base}:{port}"),
                None => format!("{account}.{base}"),
            },
            None => request_host.to_string(),
        }
    }
}

/// The host name without its port (`[v6]:port` keeps its brackets).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // `[v6]` with its brackets: everything up to and including the first `]`.
        return host.find(']').and_then(|i| host.get(..=i)).unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn port_of(host: &str) -> Option<&str> {
    let after = if host.starts_with('[') {
        host.split_once(']')?.1
    } else {
        host
    };
    after
        .rsplit_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(s: &str) -> AccountId {
        s.parse().unwrap()
    }

    #[test]
    fn hosts_route_to_accounts_only_under_the_base_domain() {
        let h = RegistryHosts::new(acct("000000000000"), Some(".Registry.Example.com"));
        let of = |host| h.account_of_host(Some(host));
        assert_eq!(
            of("123456789012.registry.example.com"),
            acct("123456789012")
        );
        assert_eq!(
            of("123456789012.REGISTRY.example.com:5000"),
            acct("123456789012")
        );
        assert_eq!(of("registry.example.com"), acct("000000000000"));
        assert_eq!(of("12345.registry.example.com"), acct("000000000000"));
        assert_eq!(of("123456789012.other.example.com"), acct("000000000000"));
        assert_eq!(of("127.0.0.1:5000"), acct("000000000000"));
        assert_eq!(of("[::1]:5000"), acct("000000000000"));
        assert_eq!(h.account_of_host(None), acct("000000000000"));

        let off = RegistryHosts::new(acct("000000000000"), None);
        assert_eq!(
            off.account_of_host(Some("123456789012.registry.example.com")),
            acct("000000000000")
        );
    }

    #[test]
    fn registry_hosts_keep_the_port_the_client_used() {
        let h = RegistryHosts::new(acct("000000000000"), Some("reg.test"));
        assert_eq!(
            h.host_of(acct("111111111111"), "reg.test:5000"),
            "111111111111.reg.test:5000"
        );
        assert_eq!(
            h.host_of(acct("111111111111"), "reg.test"),
            "111111111111.reg.test"
        );
        assert_eq!(
            h.host_of(acct("111111111111"), "[::1]:8443"),
            "111111111111.reg.test:8443"
        );
        let off = RegistryHosts::new(acct("000000000000"), Some(""));
        assert_eq!(
            off.host_of(acct("111111111111"), "127.0.0.1:5000"),
            "127.0.0.1:5000"
        );
    }
}
