//! The SMTP side of mail: `CP_SMTP_URL` parsed once at start, the lettre transport built from
//! it, and one mail turned into a MIME message (plain text and HTML alternatives).
//!
//! `smtp://user:pass@host:port` speaks plain SMTP and upgrades with STARTTLS whenever the
//! server offers it; `smtps://` opens TLS first (port 465 by default). Every SMTP command has
//! [`COMMAND_TIMEOUT`]; the sender bounds a whole send on top of that.

use std::time::Duration;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
};

/// Longest wait for any one SMTP reply.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// How the api reaches its SMTP server. `Debug` leaves the password out.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    /// TLS from the first byte (`smtps://`) rather than STARTTLS when offered.
    pub implicit_tls: bool,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    password: Option<String>,
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpUrl")
            .field("implicit_tls", &self.implicit_tls)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl SmtpUrl {
    /// `smtp://[user:pass@]host[:port]` (port 587 by default) or `smtps://...` (465); the
    /// user and password percent-decoded. The error names what is wrong, never the password.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
        let (implicit_tls, default_port) = match url.scheme() {
            "smtp" => (false, 587),
            "smtps" => (true, 465),
            other => return Err(format!("scheme {other:?} is not smtp or smtps")),
        };
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or("a host is required")?;
        if url.path() != "" && url.path() != "/" || url.query().is_some() {
            return Err("takes no path or query".into());
        }
        let decode =
            |s: &str| percent_decode(s).ok_or_else(|| "user and password must be valid percent-encoded UTF-8".to_string());
        let user = (!url.username().is_empty()).then(|| decode(url.username())).transpose()?;
        let password = url.password().map(decode).transpose()?;
        if password.is_some() && user.is_none() {
            return Err("a password needs a user".into());
        }
        Ok(Self {
            implicit_tls,
            host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
            port: url.port().unwrap_or(default_port),
            user,
            password,
        })
    }

    /// The transport: nothing is connected until a mail is sent.
    pub fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
        let params = TlsParameters::new(self.host.clone())?;
        let tls = if self.implicit_tls { Tls::Wrapper(params) } else { Tls::Opportunistic(params) };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(COMMAND_TIMEOUT));
        if let Some(user) = &self.user {
            builder = builder.credentials(Credentials::new(user.clone(), self.password.clone().unwrap_or_default()));
        }
        Ok(builder.build())
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A mail as the outbox holds it, made a message: `Message-ID` from its outbox id, so a
/// receiving system that sees it twice (a send whose acknowledgement was lost) can tell.
pub fn message(from: &Mailbox, id: &str, to: &str, subject: &str, text: &str, html: &str) -> Result<Message, String> {
    let to: Mailbox = to.parse().map_err(|e| format!("recipient: {e}"))?;
    let domain = from.email.domain();
    let local: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '.' }).collect();
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(format!("<{local}@{domain}>")))
        .multipart(MultiPart::alternative_plain_html(text.to_string(), html.to_string()))
        .map_err(|e| format!("message: {e}"))
}

/// Sends one message; `Err((permanent, why))` when the server or the network refused it.
pub async fn send(transport: &AsyncSmtpTransport<Tokio1Executor>, message: Message) -> Result<(), (bool, String)> {
    match transport.send(message).await {
        Ok(_) => Ok(()),
        Err(e) => Err((e.is_permanent(), shared::telemetry::Chain(&e).to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_parse_rule_by_rule() {
        let u = SmtpUrl::parse("smtp://ann%40x.org:p%3Ass@mail.example.com:2525").expect("valid");
        assert_eq!((u.implicit_tls, u.host.as_str(), u.port), (false, "mail.example.com", 2525));
        assert_eq!((u.user.as_deref(), u.password.as_deref()), (Some("ann@x.org"), Some("p:ss")));
        assert!(!format!("{u:?}").contains("p:ss"), "the password stays out of Debug");
        let u = SmtpUrl::parse("smtps://mail.example.com").expect("valid");
        assert_eq!((u.implicit_tls, u.port, u.user), (true, 465, None));
        assert_eq!(SmtpUrl::parse("smtp://127.0.0.1").expect("valid").port, 587);
        // (case, url)
        let bad = [
            ("another scheme", "http://mail.example.com"),
            ("no host", "smtp://"),
            ("a path", "smtp://mail.example.com/x"),
            ("a query", "smtp://mail.example.com?tls=no"),
            ("a password without a user", "smtp://:secret@mail.example.com"),
            ("not a URL", "mail.example.com:25"),
        ];
        for (case, raw) in bad {
            let err = SmtpUrl::parse(raw).expect_err(case);
            assert!(!err.contains("secret"), "case {case}: {err}");
        }
    }

    #[test]
    fn a_message_has_both_alternatives_and_an_id_from_the_outbox() {
        let from: Mailbox = "ConvertPulse <reports@example.com>".parse().expect("mailbox");
        let m =
            message(&from, "report:s1:2026-11-23:u1", "ann@example.org", "Weekly", "text", "<p>html</p>").expect("message");
        let raw = String::from_utf8(m.formatted()).expect("utf-8");
        assert!(raw.contains("Message-ID: <report.s1.2026-11-23.u1@example.com>"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(message(&from, "x", "not an address", "s", "t", "h").is_err());
    }
}
