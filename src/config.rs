//! Validated settings built from the raw command-line arguments.

use std::fmt;
use std::time::Duration;

use http::Uri;

/// A problem with a setting, naming the flag so the user knows what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{flag} {value:?}: {reason}")]
    Url {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("--max-body {value:?}: {reason}")]
    Size { value: String, reason: String },
    #[error("{flag} 0: give a number above 0")]
    Count { flag: &'static str },
    #[error("{flag} {value}: give a number of seconds{}", if *.positive { " above 0" } else { ", 0 or more" })]
    Seconds {
        flag: &'static str,
        value: f64,
        positive: bool,
    },
    #[error("{flag} {value:?}: {reason}")]
    Age {
        flag: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// An age or period: a number and a unit, `s`, `m`, `h`, `d` or `w` (`7d`, `12h`).
pub fn parse_age(flag: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let err = |reason| ConfigError::Age {
        flag,
        value: value.to_string(),
        reason,
    };
    let trimmed = value.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| err("expected a number and a unit, e.g. 7d"))?;
    let scale: u64 = match unit.trim() {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "" => return Err(err("give a unit: s, m, h, d or w (e.g. 7d)")),
        _ => return Err(err("unknown unit; use s, m, h, d or w")),
    };
    n.checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| err("too large"))
}

/// Seconds from a flag as a duration; `positive` refuses 0 (timeouts).
pub fn seconds(flag: &'static str, value: f64, positive: bool) -> Result<Duration, ConfigError> {
    let ok = value.is_finite() && (value > 0.0 || (!positive && value == 0.0));
    if !ok {
        return Err(ConfigError::Seconds {
            flag,
            value,
            positive,
        });
    }
    Ok(Duration::from_secs_f64(value))
}

/// What a listener allows its clients (nginx's `client_header_timeout`,
/// `client_body_timeout`, `keepalive_timeout` and envoy's connection limit are the
/// references; the defaults are theirs or stricter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// A request head must arrive whole within this, from its first byte (or from the
    /// connection's start, for the first request).
    pub header_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    pub body_timeout: Duration,
    /// A connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// Connections served at once per listener; more wait to be accepted.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            max_connections: 10_000,
        }
    }
}

impl ServerLimits {
    /// Validates the raw flag values (seconds; a count of connections).
    pub fn from_flags(
        header_timeout: f64,
        body_timeout: f64,
        idle_timeout: f64,
        max_connections: usize,
    ) -> Result<ServerLimits, ConfigError> {
        if max_connections == 0 {
            return Err(ConfigError::Count {
                flag: "--max-connections",
            });
        }
        Ok(ServerLimits {
            header_timeout: seconds("--header-timeout", header_timeout, true)?,
            body_timeout: seconds("--body-timeout", body_timeout, true)?,
            idle_timeout: seconds("--idle-timeout", idle_timeout, true)?,
            max_connections,
        })
    }
}

/// A base URL graphtape forwards to (the upstream, the bot): scheme, authority and an
/// optional base path that is put in front of every request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub scheme: String,
    pub authority: String,
    pub base_path: String,
    /// The same, parsed once, for building request URIs without re-parsing.
    parsed: (http::uri::Scheme, http::uri::Authority),
}

impl Upstream {
    /// Parses `https://graph.microsoft.com` or `http://127.0.0.1:9000/prefix`.
    pub fn parse(value: &str) -> Result<Upstream, ConfigError> {
        Self::parse_flag("--upstream", value)
    }

