//! `allowed_outbound_hosts` parsing and matching, reimplementing Spin's rules
//! from `crates/outbound-networking-config/src/allowed_hosts.rs`:
//!
//! * an entry is `<scheme>://<host>[:<port>]`; `*` may stand for the scheme,
//!   the host, a leading subdomain (`*.example.com`) or the port;
//! * a missing port means the scheme's well-known port (http 80, https 443);
//!   ports may be ranges `a..b` (end exclusive);
//! * `self` / `self.alt` allow only relative (self) requests;
//! * a host may be an IP or CIDR network;
//! * `{{ var }}` templates are resolved from application variables;
//! * paths are rejected.
//!
//! A request the list does not allow fails with `ErrorCode::HttpRequestDenied`
//! (Spin's `factor-outbound-http/src/wasi.rs`, `prepare_request`).

use std::net::IpAddr;
use std::ops::Range;

use anyhow::{bail, Context, Result};

use crate::variables::{Resolver, Template};

/// The service-chaining domain: `http://<component>.spin.internal`.
pub const SERVICE_CHAINING_DOMAIN_SUFFIX: &str = ".spin.internal";

/// Returns the component id a `*.spin.internal` URL targets (Spin's
/// `parse_service_chaining_target`), or `None` for any other host.
pub fn service_chaining_target(uri: &http::Uri) -> Option<String> {
    let host = uri.authority()?.host().trim();
    let (first, rest) = host.split_once('.')?;
    (rest == "spin.internal").then(|| first.to_owned())
}

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>, // None = any
    host: HostPattern,
    ports: Option<PortPattern>, // None = any
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    AnySubdomain(String), // stored with its leading dot
    ToSelf,
    Exact(String),
    Cidr(IpAddr, u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Port(u16),
    Range(Range<u16>),
}

fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

fn parse_cidr(host: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = match host.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (host, None),
    };
    let ip: IpAddr = ip.trim_matches(|c| c == '[' || c == ']').parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.parse().ok().filter(|l| *l <= max)?,
        None => max,
    };
    Some((ip, len))
}

fn in_network(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

impl AllowedHost {
    /// Parses one literal entry (no templates).
    pub fn parse(entry: &str) -> Result<Self> {
        let url = entry.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            bail!("{url:?} does not contain a scheme (e.g., 'http://' or '*://')");
        };
        let (host, port) = rest.rsplit_once(':').unwrap_or((rest, ""));
        let port = match port.split_once('/') {
            Some((_, path)) if !path.is_empty() => {
                bail!("{url:?} has a path but is not allowed to")
            }
            Some((port, _)) => port,
            None => port,
        };
        let scheme = match scheme {
            "*" => None,
            s if s.chars().all(char::is_alphabetic) && !s.is_empty() => Some(s.to_owned()),
            s => bail!("scheme {s:?} contains non alphabetic character"),
        };
        let host = host.trim();
        let host = if host == "*" {
            HostPattern::Any
        } else if host == "self" || host == "self.alt" {
            HostPattern::ToSelf
        } else if let Some((ip, len)) = parse_cidr(host) {
            HostPattern::Cidr(ip, len)
        } else if matches!(host.split('/').nth(1), Some(p) if !p.is_empty()) {
            bail!("hosts must not contain paths");
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.contains('*') {
                bail!("Invalid allowed host {host}: wildcards are allowed only as prefixes");
            }
            HostPattern::AnySubdomain(format!(".{domain}"))
        } else if host.contains('*') {
            bail!("Invalid allowed host {host}: wildcards are allowed only as subdomains");
        } else {
            HostPattern::Exact(host.trim_end_matches('/').to_owned())
        };
        let ports = if port.is_empty() {
            let scheme_name = scheme.as_deref().unwrap_or("*");
            let p = well_known_port(scheme_name).with_context(|| {
                format!("no port was provided and the scheme {scheme_name:?} does not have a known default port number")
            })?;
            Some(PortPattern::Port(p))
        } else if port == "*" {
            None
        } else if let Some((a, b)) = port.split_once("..") {
            let a = a
                .parse()
                .with_context(|| format!("port range {port:?} contains non-number"))?;
            let b = b
                .parse()
                .with_context(|| format!("port range {port:?} contains non-number"))?;
            Some(PortPattern::Range(a..b))
        } else {
            Some(PortPattern::Port(
                port.parse()
                    .with_context(|| format!("port {port:?} is not a number"))?,
            ))
        };
        Ok(AllowedHost {
            scheme,
            host,
            ports,
        })
    }

    fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::AnySubdomain(suffix) => host.ends_with(suffix.as_str()),
            HostPattern::ToSelf => false,
            HostPattern::Exact(h) => h == host,
            HostPattern::Cidr(net, len) => host
                .trim_matches(|c| c == '[' || c == ']')
                .parse()
                .is_ok_and(|ip| in_network(*net, *len, ip)),
        };
        let port_ok = match &self.ports {
            None => true,
            Some(p) => match port.or_else(|| well_known_port(scheme)) {
                None => false,
                Some(port) => match p {
                    PortPattern::Port(x) => *x == port,
                    PortPattern::Range(r) => r.contains(&port),
                },
            },
        };
        scheme_ok && host_ok && port_ok
    }

    fn allows_relative(&self, schemes: &[&str]) -> bool {
        let scheme_ok = schemes
            .iter()
            .any(|s| self.scheme.as_deref().is_none_or(|x| x == *s));
        scheme_ok && matches!(self.host, HostPattern::Any | HostPattern::ToSelf)
    }
}

