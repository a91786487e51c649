//! Outbound HTTP that cannot be turned inward (SSRF): URL checks (https only, no
//! credentials, no private, loopback or link-local literals), a resolver that keeps
//! only public addresses (so a hostname that resolves inward is refused at connect
//! time), and the media [`Fetcher`] built on them. Inbound media downloads and tenant
//! status callbacks both go through here.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Redirects a media download may follow (each hop is checked again).
pub const MAX_REDIRECTS: usize = 3;
/// Whole-request timeout per media download.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);


/// HTTP clients for inbound media. `public` refuses plain http, private and loopback
/// addresses (checked on every resolved address and every redirect hop) — provider
/// media URLs are public https. `local` allows loopback http and is used only for
/// the sandbox provider. Both follow at most [`MAX_REDIRECTS`] redirects and give
/// up after [`FETCH_TIMEOUT`].
#[derive(Clone, Debug)]
pub struct Fetcher {
    public: reqwest::Client,
    local: reqwest::Client,
}

impl Default for Fetcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Fetcher {
    pub fn new() -> Self {
        let public_policy = reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match check_url(attempt.url(), false) {
                Ok(()) => attempt.follow(),
                Err(why) => attempt.error(why),
            }
        });
        let local_policy = reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match check_url(attempt.url(), true) {
                Ok(()) => attempt.follow(),
                Err(why) => attempt.error(why),
            }
        });
        let base = || {
            reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .connect_timeout(Duration::from_secs(3))
                .no_proxy()
                .user_agent("sms-dispatch-inbound-media/1")
        };
        Self {
            public: base()
                .redirect(public_policy)
                .dns_resolver(std::sync::Arc::new(PublicOnly))
                .build()
                .expect("static HTTP client configuration is valid"),
            local: base().redirect(local_policy).build().expect("static HTTP client configuration is valid"),
        }
    }

    /// Downloads `url` whole, up to `limit` bytes.
    pub async fn download(&self, url: &str, allow_local: bool, limit: usize) -> Result<Downloaded, FetchError> {
        let parsed = url::Url::parse(url).map_err(|_| FetchError::Refused("not a URL".into()))?;
        check_url(&parsed, allow_local).map_err(FetchError::Refused)?;
        let client = if allow_local { &self.local } else { &self.public };
        let mut resp = client.get(parsed).send().await.map_err(classify_reqwest)?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(if status >= 500 || status == 429 { FetchError::Transient(format!("http_{status}")) } else { FetchError::Http(status) });
        }
        if resp.content_length().is_some_and(|l| l > limit as u64) {
            return Err(FetchError::TooLarge);
        }
        let served_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify_reqwest)? {
            if bytes.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Downloaded { bytes, served_type })
    }
}

#[derive(Debug, Clone)]
pub struct Downloaded {
    pub bytes: Vec<u8>,
    pub served_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("refused_url: {0}")]
    Refused(String),
    #[error("too_large")]
    TooLarge,
    #[error("too_many_redirects")]
    TooManyRedirects,
    #[error("http_{0}")]
    Http(u16),
    #[error("{0}")]
    Transient(String),
}

