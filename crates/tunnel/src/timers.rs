//! WireGuard's protocol timers (whitepaper §6.1–6.5) on the caller's clock.
//!
//! This is a pure state machine: it never reads a clock and never touches
//! boringtun. The adapter in [`crate::wg`] reports what happened (a handshake
//! initiation or data packet went out, an authenticated packet came in, a
//! session was established) and asks [`Timers::poll`] what to do next.
//!
//! The rules mirror boringtun's own `update_timers` so that, in production
//! where both clocks agree, the two layers want the same thing at the same
//! moment; whichever acts first updates the state the other one reads.

use std::time::Duration;

/// After this age the initiator of a session starts a new handshake when it sends.
pub(crate) const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);
/// After this age a session is not used any more.
pub(crate) const REJECT_AFTER_TIME: Duration = Duration::from_secs(180);
/// How long handshake initiations are retried before giving up.
pub(crate) const REKEY_ATTEMPT_TIME: Duration = Duration::from_secs(90);
/// How long to wait for a handshake response before sending a new initiation.
pub(crate) const REKEY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long received data may stay unanswered before a keepalive is sent.
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the timers want the adapter to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerAction {
    /// Nothing is due.
    Nothing,
    /// Send a new handshake initiation (forced: even if one is in flight).
    Initiate,
    /// Send an empty (keepalive) data packet.
    Keepalive,
    /// The newest session is older than REJECT_AFTER_TIME: drop all sessions.
    ExpireSessions,
}

#[derive(Debug, Clone, Copy)]
struct Session {
    established: Duration,
    initiator: bool,
}

#[derive(Debug, Clone, Copy)]
struct Attempt {
    started: Duration,
    last_sent: Duration,
}

/// Timer state of one tunnel, all times on the caller's clock.
#[derive(Debug)]
pub(crate) struct Timers {
    persistent_keepalive: Option<Duration>,
    session: Option<Session>,
    attempt: Option<Attempt>,
    last_sent: Option<Duration>,
    last_received: Option<Duration>,
    last_data_sent: Option<Duration>,
    last_data_received: Option<Duration>,
    last_persistent: Duration,
    want_keepalive: bool,
    want_handshake: bool,
}

fn after(a: Option<Duration>, b: Option<Duration>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a > b,
        (Some(_), None) => true,
        _ => false,
    }
}

fn elapsed(now: Duration, since: Option<Duration>) -> Duration {
    since.map_or(now, |t| now.saturating_sub(t))
}

impl Timers {
    /// Timers of a tunnel created at `now`.
    pub(crate) fn new(now: Duration, persistent_keepalive: Option<u16>) -> Self {
        Self {
            persistent_keepalive: keepalive_duration(persistent_keepalive),
            session: None,
            attempt: None,
            last_sent: None,
            last_received: None,
            last_data_sent: None,
            last_data_received: None,
            last_persistent: now,
            want_keepalive: false,
            want_handshake: false,
        }
    }

    /// Changes the persistent keepalive interval (seconds; `None` or 0 = off).
    pub(crate) fn set_persistent_keepalive(&mut self, secs: Option<u16>) {
        self.persistent_keepalive = keepalive_duration(secs);
    }

    /// Whether a handshake attempt is being retried.
    pub(crate) fn attempt_active(&self) -> bool {
        self.attempt.is_some()
    }

    /// When the newest (not yet expired) session was established.
    pub(crate) fn session_established(&self) -> Option<Duration> {
        self.session.map(|s| s.established)
    }

    /// What is due at `now`. Call again after acting on the answer, until
    /// [`TimerAction::Nothing`]: each action's report makes it not due.
    pub(crate) fn poll(&mut self, now: Duration) -> TimerAction {
        if let Some(s) = self.session {
            if now.saturating_sub(s.established) >= REJECT_AFTER_TIME {
                return TimerAction::ExpireSessions;
            }
        }
        if let Some(a) = self.attempt {
            if now.saturating_sub(a.started) >= REKEY_ATTEMPT_TIME {
                tracing::debug!("handshake attempt given up (REKEY_ATTEMPT_TIME)");
                self.attempt = None;
            } else if now.saturating_sub(a.last_sent) >= REKEY_TIMEOUT {
                return TimerAction::Initiate;
            }
        } else if let Some(s) = self.session {
            let age = now.saturating_sub(s.established);
            if s.initiator
                && after(self.last_data_sent, Some(s.established))
                && age >= REKEY_AFTER_TIME
            {
                return TimerAction::Initiate;
            }
            if s.initiator
                && after(self.last_data_received, Some(s.established))
                && age >= REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT
            {
                return TimerAction::Initiate;
            }
            if after(self.last_data_sent, self.last_received)
                && elapsed(now, self.last_received) >= KEEPALIVE_TIMEOUT + REKEY_TIMEOUT
                && std::mem::take(&mut self.want_handshake)
            {
                return TimerAction::Initiate;
            }
            if after(self.last_data_received, self.last_sent)
                && elapsed(now, self.last_sent) >= KEEPALIVE_TIMEOUT
                && std::mem::take(&mut self.want_keepalive)
            {
                return TimerAction::Keepalive;
            }
        }
        if let Some(interval) = self.persistent_keepalive {
            let quiet_since = self
                .last_sent
                .map_or(self.last_persistent, |s| s.max(self.last_persistent));
            if now.saturating_sub(quiet_since) >= interval {
                self.last_persistent = now;
                return TimerAction::Keepalive;
            }
        }
        TimerAction::Nothing
    }

    /// A handshake initiation was sent.
    pub(crate) fn on_initiation_sent(&mut self, now: Duration) {
        let started = self.attempt.map_or(now, |a| a.started);
        self.attempt = Some(Attempt {
            started,
            last_sent: now,
        });
        self.on_sent(now);
    }

    /// A data packet (empty = keepalive) was sent.
    pub(crate) fn on_data_sent(&mut self, now: Duration, keepalive: bool) {
        self.on_sent(now);
        if !keepalive {
            self.last_data_sent = Some(now);
        }
    }

    /// An authenticated packet (empty = keepalive) was received.
    pub(crate) fn on_received(&mut self, now: Duration, data: bool) {
        self.last_received = Some(now);
        self.want_keepalive = true;
        self.want_handshake = false;
        if data {
            self.last_data_received = Some(now);
        }
    }

    /// A new session was established; no handshake is in flight any more.
    pub(crate) fn on_session_established(&mut self, now: Duration, initiator: bool) {
        self.session = Some(Session {
            established: now,
            initiator,
        });
        self.attempt = None;
    }

    /// All sessions were dropped.
    pub(crate) fn on_sessions_cleared(&mut self) {
        self.session = None;
    }

    fn on_sent(&mut self, now: Duration) {
        self.last_sent = Some(now);
        self.want_handshake = true;
        self.want_keepalive = false;
    }
}

fn keepalive_duration(secs: Option<u16>) -> Option<Duration> {
    secs.filter(|s| *s > 0)
        .map(|s| Duration::from_secs(u64::from(s)))
}

#[cfg(test)]
mod tests;
