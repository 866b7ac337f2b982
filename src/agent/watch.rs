//! Triggers from outside: debounced file events of the desired directory, and container events
//! (the Engine API's event stream: no child process).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{Error, Event};
use crate::docker::Engine;
use crate::pipeline::Context;

/// The live watcher; dropping it stops the watch.
pub type DesiredWatcher = Debouncer<notify::RecommendedWatcher, RecommendedCache>;

/// Watches `dir`; every debounced burst of events (an editor save, a `git pull` touching many
/// files) becomes one [`Event::DesiredChanged`]. The agent then reloads and diffs the directory,
/// so only environments whose generation changed are reconciled.
pub fn watch_desired(
    dir: &Path,
    debounce: Duration,
    tx: mpsc::UnboundedSender<Event>,
) -> Result<DesiredWatcher, Error> {
    let handler = move |result: DebounceEventResult| match result {
        Ok(events) if events.iter().any(|e| changes_content(&e.event.kind)) => {
            debug!(events = events.len(), "desired directory events");
            let _ = tx.send(Event::DesiredChanged);
        }
        Ok(_) => {}
        Err(errors) => {
            for error in errors {
                warn!(error = %error, "file watch error; the periodic resync covers missed events");
            }
        }
    };
    let mut debouncer = new_debouncer(debounce, None, handler).map_err(|e| Error::Watch {
        dir: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    debouncer
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| Error::Watch {
            dir: dir.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(debouncer)
}

/// Watches the directories of the environments' Compose input files (compose files, `.env`,
/// `env_file`s, included files); every debounced burst becomes one
/// [`Event::ComposeChanged`]. The agent then re-stats each environment's inputs and reconciles
/// those that changed. The set of directories follows the rendered models ([`Self::sync`]).
pub struct ComposeWatcher {
    debouncer: DesiredWatcher,
    watched: BTreeSet<PathBuf>,
}

impl ComposeWatcher {
    /// A watcher of no directory yet.
    pub fn new(debounce: Duration, tx: mpsc::UnboundedSender<Event>) -> Result<Self, Error> {
        let handler = move |result: DebounceEventResult| match result {
            Ok(events) if events.iter().any(|e| changes_content(&e.event.kind)) => {
                debug!(events = events.len(), "compose directory events");
                let _ = tx.send(Event::ComposeChanged);
            }
            Ok(_) => {}
            Err(errors) => {
                for error in errors {
                    warn!(error = %error, "compose file watch error; the periodic resync covers missed events");
                }
            }
        };
        let debouncer = new_debouncer(debounce, None, handler).map_err(|e| Error::Watch {
            dir: PathBuf::new(),
            message: e.to_string(),
        })?;
        Ok(ComposeWatcher {
            debouncer,
            watched: BTreeSet::new(),
        })
    }

    /// Watches exactly `dirs` (non-recursively) from now on. A directory that cannot be
    /// watched (it does not exist yet) is logged and tried again at the next sync.
    pub fn sync(&mut self, dirs: Vec<PathBuf>) {
        let wanted: BTreeSet<PathBuf> = dirs.into_iter().collect();
        for gone in self
            .watched
            .difference(&wanted)
            .cloned()
            .collect::<Vec<_>>()
        {
            let _ = self.debouncer.unwatch(&gone);
            self.watched.remove(&gone);
        }
        for dir in wanted
            .difference(&self.watched)
            .cloned()
            .collect::<Vec<_>>()
        {
            match self.debouncer.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(dir);
                }
                Err(error) => {
                    debug!(dir = %dir.display(), error = %error, "cannot watch a compose directory yet")
                }
            }
        }
    }
}

/// Whether a file event can change what the directory holds. Reads are not changes: the
/// agent's own reload opens and closes every manifest, and counting those would make each
/// reload trigger the next one, forever.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Follows container events of every Compose project (the engine's event stream, subscribed
/// again with backoff when it ends, e.g. while the daemon restarts) and sends one
/// [`Event::ContainersChanged`] per event. After a new subscription it asks for an
/// [`Event::Resync`]: events of the outage are lost.
pub fn follow_container_events<C, B, S>(
    ctx: Arc<Context<C, B, S>>,
    tx: mpsc::UnboundedSender<Event>,
) where
    C: Engine + 'static,
    B: Send + Sync + 'static,
    S: Send + Sync + 'static,
{
    tokio::spawn(async move {
        let mut delay = Duration::from_secs(1);
        let mut restarted = false;
        loop {
            let started = tokio::time::Instant::now();
            match ctx.compose.events(None).await {
                Ok(mut events) => {
                    if restarted && tx.send(Event::Resync).is_err() {
                        return;
                    }
                    loop {
                        match events.next().await {
                            Some(Ok(event)) => {
                                delay = Duration::from_secs(1);
                                if tx.send(Event::ContainersChanged(event.project)).is_err() {
                                    return;
                                }
                            }
                            Some(Err(error)) => {
                                warn!(error = %crate::pipeline::error_chain(&error), "container events failed");
                                break;
                            }
                            None => {
                                debug!("container events ended");
                                break;
                            }
                        }
                    }
                }
                Err(error) => {
                    warn!(error = %crate::pipeline::error_chain(&error), "cannot follow container events")
                }
            }
            restarted = true;
            if tx.is_closed() {
                return;
            }
            if started.elapsed() > Duration::from_secs(10) {
                // It ran a while: a new outage, not the same one; start the backoff over.
                delay = Duration::from_secs(1);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RemoveKind};

    #[test]
    fn reading_the_manifests_is_not_a_change() {
        assert!(!changes_content(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!changes_content(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!changes_content(&EventKind::Access(AccessKind::Read)));
        assert!(changes_content(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(changes_content(&EventKind::Create(CreateKind::File)));
        assert!(changes_content(&EventKind::Modify(ModifyKind::Any)));
        assert!(changes_content(&EventKind::Remove(RemoveKind::File)));
        assert!(changes_content(&EventKind::Any));
    }
}