impl FetchError {
    /// The short code stored on the media item.
    pub fn code(&self) -> String {
        match self {
            Self::Refused(_) => "refused_url".into(),
            Self::TooLarge => "too_large".into(),
            Self::TooManyRedirects => "too_many_redirects".into(),
            Self::Http(s) => format!("http_{s}"),
            Self::Transient(c) => c.clone(),
        }
    }
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

fn classify_reqwest(e: reqwest::Error) -> FetchError {
    if e.is_redirect() {
        // Our redirect policy's own refusal says which rule it broke.
        if format!("{e:?}").contains("redirects") {
            FetchError::TooManyRedirects
        } else {
            FetchError::Refused("redirect refused".into())
        }
    } else if e.is_timeout() {
        FetchError::Transient("timeout".into())
    } else {
        FetchError::Transient("network".into())
    }
}

/// Scheme and literal-address checks for a URL we fetch from or post to (hostnames
/// are checked again after resolution by [`PublicOnly`]).
pub fn check_public_url(u: &url::Url, allow_local: bool) -> Result<(), String> {
    check_url(u, allow_local)
}

fn check_url(u: &url::Url, allow_local: bool) -> Result<(), String> {
    match (u.scheme(), allow_local) {
        ("https", _) | ("http", true) => {}
        (other, _) => return Err(format!("scheme {other} not allowed")),
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("credentials in URL".into());
    }
    if allow_local {
        return Ok(());
    }
    match u.host() {
        Some(url::Host::Ipv4(ip)) if !is_public_ip(IpAddr::V4(ip)) => Err("non-public address".into()),
        Some(url::Host::Ipv6(ip)) if !is_public_ip(IpAddr::V6(ip)) => Err("non-public address".into()),
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost") => Err("non-public address".into()),
        None => Err("no host".into()),
        _ => Ok(()),
    }
}

pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xC0) == 64)
                || (o[0] == 198 && (o[1] & 0xFE) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_ip(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            !(v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || (seg[0] & 0xFE00) == 0xFC00 || (seg[0] & 0xFFC0) == 0xFE80)
        }
    }
}

/// Resolves hostnames and keeps only public addresses (no SSRF into the VPC,
/// loopback or link-local metadata endpoints via DNS).
pub(crate) struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.filter(|a| is_public_ip(a.ip())).collect();
            if addrs.is_empty() {
                return Err("the host has no public address".into());
            }
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}


/// The URL a callback may be posted to: public https, or loopback http when the
/// platform allows it (the local runner).
pub fn callback_target(url: &str, loopback_allowed: bool) -> Result<url::Url, String> {
    let u = url::Url::parse(url).map_err(|_| "not a URL".to_string())?;
    check_public_url(&u, loopback_allowed && is_loopback(&u))?;
    Ok(u)
}

/// A loopback host: 127.0.0.0/8, ::1 or `localhost`.
pub fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{check_url, is_public_ip};

    #[test]
    fn public_addresses_only() {
        for ip in ["10.0.0.1", "127.0.0.1", "169.254.169.254", "192.168.1.1", "172.16.0.1", "100.64.0.1", "0.0.0.0", "::1", "fd00::1", "fe80::1", "::ffff:127.0.0.1"] {
            assert!(!is_public_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "52.94.236.248", "2606:4700::1111"] {
            assert!(is_public_ip(ip.parse().unwrap()), "{ip}");
        }
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(check_url(&u("https://api.twilio.com/x.png"), false).is_ok());
        assert!(check_url(&u("http://api.twilio.com/x.png"), false).is_err());
        assert!(check_url(&u("https://169.254.169.254/latest"), false).is_err());
        assert!(check_url(&u("https://localhost/x"), false).is_err());
        assert!(check_url(&u("https://user:pw@example.com/x"), false).is_err());
        assert!(check_url(&u("http://127.0.0.1:9/x"), true).is_ok());
        assert!(check_url(&u("file:///etc/passwd"), true).is_err());
    }
}

#[cfg(test)]
mod callback_target_tests {
    use super::callback_target;

    #[test]
    fn callbacks_never_turn_inward_outside_the_local_runner() {
        for url in [
            "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next",
            "https://127.0.0.1/cb",
            "http://localhost/cb",
            "https://[::1]/cb",
            "https://169.254.169.254/latest/meta-data/",
            "https://10.1.2.3/cb",
            "http://cad.psap.example/cb",
            "file:///etc/passwd",
            "https://user:pw@cad.psap.example/cb",
        ] {
            assert!(callback_target(url, false).is_err(), "{url}");
        }
        assert!(callback_target("https://cad.psap.example/events", false).is_ok());
        // The local runner's receivers, and nothing else inward even there.
        assert!(callback_target("http://127.0.0.1:8080/cb", true).is_ok());
        assert!(callback_target("http://10.1.2.3/cb", true).is_err());
        assert!(callback_target("https://169.254.169.254/", true).is_err());
    }
}
