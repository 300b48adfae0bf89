//! Client addresses: who is on the other end of a request, seen through trusted reverse
//! proxies, and the unit one client is throttled by.

use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

/// An address block, `10.0.0.0/8` or `fd00::/8`; a bare address is a block of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let bad = || format!("'{text}' is not an address block such as 10.0.0.0/8 or ::1/128");
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network = canonical(address.parse::<IpAddr>().map_err(|_| bad())?);
        let bits = match network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            None => bits,
            Some(digits) => match digits.parse::<u8>() {
                Ok(n) if n <= bits && !digits.starts_with('+') => n,
                _ => return Err(bad()),
            },
        };
        Ok(Cidr { network, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, canonical(address)) {
            (IpAddr::V4(net), IpAddr::V4(addr)) => same_prefix(
                u32::from(net).into(),
                u32::from(addr).into(),
                self.prefix,
                32,
            ),
            (IpAddr::V6(net), IpAddr::V6(addr)) => {
                same_prefix(u128::from(net), u128::from(addr), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (a >> shift) == (b >> shift)
}

/// IPv4 clients reaching a dual-stack socket appear as `::ffff:a.b.c.d`; they are IPv4
/// clients for every rule here.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The client's address. When the peer is a trusted proxy, walk `X-Forwarded-For` from the
/// right (the entries nearest to us, added by proxies we trust) and take the first entry
/// that is not itself a trusted proxy; entries further left were written by the client and
/// prove nothing. A peer that is not trusted is the client, whatever the header says.
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |address: IpAddr| trusted.iter().any(|cidr| cidr.contains(address));
    let peer = canonical(peer);
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for entry in forwarded_for.iter().rev().flat_map(|h| h.rsplit(',')) {
        // An unparsable entry ends the chain: what lies beyond it can not be trusted.
        let Some(address) = parse_forwarded_entry(entry) else {
            break;
        };
        client = address;
        if !is_trusted(address) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]:port` or `v4:port`.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(address) = entry.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    entry
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|s| canonical(s.ip()))
}

/// The unit throttling counts by: the address itself for IPv4, its /64 for IPv6, since one
/// IPv6 client usually holds a whole /64 and could otherwise rotate through it.
pub fn throttle_unit(address: IpAddr) -> IpAddr {
    match canonical(address) {
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(network))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    #[test]
    fn blocks_parse_and_contain() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.200.3.4")));
        assert!(net.contains(ip("::ffff:10.1.1.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        assert!("::1".parse::<Cidr>().unwrap().contains(ip("::1")));
        assert!("fd00::/8".parse::<Cidr>().unwrap().contains(ip("fd12::1")));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x",
            "10.0.0.0/",
            "10.0.0.0/+8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = cidrs(&["127.0.0.1", "10.0.0.0/8"]);
        // Untrusted peer: the header is ignored.
        assert_eq!(
            client_address(ip("1.2.3.4"), &["9.9.9.9"], &trusted),
            ip("1.2.3.4")
        );
        // Trusted peer: the right-most untrusted entry.
        assert_eq!(
            client_address(ip("127.0.0.1"), &["6.6.6.6, 5.5.5.5, 10.1.1.1"], &trusted),
            ip("5.5.5.5")
        );
        // Several headers read as one list, in order.
        assert_eq!(
            client_address(ip("127.0.0.1"), &["6.6.6.6", "5.5.5.5"], &trusted),
            ip("5.5.5.5")
        );
        // Only proxies in the chain: the left-most of them.
        assert_eq!(
            client_address(ip("127.0.0.1"), &["10.0.0.7"], &trusted),
            ip("10.0.0.7")
        );
        // No header, or garbage: the peer.
        assert_eq!(
            client_address(ip("127.0.0.1"), &[], &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), &["nonsense, 5.5.5.5"], &trusted),
            ip("5.5.5.5")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), &["garbage"], &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), &["[2001:db8::1]:443"], &trusted),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn ipv6_clients_are_one_unit_per_64() {
        assert_eq!(
            throttle_unit(ip("2001:db8:1:2:aaaa::1")),
            throttle_unit(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            throttle_unit(ip("2001:db8:1:2::1")),
            throttle_unit(ip("2001:db8:1:3::1"))
        );
        assert_eq!(throttle_unit(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
    }
}
