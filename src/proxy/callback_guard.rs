//! Which `callbackUri` values graphtape may mint a route for: an `http`/`https` URL
//! with a host, never one of graphtape's own listeners (under any spelling: a route
//! to itself would loop notifications through graphtape), and, with
//! `--callback-allow`, only the hosts allowed.
//!
//! Pure but for one question asked of the operating system: whether an IP literal is
//! an address of this machine (a listener bound to `0.0.0.0` answers on all of them).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a callback URL gets no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unroutable {
    /// Not an absolute `http` or `https` URL with a host.
    NotHttp,
    /// It points at one of graphtape's own listeners.
    OwnListener,
    /// `--callback-allow` is set and does not list its host.
    NotAllowed,
}

impl Unroutable {
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Unroutable::NotHttp => "not an http or https URL with a host",
            Unroutable::OwnListener => "it points at graphtape's own listener",
            Unroutable::NotAllowed => "its host is not in --callback-allow",
        }
    }
}

/// What a callback URL must not point at, and what it may.
#[derive(Debug, Clone, Default)]
pub struct CallbackGuard {
    /// graphtape's listening addresses (API and callback listeners).
    pub listeners: Vec<SocketAddr>,
    /// `--public-url`'s host and port: graphtape under its public name.
    pub public: Option<(String, u16)>,
    /// `--callback-allow`: `host`, `host:port` or `*.domain`; empty allows any host.
    pub allow: Vec<String>,
}

/// The host (lower-case, no brackets, no trailing dot) and port of a URL.
pub(crate) struct Parsed {
    pub host: String,
    pub port: u16,
}

/// Splits an absolute `http`/`https` URL; None for anything else.
pub(crate) fn parse(url: &str) -> Option<Parsed> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (host, port)
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    let port = match port {
        None | Some("") => default_port,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
        Some(_) => return None,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    Some(Parsed { host, port })
}

/// `scheme://host:port` of a URL, for log lines (no userinfo, path or query).
pub(crate) fn origin(url: &str) -> String {
    match (url.split_once("://"), parse(url)) {
        (Some((scheme, _)), Some(p)) => format!("{scheme}://{}:{}", p.host, p.port),
        _ => "(not an http URL)".into(),
    }
}

impl CallbackGuard {
    /// The host and port a base URL (`--public-url`) is reached at.
    pub fn host_port(url: &crate::config::Upstream) -> (String, u16) {
        let parsed = parse(&url.to_string());
        parsed.map_or_else(
            || (url.host().to_ascii_lowercase(), 0),
            |p| (p.host, p.port),
        )
    }

    /// Whether a route may be minted for `url`; `is_local` says whether an IP is an
    /// address of this machine.
    pub(crate) fn check(
        &self,
        url: &str,
        is_local: impl Fn(IpAddr) -> bool,
    ) -> Result<(), Unroutable> {
        let target = parse(url).ok_or(Unroutable::NotHttp)?;
        if self.is_own(&target, is_local) {
            return Err(Unroutable::OwnListener);
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|a| allows(a, &target)) {
            return Err(Unroutable::NotAllowed);
        }
        Ok(())
    }

    fn is_own(&self, target: &Parsed, is_local: impl Fn(IpAddr) -> bool) -> bool {
        if let Some((host, port)) = &self.public {
            if *host == target.host && *port == target.port {
                return true;
            }
        }
        let ips = host_ips(&target.host);
        self.listeners
            .iter()
            .filter(|l| l.port() == target.port)
            .any(|listener| {
                let bound = canonical(listener.ip());
                ips.iter().any(|&ip| {
                    // Connecting to 0.0.0.0 or :: reaches this machine.
                    ip.is_unspecified()
                        || ip == bound
                        || bound.is_unspecified() && (ip.is_loopback() || is_local(ip))
                })
            })
    }
}

