//! Where escalation webhooks may go.
//!
//! A webhook URL is chosen by whoever registers a system, and the service
//! then makes requests to it: left open, that lets a caller aim the
//! service at the cloud metadata endpoint, the database or anything else
//! on its private network. So receivers on loopback, private, link-local
//! and other non-public addresses are refused unless the operator allows
//! them (`[webhooks] allow = ["10.20.0.0/16", "hooks.internal"]`). The
//! check runs at registration and again at every delivery, on the
//! addresses the name resolves to *then*, and the connection goes to an
//! address that passed it, so a name re-pointed in DNS after registration
//! gains nothing.

mod special;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use ipnet::IpNet;

/// The operator's allow list.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    networks: Vec<IpNet>,
    hosts: Vec<String>,
}

/// Why a receiver was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// An entry of `webhooks.allow` that is none of the forms it may take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhooks.allow[{index}]: '{entry}' is not a CIDR, an address or a host name")]
pub struct AllowEntryError {
    pub index: usize,
    pub entry: String,
}

/// Addresses that are not on the public internet: every block of the
/// IANA special-purpose registries ([`special`]).
fn is_internal(ip: IpAddr) -> bool {
    special::block_of(ip).is_some()
}

impl Destinations {
    /// Parses allow entries: CIDRs (`10.0.0.0/8`), addresses, or host
    /// names (exact, case-insensitive).
    pub fn parse(entries: &[String]) -> Result<Self, AllowEntryError> {
        let mut d = Destinations::default();
        for (i, e) in entries.iter().enumerate() {
            let e = e.trim();
            if let Ok(net) = e.parse::<IpNet>() {
                d.networks.push(net);
            } else if let Ok(ip) = e.parse::<IpAddr>() {
                d.networks.push(IpNet::from(ip));
            } else if !e.is_empty()
                && e.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
            {
                d.hosts.push(e.to_ascii_lowercase());
            } else {
                return Err(AllowEntryError {
                    index: i,
                    entry: e.to_string(),
                });
            }
        }
        Ok(d)
    }

    fn allows(&self, host: &str, ip: IpAddr) -> bool {
        !is_internal(ip)
            || self.networks.iter().any(|n| n.contains(&ip))
            || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// The addresses of `url`'s host that a delivery may connect to: all
    /// it resolves to, each allowed, or a refusal naming the first that
    /// is not. Blocking (DNS).
    pub fn resolve(&self, url: &str) -> Result<Vec<SocketAddr>, Refused> {
        let (host, port) = host_port(url)?;
        let addrs: Vec<SocketAddr> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| Refused(format!("cannot resolve '{host}': {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(Refused(format!("'{host}' resolves to no address")));
        }
        if let Some(bad) = addrs.iter().find(|a| !self.allows(&host, a.ip())) {
            let block = special::block_of(bad.ip()).unwrap_or_default();
            return Err(Refused(format!(
                "'{host}' resolves to {}, an internal address ({block}); allow it in [webhooks] allow to deliver there",
                bad.ip()
            )));
        }
        Ok(addrs)
    }
}

/// The host and port of an http(s) URL.
fn host_port(url: &str) -> Result<(String, u16), Refused> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Refused("expected an http:// or https:// URL".into()))?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return Err(Refused("expected an http:// or https:// URL".into())),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| Refused("unterminated IPv6 address".into()))?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse()
            .map_err(|_| Refused(format!("'{p}' is not a port")))?,
        None => default_port,
    };
    if host.is_empty() {
        return Err(Refused("the URL names no host".into()));
    }
    Ok((host, port))
}

/// A ureq resolver that connects only to addresses the policy allows.
pub struct CheckedResolver(pub Destinations);

impl ureq::Resolver for CheckedResolver {
    fn resolve(&self, netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        self.0
            .resolve(&format!("http://{netloc}"))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_receivers_are_refused_unless_allowed() {
        let none = Destinations::default();
        for url in [
            "http://127.0.0.1:9001/hook",
            "http://localhost/hook",
            "http://10.1.2.3/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/",
            "http://[fd00::1]/",
            "http://[::ffff:192.168.1.1]/",
            "http://100.64.0.1/",
        ] {
            assert!(none.resolve(url).is_err(), "{url} was allowed");
        }
        let some = Destinations::parse(&["127.0.0.0/8".into(), "10.1.0.0/16".into()]).unwrap();
        assert!(some.resolve("http://127.0.0.1:9001/hook").is_ok());
        assert!(some.resolve("http://10.1.2.3/").is_ok());
        assert!(some.resolve("http://10.2.0.1/").is_err());
        assert!(some.resolve("http://169.254.169.254/").is_err());
    }

    #[test]
    fn public_addresses_pass_and_bad_entries_are_named() {
        assert!(
            Destinations::default()
                .resolve("https://8.8.8.8/hook")
                .is_ok()
        );
        let e = Destinations::parse(&["10.0.0.0/8".into(), "not a host!".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("webhooks.allow[1]"), "{e}");
    }
}
