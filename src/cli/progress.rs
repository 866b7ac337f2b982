//! Live progress of a CLI deploy or rollback on stderr: each step as it starts and ends, what
//! readiness still waits for ("web: running (health: starting), 12s of 30s"), the gate's
//! answer and each broker record, each fact once. On a terminal the step in flight is one line
//! rewritten in place; elsewhere (a CI log) every fact is a plain line of its own and no ANSI
//! code is written.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::events::{EventSink, PipelineEvent, Scope, StepName};

/// Prints a flow's events as progress lines to stderr.
#[derive(Debug)]
pub struct ProgressSink {
    terminal: bool,
    /// A line is open on the terminal (a step in flight, not yet ended by a newline).
    open: Mutex<bool>,
}

impl ProgressSink {
    /// A sink for a terminal (`true`: rewrite the line of the step in flight) or a log.
    pub fn new(terminal: bool) -> ProgressSink {
        ProgressSink {
            terminal,
            open: Mutex::new(false),
        }
    }

    /// Writes `text` as the line of the step in flight (terminal only) or as a line.
    fn in_flight(&self, text: &str) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            *open = true;
            write!(err, "\r\x1b[2K{text}")
        } else {
            writeln!(err, "{text}")
        };
        let _ = err.flush();
    }

    /// Writes `text` as a finished line (closing the line in flight, if any).
    fn done(&self, text: &str) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut err = std::io::stderr().lock();
        let clear = if *open { "\r\x1b[2K" } else { "" };
        *open = false;
        let _ = writeln!(err, "{clear}{text}");
    }
}

/// One readiness progress line: what each waiting service is, and for how long of how long.
pub fn readiness_line(waiting: &[(String, String)], waited: Duration, timeout: Duration) -> String {
    let services: Vec<String> = waiting
        .iter()
        .map(|(service, state)| format!("{service}: {state}"))
        .collect();
    format!(
        "  readiness  {}, {}s of {}s",
        services.join("; "),
        waited.as_secs(),
        timeout.as_secs()
    )
}

/// The first line of a failure, for a progress line (the report has the rest).
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

impl EventSink for ProgressSink {
    fn emit(&self, scope: &Scope, event: &PipelineEvent) {
        match event {
            PipelineEvent::Planned { plan } => self.done(&format!("{}: {plan}", scope.environment)),
            // A log gets the start of the steps that can take long with nothing else to say
            // (readiness says what it waits for); a terminal gets every start, rewritten.
            PipelineEvent::StepStarted { step }
                if self.terminal || matches!(step, StepName::Pull | StepName::Rollback) =>
            {
                self.in_flight(&format!("  {:<10} ...", step.as_str()))
            }
            PipelineEvent::ReadinessWaiting {
                waiting,
                waited,
                timeout,
            } => self.in_flight(&readiness_line(waiting, *waited, *timeout)),
            PipelineEvent::StepFinished {
                step,
                elapsed,
                failure,
            } => {
                let took =
                    humantime::format_duration(Duration::from_millis(elapsed.as_millis() as u64));
                let line = match failure {
                    None => format!("  {:<10} ok in {took}", step.as_str()),
                    Some(why) => {
                        format!(
                            "  {:<10} FAILED after {took}: {}",
                            step.as_str(),
                            first_line(why)
                        )
                    }
                };
                self.done(&line);
            }
            PipelineEvent::GateAnswered {
                blocked_reasons, ..
            } if !blocked_reasons.is_empty() => {
                for reason in blocked_reasons {
                    self.done(&format!("  gate       {reason}"));
                }
            }
            PipelineEvent::RecordAttempted {
                kind,
                pacticipant,
                version,
                recorded,
            } => {
                let what = match kind {
                    crate::state::RecordKind::Deployment => "deployment",
                    crate::state::RecordKind::Undeployment => "undeployment",
                };
                let result = if *recorded {
                    "recorded"
                } else {
                    "pending (outbox)"
                };
                self.done(&format!(
                    "  record     {what} of {pacticipant} {version}: {result}"
                ));
            }
            // A successful rollback's step line says it all; one that did not restore says why.
            PipelineEvent::RollbackDone {
                result,
                succeeded: false,
                ..
            } => self.done(&format!("  rollback   {result}")),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_readiness_line_names_each_waiting_service_its_state_and_the_clock() {
        let waiting = vec![
            ("web".to_string(), "running (health: starting)".to_string()),
            ("api".to_string(), "created".to_string()),
        ];
        let line = readiness_line(
            &waiting,
            Duration::from_millis(12_400),
            Duration::from_secs(30),
        );
        assert_eq!(
            line,
            "  readiness  web: running (health: starting); api: created, 12s of 30s"
        );
    }
}