/// `host`, `host:port`, `[v6]:port` or `*.domain` (any subdomain), compared without
/// case or a trailing dot.
fn allows(pattern: &str, target: &Parsed) -> bool {
    let pattern = pattern.trim().to_ascii_lowercase();
    let (host, port) = if let Some(v6) = pattern.strip_prefix('[') {
        match v6.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, port)) => (host, port.strip_prefix(':')),
            None => return false,
        }
    } else if pattern.matches(':').count() == 1 {
        let (host, port) = pattern.split_once(':').unwrap_or((&pattern, ""));
        (host, Some(port))
    } else {
        (pattern.as_str(), None)
    };
    if let Some(port) = port {
        if port.parse::<u16>().ok() != Some(target.port) {
            return false;
        }
    }
    let host = host.trim_end_matches('.');
    match host.strip_prefix("*.") {
        Some(domain) => target.host.ends_with(&format!(".{domain}")),
        None => host == target.host,
    }
}

/// The addresses a host names without DNS: an IP literal in any spelling the C
/// resolver accepts (`127.1`, `0x7f.0.0.1`, `2130706433`), and `localhost`.
fn host_ips(host: &str) -> Vec<IpAddr> {
    if host == "localhost" || host.ends_with(".localhost") {
        return vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
    }
    if let Ok(v6) = host.split('%').next().unwrap_or(host).parse::<Ipv6Addr>() {
        return vec![canonical(v6.into())];
    }
    inet_aton(host)
        .map(|v4| vec![v4.into()])
        .unwrap_or_default()
}

/// IPv4-mapped IPv6 addresses compare as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// IPv4 as `inet_aton` reads it: one to four parts, each decimal, octal (leading 0)
/// or hex (0x); the last part fills the remaining bytes.
fn inet_aton(text: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        let (digits, radix) = if let Some(hex) = part.strip_prefix("0x").or(part.strip_prefix("0X"))
        {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (*part, 10)
        };
        if digits.is_empty() && radix != 16 {
            return None;
        }
        let value = if digits.is_empty() {
            0
        } else {
            u32::from_str_radix(digits, radix).ok()?
        };
        values.push(value);
    }
    let (last, leading) = values.split_last()?;
    if leading.iter().any(|&v| v > 255) {
        return None;
    }
    let room = 32 - 8 * leading.len() as u32;
    if room < 32 && *last >= 1 << room {
        return None;
    }
    let mut n: u32 = 0;
    for (i, &v) in leading.iter().enumerate() {
        n |= v << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from(n | last))
}

