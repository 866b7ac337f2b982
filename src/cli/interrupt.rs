//! A command interrupted by SIGINT (Ctrl-C) or SIGTERM (a cancelled CI job) is not abandoned at
//! once: the work in flight goes on for a bounded grace, so a deploy finishes its step (or its
//! rollback) instead of leaving the daemon half-way through a recreate with nothing serving. A
//! second signal, or the end of the grace, abandons it; the journal keeps where it stopped and
//! the next run (or the agent) resumes from there.

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// How a command run through [`until_interrupted`] ended.
#[derive(Debug)]
pub enum Interrupted<T> {
    /// No signal came: the work's own result.
    No(T),
    /// A signal came and the work finished within the grace: its result and the exit code
    /// the signal asks for (130 for SIGINT, 143 for SIGTERM).
    Finished(T, i32),
    /// A second signal came, or the grace ended: the work was dropped. The exit code.
    Abandoned(i32),
}

/// Exit code of a command ended by SIGINT.
pub const EXIT_SIGINT: i32 = 130;
/// Exit code of a command ended by SIGTERM.
pub const EXIT_SIGTERM: i32 = 143;

/// Runs `work`; on SIGINT or SIGTERM says on stderr what happens (`what` names the work), lets
/// it go on for at most `grace`, and drops it at a second signal or at the end of the grace.
/// Without signal handlers (an error installing them) the work simply runs.
pub async fn until_interrupted<T>(
    work: impl Future<Output = T>,
    grace: Duration,
    what: &str,
) -> Interrupted<T> {
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return Interrupted::No(work.await);
    };
    tokio::pin!(work);
    let code = tokio::select! {
        result = &mut work => return Interrupted::No(result),
        _ = interrupt.recv() => EXIT_SIGINT,
        _ = terminate.recv() => EXIT_SIGTERM,
    };
    eprintln!(
        "c2quay: {} received: finishing {what} (at most {}); a second Ctrl-C or SIGTERM abandons it",
        signal_name(code),
        humantime::format_duration(grace)
    );
    tokio::select! {
        result = &mut work => Interrupted::Finished(result, code),
        _ = tokio::time::sleep(grace) => Interrupted::Abandoned(code),
        _ = next(&mut interrupt, &mut terminate) => Interrupted::Abandoned(code),
    }
}

async fn next(interrupt: &mut Signal, terminate: &mut Signal) {
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

/// `SIGINT` or `SIGTERM`, from the exit code.
pub fn signal_name(code: i32) -> &'static str {
    if code == EXIT_SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}