/// A component's resolved `allowed_outbound_hosts`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHostsConfig(Vec<AllowedHost>);

impl AllowedHostsConfig {
    /// Checks literal entries at manifest load; templated ones are checked
    /// once variables are known (as Spin defers them too).
    pub fn validate(hosts: &[String]) -> Result<()> {
        if hosts.len() == 1 && hosts[0] == "insecure:allow-all" {
            bail!("'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic'");
        }
        for h in hosts {
            let template = Template::parse(h)?;
            if template.is_literal() {
                AllowedHost::parse(h)?;
            }
        }
        Ok(())
    }

    /// Parses entries, rendering `{{ var }}` templates with `resolver`.
    pub fn parse(hosts: &[String], resolver: &Resolver) -> Result<Self> {
        Self::validate(hosts)?;
        let mut out = vec![];
        for h in hosts {
            let rendered = resolver.render(&Template::parse(h)?)?;
            out.push(
                AllowedHost::parse(&rendered)
                    .with_context(|| format!("invalid allowed_outbound_hosts entry {h:?}"))?,
            );
        }
        Ok(AllowedHostsConfig(out))
    }

    /// Whether an absolute URL may be requested. Like Spin's `OutboundUrl`,
    /// a URL without a scheme is read as `<default_scheme>://url`.
    pub fn allows_url(&self, url: &str, default_scheme: &str) -> bool {
        let parsed = match url::Url::parse(url) {
            Ok(u) if u.has_host() => u,
            _ => match url::Url::parse(&format!("{default_scheme}://{url}")) {
                Ok(u) => u,
                Err(_) => return false,
            },
        };
        let Some(host) = parsed.host_str() else {
            return false;
        };
        self.0
            .iter()
            .any(|h| h.allows(parsed.scheme(), host, parsed.port()))
    }

    /// Whether a relative (self) request is allowed for one of `schemes`.
    pub fn allows_relative(&self, schemes: &[&str]) -> bool {
        self.0.iter().any(|h| h.allows_relative(schemes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(hosts: &[&str]) -> AllowedHostsConfig {
        let hosts: Vec<String> = hosts.iter().map(|s| s.to_string()).collect();
        AllowedHostsConfig::parse(&hosts, &Resolver::default()).unwrap()
    }

    #[test]
    fn exact_host_uses_default_port() {
        let c = cfg(&["http://pay.spin.internal"]);
        assert!(c.allows_url("http://pay.spin.internal/payments", "https"));
        assert!(c.allows_url("http://pay.spin.internal:80/x", "https"));
        assert!(!c.allows_url("http://pay.spin.internal:8080/x", "https"));
        assert!(!c.allows_url("https://pay.spin.internal/x", "https"));
        assert!(!c.allows_url("http://grab.spin.internal/x", "https"));
    }

    #[test]
    fn subdomain_wildcard() {
        let c = cfg(&["http://*.svc.cluster.local", "http://*.spin.internal"]);
        assert!(c.allows_url(
            "http://broker-ingress.knative-eventing.svc.cluster.local/x",
            "https"
        ));
        assert!(c.allows_url("http://grab.spin.internal/", "https"));
        assert!(!c.allows_url("http://svc.cluster.local.evil.com/", "https"));
        assert!(!c.allows_url("http://example.com/", "https"));
    }

    #[test]
    fn ports_and_schemes() {
        let c = cfg(&["*://localhost:*", "https://api.example.com:8000..8010"]);
        assert!(c.allows_url("http://localhost:1234/", "https"));
        assert!(c.allows_url("redis://localhost:6379", "https"));
        assert!(c.allows_url("https://api.example.com:8005/", "https"));
        assert!(!c.allows_url("https://api.example.com:8010/", "https"));
        assert!(!c.allows_url("https://api.example.com/", "https"));
    }

    #[test]
    fn cidr_and_self() {
        let c = cfg(&["http://127.0.0.0/8:*", "http://self"]);
        assert!(c.allows_url("http://127.0.0.1:3000/", "https"));
        assert!(!c.allows_url("http://10.0.0.1:3000/", "https"));
        assert!(c.allows_relative(&["http", "https"]));
        assert!(!cfg(&["http://example.com"]).allows_relative(&["http", "https"]));
        assert!(cfg(&["*://*:*"]).allows_relative(&["http", "https"]));
    }

    #[test]
    fn invalid_entries_are_rejected() {
        for bad in [
            "example.com",
            "http://example.com/path",
            "http://ex*.com",
            "insecure:allow-all",
            "ftp://x.com",
        ] {
            AllowedHostsConfig::validate(&[bad.to_owned()]).unwrap_err();
        }
    }

    #[test]
    fn chaining_target() {
        let t = |s: &str| service_chaining_target(&s.parse().unwrap());
        assert_eq!(t("http://pay.spin.internal/x").as_deref(), Some("pay"));
        assert_eq!(t("http://pay.spin.internal:80/x").as_deref(), Some("pay"));
        assert_eq!(t("http://a.b.spin.internal/x"), None);
        assert_eq!(t("http://example.com/x"), None);
    }
}
