//! The loop that empties the outbox (steps 2 to 4 of [`super::outbox`]): every api process runs
//! one while mail is on. It sends what is due, one mail at a time, then waits for a mail to be
//! queued here or [`POLL`], whichever comes first (mail queued by another process, retries).

use std::time::Duration;

use lettre::{AsyncSmtpTransport, Tokio1Executor};
use shared::{mail::OutboxState, telemetry::Chain};

use super::{
    Mailer,
    outbox::{Outcome, SEND_LIMIT},
    smtp,
};

/// Longest wait between two looks at the outbox.
pub const POLL: Duration = Duration::from_secs(1);

/// What one pass sent, gave up, or put back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub sent: usize,
    pub failed: usize,
    pub retried: usize,
}

/// Sends every mail due now; a MongoDB error ends the pass (the next one tries again).
pub async fn pass(mailer: &Mailer, transport: &AsyncSmtpTransport<Tokio1Executor>) -> anyhow::Result<Pass> {
    let Some(settings) = mailer.settings() else { return Ok(Pass::default()) };
    let mut done = Pass::default();
    while let Some(mail) = mailer.outbox().claim().await? {
        let outcome = match smtp::message(&settings.from, &mail.id, &mail.to, &mail.subject, &mail.text, &mail.html) {
            Err(error) => Outcome::Failed { permanent: true, error },
            Ok(message) => match tokio::time::timeout(SEND_LIMIT, smtp::send(transport, message)).await {
                Ok(Ok(())) => Outcome::Sent,
                Ok(Err((permanent, error))) => Outcome::Failed { permanent, error },
                Err(_) => Outcome::Failed { permanent: false, error: format!("no answer within {SEND_LIMIT:?}") },
            },
        };
        match mailer.outbox().record(&mail, &outcome).await? {
            OutboxState::Sent => done.sent += 1,
            OutboxState::Failed => {
                tracing::error!(mail = %mail.id, attempts = mail.attempts, outcome = ?outcome, "mail given up");
                done.failed += 1;
            }
            OutboxState::Pending => {
                tracing::warn!(mail = %mail.id, attempts = mail.attempts, outcome = ?outcome, "mail not sent; will retry");
                done.retried += 1;
            }
        }
    }
    Ok(done)
}

/// Runs until the task is aborted: safe to stop anywhere (see the outbox protocol).
pub async fn run(mailer: Mailer) {
    let transport = match mailer.settings().map(|s| s.smtp.transport()) {
        None => return,
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            tracing::error!(error = %Chain(&e), "the SMTP transport could not be built; no mail is sent");
            return;
        }
    };
    loop {
        if let Err(e) = pass(&mailer, &transport).await {
            tracing::warn!(error = %Chain(e.as_ref()), "outbox pass failed");
        }
        tokio::select! {
            () = mailer.wake().notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}
