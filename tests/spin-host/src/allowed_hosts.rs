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

use std::collections::HashMap;
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

/// The host part of an entry (Spin's `HostConfig::parse`).
fn parse_host(host: &str) -> Result<HostPattern> {
    let host = host.trim();
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if host == "self" || host == "self.alt" {
        return Ok(HostPattern::ToSelf);
    }
    if host.starts_with('{') {
        bail!("host lists are not yet supported");
    }
    if let Some((ip, len)) = parse_cidr(host) {
        return Ok(HostPattern::Cidr(ip, len));
    }
    let host = host.trim_end_matches('/');
    if host.contains('/') {
        bail!("must not include a path");
    }
    if let Some(domain) = host.strip_prefix("*.") {
        if domain.contains('*') {
            bail!("wildcards are allowed only as prefixes");
        }
        return Ok(HostPattern::AnySubdomain(format!(".{domain}")));
    }
    if host.contains('*') {
        bail!("wildcards are allowed only as subdomains");
    }
    let parsed = url::Host::parse(host)?;
    Ok(HostPattern::Exact(parsed.to_string()))
}

/// The port part of an entry (Spin's `PortConfig::parse`); `None` = any port.
fn parse_ports(port: &str, scheme: &str) -> Result<Option<PortPattern>> {
    if port.is_empty() {
        let p = well_known_port(scheme).with_context(|| {
            format!("no port was provided and the scheme {scheme:?} does not have a known default port number")
        })?;
        return Ok(Some(PortPattern::Port(p)));
    }
    if port == "*" {
        return Ok(None);
    }
    if port.starts_with('{') {
        bail!("port lists are not yet supported");
    }
    if let Some((a, b)) = port.split_once("..") {
        let a = a
            .parse()
            .with_context(|| format!("port range {port:?} contains non-number"))?;
        let b = b
            .parse()
            .with_context(|| format!("port range {port:?} contains non-number"))?;
        return Ok(Some(PortPattern::Range(a..b)));
    }
    Ok(Some(PortPattern::Port(port.parse().with_context(
        || format!("port {port:?} is not a number"),
    )?)))
}

impl AllowedHost {
    /// Parses one literal entry (no templates), with the checks and messages of
    /// Spin's `AllowedHostConfig::parse`: port, then scheme, then host.
    pub fn parse(entry: &str) -> Result<Self> {
        let url = entry.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            match url {
                "*" | ":" | "" | "?" => bail!("{url:?} is not an allowed outbound host format.\nHosts must be in the form <scheme>://<host>[:<port>], with '*' wildcards allowed for each.\nIf you intended to allow all outbound networking, you can use '*://*:*' - this will obviate all network sandboxing.\nLearn more: https://spinframework.dev/v3/http-outbound#granting-http-permissions-to-components"),
                _ => bail!("{url:?} does not contain a scheme (e.g., 'http://' or '*://')\nLearn more: https://spinframework.dev/v3/http-outbound#granting-http-permissions-to-components"),
            }
        };
        let (host, rest) = rest.rsplit_once(':').unwrap_or((rest, ""));
        let port = match rest.split_once('/') {
            Some((_, path)) if !path.is_empty() => {
                bail!("{url:?} has a path but is not allowed to")
            }
            Some((port, _)) => port,
            None => rest,
        };
        let ports = parse_ports(port, scheme)
            .with_context(|| format!("Invalid allowed host port {port:?}"))?;
        let scheme_pattern = match scheme {
            "*" => None,
            s if s.starts_with('{') => {
                bail!("Invalid allowed host scheme {s:?}: scheme lists are not supported")
            }
            s if s.chars().any(|c| !c.is_alphabetic()) => {
                bail!("Invalid allowed host scheme {s:?}: only alphabetic characters are allowed")
            }
            s => Some(s.to_owned()),
        };
        let host = parse_host(host).with_context(|| format!("Invalid allowed host {host:?}"))?;
        Ok(AllowedHost {
            scheme: scheme_pattern,
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
    /// Checks a component's entries at manifest load, as Spin's loader does
    /// (`AllowedHostsConfig::validate`): literal entries must parse; a templated
    /// one is rendered with the variables' `default`s and must parse too, unless
    /// a variable it uses has no default (then it can only be checked at run time).
    pub fn validate(hosts: &[String], default_of: impl Fn(&str) -> Option<String>) -> Result<()> {
        if hosts.len() == 1 && hosts[0] == "insecure:allow-all" {
            bail!("'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic'");
        }
        for h in hosts {
            let template = Template::parse(h)?;
            if template.is_literal() {
                AllowedHost::parse(h)?;
                continue;
            }
            let defaults: Option<HashMap<String, String>> = template
                .referenced()
                .map(|name| default_of(name).map(|v| (name.to_owned(), v)))
                .collect();
            let Some(defaults) = defaults else { continue };
            let resolved = template.render(&defaults)?;
            AllowedHost::parse(&resolved).with_context(|| {
                format!("using default variable value(s) with template {:?} results in invalid config {resolved:?}", template.to_string())
            })?;
        }
        Ok(())
    }

    /// Resolves entries for one instance, rendering `{{ var }}` templates with
    /// the variables' actual values (Spin: `AllowedHostsConfig::parse` at
    /// instance preparation). `http://*.spin.internal` stands for the chaining
    /// hosts of `component_ids`, the app's (retained) components, only.
    pub fn parse(hosts: &[String], resolver: &Resolver, component_ids: &[String]) -> Result<Self> {
        let mut out = vec![];
        for h in hosts {
            let host = AllowedHost::parse(&resolver.render(&Template::parse(h)?)?)?;
            match &host.host {
                HostPattern::AnySubdomain(d) if d == SERVICE_CHAINING_DOMAIN_SUFFIX => {
                    out.extend(component_ids.iter().map(|id| AllowedHost {
                        host: HostPattern::Exact(format!("{id}{SERVICE_CHAINING_DOMAIN_SUFFIX}")),
                        ..host.clone()
                    }));
                }
                _ => out.push(host),
            }
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
        AllowedHostsConfig::parse(&hosts, &Resolver::default(), &["grab".to_owned()]).unwrap()
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
        // Spin expands `*.spin.internal` to the app's components: nothing else matches.
        assert!(!c.allows_url("http://ghost.spin.internal/", "https"));
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
            AllowedHostsConfig::validate(&[bad.to_owned()], |_| None).unwrap_err();
        }
    }

    #[test]
    fn templates_are_checked_at_load_with_defaults_only() {
        let hosts = vec!["{{ broker_url }}".to_owned()];
        let err = AllowedHostsConfig::validate(&hosts, |_| {
            Some("http://broker.spin.internal/broker".to_owned())
        })
        .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "using default variable value(s) with template \"{{ broker_url }}\" results in invalid config \"http://broker.spin.internal/broker\": \
             Invalid allowed host \"broker.spin.internal/broker\": must not include a path"
        );
        AllowedHostsConfig::validate(&hosts, |_| Some("http://broker.spin.internal".to_owned()))
            .unwrap();
        // No default: nothing to check until run time.
        AllowedHostsConfig::validate(&hosts, |_| None).unwrap();
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
