//! Leadership among servers sharing one database: exactly one schedules, holding a lease in
//! the store with a fencing epoch (see `Store::claim_lease`). The others are standbys: they
//! serve every read from the store and take submissions into it, which the leader adopts; the
//! agent protocol and the operations that change running work answer `not_leader`.
//!
//! The leader renews its term a few times per lease time; a standby tries to take an expired
//! lease as often. Every tick the leader commits is fenced by its epoch, so a leader that lost
//! its term (paused, cut off, slow) commits nothing more, and steps down when it notices.

use std::time::{Duration, Instant};

use kiln_store::Store;

/// How a server takes part in leadership.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// This server's id, unique among the servers of one database.
    pub server_id: String,
    /// This server's API URL as clients and agents reach it (told to them by standbys).
    pub url: String,
    /// How long a term lasts without renewal: the longest a dead leader holds up scheduling.
    pub ttl: Duration,
}

/// What one look at the lease changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// This server took the lease as this epoch: reload the unfinished work, then schedule.
    Elected(u64),
    /// This server's term is over (or the store cannot tell): stop scheduling at once.
    Deposed,
}

#[derive(Debug)]
pub(crate) struct Leadership {
    pub(crate) cfg: LeaderConfig,
    epoch: Option<u64>,
    last_claim: Option<Instant>,
}

impl Leadership {
    pub(crate) fn new(cfg: LeaderConfig) -> Self {
        Leadership {
            cfg,
            epoch: None,
            last_claim: None,
        }
    }

    /// The epoch of this server's term, if it leads.
    pub(crate) fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// Renews the term or tries to take the lease, when it is time to.
    pub(crate) fn step(&mut self, store: &dyn Store) -> Option<Change> {
        let every = self.cfg.ttl / 4;
        if self.last_claim.is_some_and(|t| t.elapsed() < every) {
            return None;
        }
        self.last_claim = Some(Instant::now());
        let ttl = self.cfg.ttl.as_millis() as u64;
        let claimed = store.claim_lease(&self.cfg.server_id, &self.cfg.url, ttl, self.epoch);
        match (self.epoch, claimed) {
            (Some(_), Ok(Some(_))) | (None, Ok(None)) => None,
            (None, Ok(Some(epoch))) => {
                self.epoch = Some(epoch);
                tracing::info!("leading the scheduler (epoch {epoch})");
                Some(Change::Elected(epoch))
            }
            (Some(epoch), Ok(None)) => {
                tracing::warn!("the scheduler lease of epoch {epoch} is over: standing by");
                self.epoch = None;
                Some(Change::Deposed)
            }
            (Some(epoch), Err(e)) => {
                tracing::warn!(
                    "cannot renew the scheduler lease (epoch {epoch}): {e}; standing by"
                );
                self.epoch = None;
                Some(Change::Deposed)
            }
            (None, Err(e)) => {
                tracing::debug!("cannot look at the scheduler lease: {e}");
                None
            }
        }
    }

    /// This server stopped leading on its own account (its store refused a tick).
    pub(crate) fn lost(&mut self) {
        self.epoch = None;
        self.last_claim = None;
    }

    /// Hands the term back on a clean shutdown, so a standby takes over at once.
    pub(crate) fn release(&mut self, store: &dyn Store) {
        if let Some(epoch) = self.epoch.take()
            && let Err(e) = store.release_lease(&self.cfg.server_id, epoch)
        {
            tracing::warn!("cannot hand back the scheduler lease: {e}");
        }
    }
}