/// Whether `ip` is an address of this machine: binding a socket to it succeeds.
pub(crate) fn is_local_address(ip: IpAddr) -> bool {
    std::net::TcpListener::bind((ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(listeners: &[&str]) -> CallbackGuard {
        CallbackGuard {
            listeners: listeners.iter().map(|l| l.parse().unwrap()).collect(),
            public: Some(("rec.example.com".into(), 8443)),
            allow: vec![],
        }
    }

    fn never(_: IpAddr) -> bool {
        false
    }

    #[test]
    fn only_http_urls_with_a_host() {
        let g = guard(&[]);
        assert!(g.check("https://bot.contoso.com/api/calls", never).is_ok());
        assert!(g.check("HTTP://bot:3978", never).is_ok());
        for bad in [
            "file:///etc/passwd",
            "gopher://bot/x",
            "https://",
            "https:///path",
            "https://:80/x",
            "/relative",
            "https://bot:port/x",
            "https://[::1/x",
            "javascript:alert(1)",
        ] {
            assert_eq!(g.check(bad, never), Err(Unroutable::NotHttp), "{bad}");
        }
    }

    #[test]
    fn own_listeners_under_any_spelling() {
        let g = guard(&["127.0.0.1:7080", "0.0.0.0:8443"]);
        for own in [
            "http://127.0.0.1:7080/x",
            "http://localhost:7080/x",
            "http://LOCALHOST.:7080/x",
            "http://0.0.0.0:7080/x",
            "http://[::]:7080/x",
            "http://127.1:7080/x",
            "http://2130706433:7080/x",
            "http://0x7f.0.0.1:7080/x",
            "http://[::ffff:127.0.0.1]:7080/x",
            "http://user:pw@127.0.0.1:7080/x",
            "https://127.0.0.2:8443/x",
            "https://[::1]:8443/x",
            "https://rec.example.com:8443/x",
            "https://REC.EXAMPLE.COM.:8443/callback/abc",
            "http://a.localhost:8443/",
        ] {
            assert_eq!(g.check(own, never), Err(Unroutable::OwnListener), "{own}");
        }
        for other in [
            "http://127.0.0.2:7080/x",
            "http://[::1]:7080/x",
            "http://127.0.0.1:7081/x",
            "https://rec.example.com/x",
            "https://10.1.2.3:8443/x",
            "https://bot.contoso.com:8443/x",
        ] {
            assert!(g.check(other, never).is_ok(), "{other}");
        }
        // A listener on all addresses is reached through any of this machine's.
        assert_eq!(
            g.check("https://10.1.2.3:8443/x", |ip| ip
                == IpAddr::from([10, 1, 2, 3])),
            Err(Unroutable::OwnListener)
        );
        let https_default = guard(&["0.0.0.0:443"]);
        assert_eq!(
            https_default.check("https://localhost/x", never),
            Err(Unroutable::OwnListener)
        );
    }

    #[test]
    fn allow_list() {
        let mut g = guard(&[]);
        g.allow = vec![
            "bot.contoso.com".into(),
            "*.example.net".into(),
            "10.0.0.5:3978".into(),
        ];
        for ok in [
            "https://bot.contoso.com/api",
            "https://BOT.contoso.com.:8443/api",
            "https://a.b.example.net/x",
            "http://10.0.0.5:3978/x",
        ] {
            assert!(g.check(ok, never).is_ok(), "{ok}");
        }
        for refused in [
            "https://evil.com/x",
            "https://example.net/x",
            "https://bot.contoso.com.evil.com/x",
            "http://10.0.0.5:3979/x",
        ] {
            assert_eq!(
                g.check(refused, never),
                Err(Unroutable::NotAllowed),
                "{refused}"
            );
        }
    }

    #[test]
    fn inet_aton_spellings() {
        for (text, ip) in [
            ("127.0.0.1", [127, 0, 0, 1]),
            ("127.1", [127, 0, 0, 1]),
            ("0177.0.0.1", [127, 0, 0, 1]),
            ("0x7f000001", [127, 0, 0, 1]),
            ("2130706433", [127, 0, 0, 1]),
            ("10.1.258", [10, 1, 1, 2]),
            ("0", [0, 0, 0, 0]),
        ] {
            assert_eq!(inet_aton(text), Some(Ipv4Addr::from(ip)), "{text}");
        }
        for bad in [
            "256.0.0.1",
            "1.2.3.4.5",
            "bot",
            "1..2",
            "09",
            "4294967296",
            "",
        ] {
            assert_eq!(inet_aton(bad), None, "{bad}");
        }
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn no_input_panics(url in any::<String>(), host in "[0-9a-fx.]{0,20}") {
            let g = CallbackGuard {
                listeners: vec!["0.0.0.0:8443".parse().unwrap()],
                public: Some(("rec.example.com".into(), 443)),
                allow: vec![url.clone(), "*.example.com".into()],
            };
            let _ = g.check(&url, |_| false);
            let _ = g.check(&format!("http://{host}:8443/x"), |_| false);
            let _ = origin(&url);
            let _ = inet_aton(&host);
        }

        /// Dotted-quad decimal reads as std reads it; every spelling of a loopback
        /// address at a listener's port is graphtape's own.
        #[test]
        fn loopback_in_any_spelling_is_own(a in any::<u8>(), b in any::<u8>(), c in any::<u8>()) {
            let ip = Ipv4Addr::new(127, a, b, c);
            prop_assert_eq!(inet_aton(&ip.to_string()), Some(ip));
            let n = u32::from(ip);
            let g = CallbackGuard { listeners: vec!["0.0.0.0:7080".parse().unwrap()], ..Default::default() };
            for spelled in [ip.to_string(), n.to_string(), format!("{n:#x}"), format!("127.{}", n & 0xff_ffff)] {
                prop_assert_eq!(g.check(&format!("http://{spelled}:7080/x"), |_| false), Err(Unroutable::OwnListener), "{}", spelled);
            }
        }
    }
}