    /// Like [`Upstream::parse`], naming `flag` in errors.
    pub fn parse_flag(flag: &'static str, value: &str) -> Result<Upstream, ConfigError> {
        let err = |reason: &str| ConfigError::Url {
            flag,
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = value
            .parse()
            .map_err(|e: http::uri::InvalidUri| err(&e.to_string()))?;
        let scheme = match uri.scheme_str() {
            Some("http") => "http",
            Some("https") => "https",
            Some(_) => return Err(err("the scheme must be http or https")),
            None => {
                let example = match flag {
                    "--bot-url" => "http://127.0.0.1:3978",
                    "--public-url" => "https://rec.example.com:8443",
                    _ => "https://graph.microsoft.com",
                };
                return Err(err(&format!("give a full URL, e.g. {example}")));
            }
        };
        let authority = uri.authority().ok_or_else(|| err("no host"))?;
        if authority.as_str().contains('@') {
            return Err(err("credentials in the URL are not supported"));
        }
        if uri.query().is_some() {
            return Err(err("a query string is not supported"));
        }
        let parsed = (
            uri.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP),
            authority.clone(),
        );
        Ok(Upstream {
            scheme: scheme.to_string(),
            authority: authority.as_str().to_string(),
            base_path: uri.path().trim_end_matches('/').to_string(),
            parsed,
        })
    }

    /// For `--bot-url`: a warning when the URL has a path, since every notification's
    /// own path is appended to it (`/api/calls` under `http://bot/api` goes to
    /// `http://bot/api/api/calls`).
    pub fn appended_path_warning(&self, flag: &str) -> Option<String> {
        (!self.base_path.is_empty()).then(|| {
            format!(
                "{flag} {self} has a path: each notification's path is appended to it \
                 (a notification to /api/calls goes to {self}/api/calls); give the bot's \
                 base URL, e.g. {}://{}",
                self.scheme, self.authority
            )
        })
    }

    /// The host name alone (no port, no brackets).
    pub fn host(&self) -> &str {
        let authority = self.authority.as_str();
        if let Some(rest) = authority.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
    }

    /// The upstream URI for a request path (with query) as the bot sent it.
    pub fn join(&self, path_and_query: &str) -> Uri {
        let joined = format!(
            "{}://{}{}{}",
            self.scheme, self.authority, self.base_path, path_and_query
        );
        joined.parse().unwrap_or_else(|_| {
            // The parts were valid URI pieces on their own; fall back to the bare base.
            format!("{}://{}/", self.scheme, self.authority)
                .parse()
                .unwrap_or_default()
        })
    }
}

