//! Client addresses: who is on the other end of a request, seen through trusted reverse
//! proxies, and the unit one client is throttled by; and the web origins whose scripts
//! may call the API (CORS).

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

/// The web origins whose browser scripts may read postd's answers (`--cors-origins`):
/// any (`*`), or a list of `scheme://host[:port]` compared as browsers send them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    Listed(Vec<String>),
}

impl FromStr for AllowedOrigins {
    type Err = String;

    /// `*`, or origins separated by commas. `*` stands alone: mixed with origins it would
    /// make the list meaningless, so it is refused rather than guessed at.
    fn from_str(text: &str) -> Result<AllowedOrigins, String> {
        let entries: Vec<&str> = text.split(',').map(str::trim).collect();
        if entries == ["*"] {
            return Ok(AllowedOrigins::Any);
        }
        let mut listed = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry == "*" {
                return Err("'*' allows every origin and can not be combined with others".into());
            }
            listed.push(origin(entry).ok_or_else(|| {
                format!(
                    "'{entry}' is not an origin such as https://app.example.com or \
                     http://localhost:3000 (scheme, host, optional port; no path)"
                )
            })?);
        }
        Ok(AllowedOrigins::Listed(listed))
    }
}

impl AllowedOrigins {
    /// Whether a request's `Origin` is allowed. Scheme and host are case-insensitive.
    pub fn admits(&self, origin: &str) -> bool {
        match self {
            AllowedOrigins::Any => true,
            AllowedOrigins::Listed(listed) => listed
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin)),
        }
    }
}

/// An origin's serialization (RFC 6454) in lower case, if `text` is one: `http` or `https`,
/// `://`, a host name, IPv4 address or bracketed IPv6 address, an optional port.
fn origin(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let authority = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))?;
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (address, after) = bracketed.split_once(']')?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':')?),
            };
            (address.parse::<Ipv6Addr>().is_ok(), port)
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (is_host_name(host), Some(port)),
            None => (is_host_name(authority), None),
        },
    };
    let port_ok = port.is_none_or(|port| {
        (1..=5).contains(&port.len())
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok()
    });
    (host_ok && port_ok).then_some(lower)
}

/// Dot-separated labels of letters, digits and `-` (an IPv4 address is one too).
fn is_host_name(host: &str) -> bool {
    (1..=253).contains(&host.len())
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
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

    #[test]
    fn cors_origins_are_star_alone_or_a_list_of_origins() {
        let parse = |text: &str| text.parse::<AllowedOrigins>();
        assert_eq!(parse("*"), Ok(AllowedOrigins::Any));
        let listed =
            parse("https://App.example.com, http://localhost:3000,http://[::1]:8080").unwrap();
        assert_eq!(
            listed,
            AllowedOrigins::Listed(vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into(),
                "http://[::1]:8080".into(),
            ])
        );
        assert!(listed.admits("https://app.example.com"));
        assert!(listed.admits("HTTP://LOCALHOST:3000"));
        assert!(!listed.admits("https://app.example.com:443"));
        assert!(!listed.admits("https://evil.example.com"));
        assert!(!listed.admits("null"));
        assert!(AllowedOrigins::Any.admits("null"));
        for bad in [
            "",
            "*,https://a.example",
            "app.example.com",
            "ftp://a.example",
            "https://a.example/",
            "https://a.example/path",
            "https://a.example:99999",
            "https://a.example:",
            "https://user@a.example",
            "https://[::1",
            "https://[nope]",
            "null",
            "https://a..example",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
