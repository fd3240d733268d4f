//! Mail: what the api sends (invitations, weekly reports, alerts) goes through a MongoDB
//! outbox ([`outbox`]) to the SMTP server of `CP_SMTP_URL` ([`smtp`]), sent by a loop in every
//! api process ([`sender`]). Without `CP_SMTP_URL` nothing is queued or sent, and the api says
//! so at start.

pub mod outbox;
pub mod sender;
pub mod smtp;

use std::{sync::Arc, time::Duration};

use lettre::message::Mailbox;
use mongodb::Database;
use shared::clock::Clock;
use tokio::sync::Notify;

pub use outbox::{Mail, Outbox};
pub use smtp::SmtpUrl;

use crate::error::ApiError;

/// `CP_SMTP_URL`, `CP_MAIL_FROM` and `CP_MAIL_RETRY_BASE_MS`, checked at start.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub smtp: SmtpUrl,
    /// The `From` of every mail (`ConvertPulse <reports@example.com>`).
    pub from: Mailbox,
    /// The first wait after a failed send; doubled on each further failure.
    pub retry_base: Duration,
}

impl MailSettings {
    /// Both `url` and `from` or neither: mail is on, or off.
    pub fn parse(url: &str, from: &str, retry_base: Duration) -> anyhow::Result<Option<Self>> {
        match (url.is_empty(), from.is_empty()) {
            (true, true) => Ok(None),
            (false, true) => {
                anyhow::bail!("CP_MAIL_FROM is required with CP_SMTP_URL (e.g. ConvertPulse <reports@example.com>)")
            }
            (true, false) => anyhow::bail!("CP_SMTP_URL is required with CP_MAIL_FROM"),
            (false, false) => Ok(Some(Self {
                smtp: SmtpUrl::parse(url).map_err(|e| anyhow::anyhow!("CP_SMTP_URL: {e}"))?,
                from: from.parse().map_err(|e| anyhow::anyhow!("CP_MAIL_FROM: {e}"))?,
                retry_base,
            })),
        }
    }
}

/// What handlers and jobs queue mail through; cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    settings: Option<Arc<MailSettings>>,
    outbox: Outbox,
    /// Wakes this process's sender when a mail was queued.
    wake: Arc<Notify>,
}

impl Mailer {
    pub fn new(settings: Option<MailSettings>, db: &Database, clock: Arc<dyn Clock>) -> Self {
        let retry_base = settings.as_ref().map_or(Duration::from_secs(5), |s| s.retry_base);
        Self { settings: settings.map(Arc::new), outbox: Outbox::new(db, clock, retry_base), wake: Arc::new(Notify::new()) }
    }

    /// True when `CP_SMTP_URL` is set.
    pub fn enabled(&self) -> bool {
        self.settings.is_some()
    }

    pub fn settings(&self) -> Option<&MailSettings> {
        self.settings.as_deref()
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub(crate) fn wake(&self) -> &Notify {
        &self.wake
    }

    /// Queues `mail` (once per id: outbox step 1); true when this call queued it.
    /// [`ApiError::MailNotConfigured`] when mail is off.
    pub async fn queue(&self, mail: Mail) -> Result<bool, ApiError> {
        if self.settings.is_none() {
            return Err(ApiError::MailNotConfigured);
        }
        let queued = self.outbox.queue(mail).await?;
        if queued {
            self.wake.notify_one();
        }
        Ok(queued)
    }
}

/// `s` safe inside HTML text and attribute values: what every HTML mail body puts its data
/// through (site names, paths and sources come from tracked data).
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}