impl Upstream {
    /// The upstream URI for a request as it arrived: scheme and authority parsed once,
    /// the request's own path and query reused as they are when there is no base path.
    pub fn join_uri(&self, request: &Uri) -> Uri {
        let path_and_query = match (self.base_path.is_empty(), request.path_and_query()) {
            (true, Some(pq)) => Some(pq.clone()),
            (_, pq) => {
                let pq = pq.map_or("/", |pq| pq.as_str());
                http::uri::PathAndQuery::try_from(format!("{}{pq}", self.base_path)).ok()
            }
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.parsed.0.clone());
        parts.authority = Some(self.parsed.1.clone());
        parts.path_and_query = path_and_query.or(Some(http::uri::PathAndQuery::from_static("/")));
        Uri::from_parts(parts)
            .unwrap_or_else(|_| self.join(request.path_and_query().map_or("/", |pq| pq.as_str())))
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

/// Parses a byte size: `1024`, `64k`, `16MiB`, `1G` (k/M/G are powers of 1024).
pub fn parse_size(value: &str) -> Result<usize, ConfigError> {
    let err = |reason: &str| ConfigError::Size {
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = value.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| err("expected a number of bytes, e.g. 16MiB"))?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(err("unknown unit; use k, MiB or G")),
    };
    n.checked_mul(scale).ok_or_else(|| err("too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_forms() {
        let u = Upstream::parse("https://graph.microsoft.com").unwrap();
        assert_eq!(u.authority, "graph.microsoft.com");
        assert_eq!(u.base_path, "");
        assert_eq!(
            u.join("/v1.0/communications/calls?x=1").to_string(),
            "https://graph.microsoft.com/v1.0/communications/calls?x=1"
        );
        let p = Upstream::parse("http://127.0.0.1:9000/prefix/").unwrap();
        assert_eq!(p.join("/a").to_string(), "http://127.0.0.1:9000/prefix/a");
        assert_eq!(p.to_string(), "http://127.0.0.1:9000/prefix");
        assert_eq!(p.host(), "127.0.0.1");
        assert_eq!(u.host(), "graph.microsoft.com");
        assert_eq!(Upstream::parse("http://[::1]:80").unwrap().host(), "::1");
        let req = Uri::from_static("http://127.0.0.1:7080/v1.0/calls?x=1");
        assert_eq!(
            u.join_uri(&req).to_string(),
            "https://graph.microsoft.com/v1.0/calls?x=1"
        );
        assert_eq!(
            p.join_uri(&Uri::from_static("/a?b")).to_string(),
            "http://127.0.0.1:9000/prefix/a?b"
        );
    }

    #[test]
    fn a_bot_url_with_a_path_is_warned_about() {
        let bot = Upstream::parse_flag("--bot-url", "http://127.0.0.1:3978/api/calls").unwrap();
        let w = bot.appended_path_warning("--bot-url").unwrap();
        assert!(
            w.contains("goes to http://127.0.0.1:3978/api/calls/api/calls"),
            "{w}"
        );
        assert!(w.ends_with("e.g. http://127.0.0.1:3978"), "{w}");
        let plain = Upstream::parse_flag("--bot-url", "http://127.0.0.1:3978/").unwrap();
        assert_eq!(plain.appended_path_warning("--bot-url"), None);
        let e = Upstream::parse_flag("--bot-url", "127.0.0.1:3978").unwrap_err();
        assert!(e.to_string().ends_with("e.g. http://127.0.0.1:3978"), "{e}");
    }

    #[test]
    fn bad_upstreams_say_why() {
        for (value, reason) in [
            ("graph.microsoft.com", "full URL"),
            ("ftp://x", "http or https"),
            ("https://u:p@x", "credentials"),
            ("https://x/?a=1", "query"),
        ] {
            let msg = Upstream::parse(value).unwrap_err().to_string();
            assert!(msg.contains(reason), "{value}: {msg}");
        }
    }

    #[test]
    fn seconds_say_what_is_allowed() {
        assert_eq!(seconds("--wait", 0.0, false).unwrap(), Duration::ZERO);
        assert_eq!(
            seconds("--wait", -1.0, false).unwrap_err().to_string(),
            "--wait -1: give a number of seconds, 0 or more"
        );
        assert_eq!(
            seconds("--bot-timeout", 0.0, true).unwrap_err().to_string(),
            "--bot-timeout 0: give a number of seconds above 0"
        );
        assert!(seconds("--wait", f64::NAN, false).is_err());
        assert_eq!(
            seconds("--x", 1.5, true).unwrap(),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn server_limits_refuse_zero() {
        let ok = ServerLimits::from_flags(30.0, 30.0, 75.0, 10_000).unwrap();
        assert_eq!(ok, ServerLimits::default());
        assert_eq!(
            ServerLimits::from_flags(30.0, 30.0, 75.0, 0)
                .unwrap_err()
                .to_string(),
            "--max-connections 0: give a number above 0"
        );
        assert!(ServerLimits::from_flags(0.0, 30.0, 75.0, 1)
            .unwrap_err()
            .to_string()
            .starts_with("--header-timeout 0"));
    }

    #[test]
    fn ages() {
        assert_eq!(
            parse_age("--older-than", "7d").unwrap(),
            Duration::from_secs(604_800)
        );
        assert_eq!(
            parse_age("--older-than", "90m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_age("--older-than", "2w").unwrap(),
            Duration::from_secs(1_209_600)
        );
        assert_eq!(
            parse_age("--older-than", "7").unwrap_err().to_string(),
            "--older-than \"7\": give a unit: s, m, h, d or w (e.g. 7d)"
        );
        assert!(parse_age("--older-than", "d").is_err());
        assert!(parse_age("--older-than", "3y").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_size("64k").unwrap(), 64 << 10);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
    }
}
