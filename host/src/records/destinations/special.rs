//! The IANA special-purpose address registries, as a table.
//!
//! Sources: "IANA IPv4 Special-Purpose Address Registry" and "IANA IPv6
//! Special-Purpose Address Registry" (iana.org/assignments/
//! iana-ipv4-special-registry, iana-ipv6-special-registry), plus the
//! multicast blocks and the IPv4 "reserved for future use" block they
//! point to. Every block in them is refused as an escalation receiver
//! unless the operator allows it: none is an ordinary public web server,
//! several reach this host or its network by another name (NAT64
//! `64:ff9b::/96`, 6to4 `2002::/16`, Teredo `2001::/32`, IPv4-mapped and
//! IPv4-compatible IPv6), and the rest are benchmarking, documentation or
//! reserved space no receiver lives in.
//!
//! The one exception: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is the
//! IPv4 address itself to the operating system, so it is judged as that
//! address (public ones pass, as they would written as IPv4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use ipnet::IpNet;

/// (block, name in the registry). Order does not matter; the first
/// containing block names the refusal.
pub(super) const BLOCKS: &[(&str, &str)] = &[
    // IPv4 special-purpose registry.
    ("0.0.0.0/8", "\"this network\" (RFC 791)"),
    ("10.0.0.0/8", "private use (RFC 1918)"),
    ("100.64.0.0/10", "shared address space (RFC 6598)"),
    ("127.0.0.0/8", "loopback (RFC 1122)"),
    ("169.254.0.0/16", "link local (RFC 3927)"),
    ("172.16.0.0/12", "private use (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
    ("192.0.2.0/24", "documentation TEST-NET-1 (RFC 5737)"),
    ("192.31.196.0/24", "AS112-v4 (RFC 7535)"),
    ("192.52.193.0/24", "AMT (RFC 7450)"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)"),
    ("192.168.0.0/16", "private use (RFC 1918)"),
    (
        "192.175.48.0/24",
        "direct delegation AS112 service (RFC 7534)",
    ),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation TEST-NET-2 (RFC 5737)"),
    ("203.0.113.0/24", "documentation TEST-NET-3 (RFC 5737)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    ("240.0.0.0/4", "reserved (RFC 1112)"),
    ("255.255.255.255/32", "limited broadcast (RFC 919)"),
    // IPv6 special-purpose registry.
    ("::1/128", "loopback (RFC 4291)"),
    ("::/128", "unspecified (RFC 4291)"),
    ("::/96", "IPv4-compatible, deprecated (RFC 4291)"),
    ("64:ff9b::/96", "IPv4-IPv6 translation (RFC 6052)"),
    (
        "64:ff9b:1::/48",
        "local-use IPv4/IPv6 translation (RFC 8215)",
    ),
    ("100::/64", "discard-only (RFC 6666)"),
    ("100:0:0:1::/64", "dummy IPv6 prefix (RFC 9780)"),
    // More specific blocks first: the first match names the refusal.
    ("2001::/32", "TEREDO (RFC 4380)"),
    ("2001:2::/48", "benchmarking (RFC 5180)"),
    ("2001::/23", "IETF protocol assignments (RFC 2928)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("2002::/16", "6to4 (RFC 3056)"),
    (
        "2620:4f:8000::/48",
        "direct delegation AS112 service (RFC 7534)",
    ),
    ("3fff::/20", "documentation (RFC 9637)"),
    ("5f00::/16", "segment routing SIDs (RFC 9602)"),
    ("fc00::/7", "unique local (RFC 4193)"),
    ("fe80::/10", "link-local unicast (RFC 4291)"),
    ("fec0::/10", "site-local, deprecated (RFC 3879)"),
    ("ff00::/8", "multicast (RFC 4291)"),
];

static TABLE: LazyLock<Vec<(IpNet, &'static str)>> = LazyLock::new(|| {
    BLOCKS
        .iter()
        .filter_map(|(net, name)| net.parse::<IpNet>().ok().map(|n| (n, *name)))
        .collect()
});

/// The special-purpose block `ip` lies in, as `"BLOCK, NAME"`; `None` for
/// an ordinary public address.
pub(super) fn block_of(ip: IpAddr) -> Option<String> {
    if let IpAddr::V6(v6) = ip
        && let Some(v4) = mapped(v6)
    {
        return block_of(IpAddr::V4(v4)).map(|b| format!("{b}, as IPv4-mapped IPv6"));
    }
    TABLE
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(net, name)| format!("{net}, {name}"))
}

/// `::ffff:a.b.c.d` → `a.b.c.d`.
fn mapped(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    match v6.segments() {
        [0, 0, 0, 0, 0, 0xffff, ..] => v6.to_ipv4_mapped(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every block of the table, by its first, a middle and its last
    /// address, is refused; the listing itself is the test's subject.
    #[test]
    fn every_special_purpose_block_is_internal() {
        // The blocks the issue found missing, written out so that they can
        // never drop out of the table unnoticed.
        for required in [
            "64:ff9b::/96",
            "2002::/16",
            "198.18.0.0/15",
            "240.0.0.0/4",
            "::/96",
            "2001::/32",
            "100.64.0.0/10",
            "192.0.0.0/24",
        ] {
            assert!(
                BLOCKS.iter().any(|(b, _)| *b == required),
                "{required} is not in the table"
            );
        }
        assert_eq!(TABLE.len(), BLOCKS.len(), "a block does not parse");
        for (net, name) in TABLE.iter() {
            let first = net.network();
            let last = net.broadcast();
            for ip in [first, last] {
                assert!(
                    super::super::is_internal(ip),
                    "{ip} in {net} ({name}) is not refused"
                );
            }
        }
    }

    #[test]
    fn embedded_ipv4_forms_are_refused() {
        for ip in [
            // IPv4-mapped: judged as the IPv4 address.
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:198.18.0.1",
            // IPv4-compatible (deprecated), of any address.
            "::127.0.0.1",
            "::8.8.8.8",
            // NAT64 of the metadata endpoint and of a public address.
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::808:808",
            // 6to4 and Teredo.
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(super::super::is_internal(ip), "{ip} is not refused");
        }
    }

    #[test]
    fn public_addresses_are_not_special() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "198.20.0.1",
            "223.255.255.254",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(block_of(ip), None, "{ip}");
            assert!(!super::super::is_internal(ip), "{ip} is refused");
        }
    }

    #[test]
    fn a_refusal_names_the_block() {
        let ip: IpAddr = "198.18.7.7".parse().unwrap();
        assert_eq!(
            block_of(ip).as_deref(),
            Some("198.18.0.0/15, benchmarking (RFC 2544)")
        );
    }
}
